"""The app table: one row per application, updated in place, sortable by any column.

Rows are keyed by app name and never rebuilt on a tick: changed cells are updated, rows that
appear or vanish are added or removed, then the table is re-sorted and the cursor put back on
the row it was on. Special rows ((unattributed), (forwarded), the "more" summary) stay last.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.cache import LRUCache
from textual.message import Message
from textual.widgets import DataTable

from bwmon.core.model import AppRow, RowKind, Unit
from bwmon.tui.format import bars, human_bytes, shown_bytes
from bwmon.tui.steady_order import MEAN_MARGIN, steady_order

MORE_KEY = "(more)"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int
    numeric: bool
    value: Callable[[AppRow], float | str]


def where(row: AppRow) -> str:
    """Where a row's processes run: their containers, else their systemd units ("" if none,
    or if that is the row's own name: a row named by its container or unit)."""
    places = sorted({p.container for p in row.processes if p.container})
    if not places:
        places = sorted({p.unit for p in row.processes if p.unit})
    return "" if places == [row.name] else ",".join(places)


PID_SUFFIX = re.compile(r"\s?\[\d+\]$")


def fit_name(name: str, width: int) -> str:
    """`name` in `width` columns: cut before a trailing "[pid]" (the process view), which
    tells rows apart, else at the end; "…" marks the cut."""
    if len(name) <= width:
        return name
    tail = m.group() if (m := PID_SUFFIX.search(name)) and len(m.group()) < width - 1 else ""
    return name[:max(0, width - len(tail) - 1)] + "…" + tail


COLUMNS: dict[str, Column] = {c.key: c for c in (
    Column("app", "App", 12, False, lambda r: r.name.lower()),
    # shown only while some row runs in a container or unit (see AppTable.order)
    Column("where", "Container/unit", 16, False, lambda r: where(r).lower()),
    # Byte columns sort by the figure shown (3 significant digits): rows showing the same
    # figure stay in name order instead of swapping places every tick.
    Column("rate_in", "In/s", 10, True, lambda r: shown_bytes(r.rate_in)),
    Column("rate_out", "Out/s", 10, True, lambda r: shown_bytes(r.rate_out)),
    Column("total_in", "Tot in", 9, True, lambda r: shown_bytes(r.total_in)),
    Column("total_out", "Tot out", 9, True, lambda r: shown_bytes(r.total_out)),
    Column("procs", "Proc", 6, True, lambda r: len(r.processes)),
    Column("flows", "Conn", 6, True, lambda r: r.flows),
)}
# Sorts on both directions together, not one column: "rate" (In/s + Out/s, the default:
# which app moves the most, whichever way) and "total" (Tot in + Tot out, its traffic-mode
# twin). The header marks both of their columns.
BOTH: dict[str, tuple[str, str]] = {"rate": ("rate_in", "rate_out"),
                                    "total": ("total_in", "total_out")}
SORTS: dict[str, Column] = {**COLUMNS, **{c.key: c for c in (
    Column("rate", "In+Out/s", 0, True, lambda r: shown_bytes(r.rate_in + r.rate_out)),
    Column("total", "Tot in+out", 0, True, lambda r: shown_bytes(r.total_in + r.total_out)),
)}}
TREND_WIDTH = 8
# Each trend cell is the mean rate of a fixed 4-second slice of the clock (8 cells: the last
# ~half minute): the cells stand still between slices, only the newest one fills in.
TREND_SLICE = 4.0
# The Container/unit column shows only where the app names keep at least this many columns
# beside it (80 columns do not have room; the detail pane names them there).
MIN_NAME_BESIDE_WHERE = 16
BANDWIDTH_ORDER = ("app", "rate_in", "rate_out", "total_in", "total_out", "procs", "flows")
TRAFFIC_ORDER = ("app", "total_in", "total_out", "rate_in", "rate_out", "procs", "flows")
_PINNED = {RowKind.UNATTRIBUTED: 1, RowKind.FORWARDED: 2}
# Rate sorts: which of a (in, out) mean they add up (see steady_order, MEAN_SECONDS).
_MEAN_SIDES = {"rate": (0, 1), "rate_in": (0,), "rate_out": (1,)}


def _pin(row: AppRow) -> int:
    """0 for ordinary rows; >0 for rows that always stay at the bottom, in this order."""
    if row.name == MORE_KEY:
        return 3
    return _PINNED.get(row.kind, 0)


def row_matches(row: AppRow, pattern: re.Pattern[str] | None) -> bool:
    """Filter rule: the regex is searched in the app name and its processes' command lines,
    containers and units."""
    if pattern is None or _pin(row):
        return True
    return bool(pattern.search(row.name)) or any(
        pattern.search(p.cmdline) or (p.container and pattern.search(p.container))
        or (p.unit and pattern.search(p.unit)) for p in row.processes)


# Render caches of the table, in entries: DataTable sizes them for big static tables (10,000
# cells); here most cells change every tick, so stale entries only filled them (~9 MiB with
# 50 rows, measured with tracemalloc). A screen shows < 100 rows: twice that is plenty.
RENDER_CACHES = {"_cell_render_cache": 1000, "_row_render_cache": 200, "_line_cache": 200}


def _shrink_render_caches(table: DataTable[Text]) -> None:
    """Cap DataTable's private render caches; a Textual without them is left alone."""
    for name, size in RENDER_CACHES.items():
        cache = getattr(table, name, None)
        if isinstance(cache, LRUCache):
            cache.maxsize = size


class AppTable(DataTable[Text]):
    """DataTable of AppRows with sticky sort, in-place updates and a row cap."""

    class SortChanged(Message):
        def __init__(self, column: str, reverse: bool) -> None:
            super().__init__()
            self.column = column
            self.reverse = reverse

    class TrendShown(Message):
        """The trend column appeared (the table got wide enough): it needs its figures."""

    def __init__(self, *, max_rows: int = 200, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False, cell_padding=1)
        _shrink_render_caches(self)
        self.max_rows = max_rows
        self.sort_column = "rate"
        self.sort_reverse = True  # numeric columns start biggest first
        self.traffic_mode = False
        self.name_label = "App"  # the first column's heading: "Process" in the process view
        self.show_trend = False
        self.has_where = False  # some row runs in a container or unit not its name
        self.pattern: re.Pattern[str] | None = None
        self.hidden_by_filter = 0
        self._source: list[AppRow] = []
        self._before: dict[str, AppRow] = {}  # the previous tick's rows, for steady_order
        self._order: list[str] = []  # the rows as last shown; [] = sort exactly
        self._trends: Mapping[str, Sequence[float | None]] = {}
        self._trend_top = 0.0  # the largest trend cell of all rows: their common scale
        self._means: Mapping[str, tuple[float, float]] = {}
        self._shown: dict[str, AppRow] = {}
        self._cells: dict[str, tuple[str, ...]] = {}
        self._built_for: tuple[tuple[str, ...], bool, int] | None = None
        self._name_width = 12

    # -- public API --------------------------------------------------------------------------

    @property
    def show_where(self) -> bool:
        """The Container/unit column is shown (some row has one, and there is room)."""
        return self._built_for is not None and "where" in self._built_for[0]

    @property
    def order(self) -> tuple[str, ...]:
        return self._built_for[0] if self._built_for is not None else self._order_for(False)

    def _order_for(self, with_where: bool) -> tuple[str, ...]:
        base = TRAFFIC_ORDER if self.traffic_mode else BANDWIDTH_ORDER
        return (base[0], "where", *base[1:]) if with_where else base

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:
            return None
        return key.value

    def row_keys_in_order(self) -> list[str]:
        """The app names as displayed, top to bottom."""
        return [str(r.key.value) for r in self.ordered_rows]

    def show(self, rows: Sequence[AppRow],
             trends: Mapping[str, Sequence[float | None]],
             means: Mapping[str, tuple[float, float]] | None = None) -> None:
        """Bring the table up to date with one snapshot's rows (in place); `trends`: per row,
        the mean rate of each of the last TREND_WIDTH clock slices (None: no data), drawn on
        one scale for all rows (a steady small app shows small bars); `means`:
        per row, its mean rates (in, out) over the last MEAN_SECONDS, which rate sorts order
        by (see steady_order; a row without one, by its own figure)."""
        self._before = {r.name: r for r in self._source}
        self._source = list(rows)
        self.has_where = any(where(r) for r in self._source)
        self._trends = trends
        self._trend_top = max((v for cells in trends.values() for v in cells if v is not None),
                              default=0.0)
        self._means = means or {}
        self._refresh_rows()

    def set_sort(self, column: str, reverse: bool | None = None) -> None:
        """Sort by `column`; choosing the current column again reverses the order."""
        if column not in SORTS:
            return
        if reverse is not None:
            self.sort_reverse = reverse
        elif column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_reverse = SORTS[column].numeric
        self.sort_column = column
        self._order = []  # a new sort is exact at once
        self._update_labels()
        self._refresh_rows()
        self.post_message(self.SortChanged(column, self.sort_reverse))

    def set_pattern(self, pattern: re.Pattern[str] | None) -> None:
        self.pattern = pattern
        self._order = []  # rows coming back after a filter take their exact places at once
        self._refresh_rows()

    def set_traffic_mode(self, on: bool) -> None:
        """Traffic mode puts totals first; a sort on a rate moves to the matching total."""
        self.traffic_mode = on
        swap = {"rate_in": "total_in", "rate_out": "total_out", "rate": "total"}
        if not on:
            swap = {v: k for k, v in swap.items()}
        self.sort_column = swap.get(self.sort_column, self.sort_column)
        self._order = []
        self._refresh_rows()
        self._update_labels()

    # -- internals ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._refresh_rows()

    def on_resize(self) -> None:
        self._refresh_rows()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = event.column_key.value
        if key is not None:
            self.set_sort(key)

    def _ordered(self, rows: list[AppRow]) -> list[AppRow]:
        """Ordinary rows by the sort column, steadily (see steady_order) for a numeric one, a
        rate by the rows' recent means where known; then the pinned rows, in fixed order,
        whatever the direction."""
        column = SORTS[self.sort_column]
        plain = [r for r in rows if not _pin(r)]
        pinned = sorted((r for r in rows if _pin(r)), key=_pin)
        sides = _MEAN_SIDES.get(self.sort_column)
        if sides is not None and self._means:
            means = self._means

            def mean(row: AppRow) -> float:
                found = means.get(row.name)
                pair = found if found is not None else (row.rate_in, row.rate_out)
                return sum(pair[side] for side in sides)
            plain = steady_order(plain, lambda r: r.name, mean, self._order, {},
                                 self.sort_reverse, MEAN_MARGIN)
        elif column.numeric:
            def figure(row: AppRow) -> float:
                return float(column.value(row))
            before = {n: figure(r) for n, r in self._before.items()}
            plain = steady_order(plain, lambda r: r.name, figure, self._order, before,
                                 self.sort_reverse)
        else:
            plain.sort(key=lambda r: (column.value(r), r.name.lower()),
                       reverse=self.sort_reverse)
        return plain + pinned

    def _visible(self) -> list[AppRow]:
        """Filtered, sorted and capped rows; the overflow is summed into one summary row."""
        matched = [r for r in self._source if row_matches(r, self.pattern)]
        self.hidden_by_filter = len(self._source) - len(matched)
        ordered = self._ordered(matched)
        plain = [r for r in ordered if not _pin(r)]
        pinned = [r for r in ordered if _pin(r)]
        room = max(1, self.max_rows - len(pinned) - 1)
        if len(plain) <= room + 1:
            return ordered
        keep, rest = plain[:room], plain[room:]
        more = AppRow(
            MORE_KEY, RowKind.APP, Unit.IP,
            sum(r.rate_in for r in rest), sum(r.rate_out for r in rest),
            sum(r.total_in for r in rest), sum(r.total_out for r in rest),
            sum(r.flows for r in rest),
        )
        return [*keep, *pinned, more]

    def _layout(self) -> tuple[tuple[str, ...], bool, int]:
        width = self.size.width or 80

        def fixed(order: tuple[str, ...]) -> int:
            return sum(COLUMNS[k].width + 2 for k in order if k != "app") + 2

        order = self._order_for(False)
        if self.has_where and width - fixed(self._order_for(True)) - 2 >= MIN_NAME_BESIDE_WHERE:
            order = self._order_for(True)
        trend_on = width - fixed(order) - (TREND_WIDTH + 2) >= 24
        name_width = max(12, width - fixed(order) - (TREND_WIDTH + 2 if trend_on else 0) - 2)
        return order, trend_on, name_width

    def _rebuild_columns(self, layout: tuple[tuple[str, ...], bool, int]) -> None:
        order, trend_on, name_width = layout
        self.clear(columns=True)
        self._shown.clear()
        self._cells.clear()
        for key in order:
            col = COLUMNS[key]
            self.add_column(self._label(key), key=key,
                            width=name_width if key == "app" else col.width)
        if trend_on:
            self.add_column(Text("Trend"), key="trend", width=TREND_WIDTH)
            if not self.show_trend:
                self.post_message(self.TrendShown())
        self.show_trend = trend_on
        self._built_for = layout
        self._name_width = name_width

    def set_name_label(self, label: str) -> None:
        """What the rows are: "App", or "Process" in the process view."""
        if label != self.name_label:
            self.name_label = label
            self._update_labels()

    def _label(self, key: str) -> Text:
        col = COLUMNS[key]
        name = self.name_label if key == "app" else col.label
        if key != self.sort_column and key not in BOTH.get(self.sort_column, ()):
            return Text(name, justify="right" if col.numeric else "left")
        arrow = "▼" if self.sort_reverse else "▲"
        return Text(f"{name} {arrow}", style="bold",
                    justify="right" if col.numeric else "left")

    def _update_labels(self) -> None:
        for key, column in self.columns.items():
            if key.value in COLUMNS:
                column.label = self._label(key.value)
        self._require_update_dimensions = True
        self.refresh()

    def _cells_for(self, row: AppRow) -> tuple[str, ...]:
        cells: list[str] = []
        for key in self.order:
            if key == "app":
                pipe_mark = 2 if row.kind == RowKind.PIPE else 0  # " ⇄" (see _styled)
                cells.append(fit_name(row.name, self._name_width - pipe_mark))
            elif key == "where":
                cells.append(where(row))
            elif key in ("rate_in", "rate_out", "total_in", "total_out"):
                cells.append(human_bytes(getattr(row, key)))
            elif key == "procs":
                cells.append(str(len(row.processes)) if row.kind != RowKind.PIPE else "-")
            else:
                cells.append(str(row.flows))
        if self.show_trend:
            cells.append(bars(self._trends.get(row.name, ()), self._trend_top)
                         .rjust(TREND_WIDTH))
        return tuple(cells)

    def _styled(self, row: AppRow, cells: tuple[str, ...]) -> list[Text]:
        out: list[Text] = []
        keys = [*self.order, "trend"] if self.show_trend else list(self.order)
        for key, cell in zip(keys, cells, strict=True):
            if key == "app":
                style = "italic" if _pin(row) else ("bold" if row.kind == RowKind.PIPE else "")
                suffix = " ⇄" if row.kind == RowKind.PIPE else ""
                out.append(Text(cell + suffix, style=style, no_wrap=True, overflow="ellipsis"))
            elif key == "trend":
                out.append(Text(cell, style="green"))
            elif key == "where":
                out.append(Text(cell, no_wrap=True, overflow="ellipsis"))
            else:
                out.append(Text(cell, justify="right"))
        return out

    def _restore_cursor(self, key: str | None) -> None:
        if key is None or not self.row_count:
            return
        try:
            index = self.get_row_index(key)
        except Exception:
            return
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False)

    def _refresh_rows(self) -> None:
        if not self.is_mounted:
            return
        layout = self._layout()
        keep = self.selected_key  # before a column rebuild empties the table
        if layout != self._built_for:
            self._rebuild_columns(layout)
        visible = self._visible()
        wanted = {r.name: r for r in visible}
        with self.app.batch_update():
            for name in [n for n in self._shown if n not in wanted]:
                self.remove_row(name)
                del self._shown[name]
                self._cells.pop(name, None)
            keys = [*self.order, "trend"] if self.show_trend else list(self.order)
            for row in visible:
                cells = self._cells_for(row)
                old = self._cells.get(row.name)
                if old is None:
                    self.add_row(*self._styled(row, cells), key=row.name)
                elif old != cells:
                    styled = self._styled(row, cells)
                    for key, new, was, text in zip(keys, cells, old, styled, strict=True):
                        if new != was:
                            self.update_cell(row.name, key, text)
                self._shown[row.name] = row
                self._cells[row.name] = cells
            self._order = [r.name for r in visible]
            # by the name as shown (fit_name may have cut it; rows cut alike tie and keep
            # their places, the sort being stable)
            rank: dict[str, int] = {}
            for i, r in enumerate(visible):
                rank.setdefault(self._cells[r.name][0], i)
            current = [str(r.key.value) for r in self.ordered_rows]
            if current != [r.name for r in visible]:
                self.sort("app", key=lambda cell: rank.get(cell.plain.removesuffix(" ⇄"), 0))
            self._restore_cursor(keep)

    def shown_row(self, key: str) -> AppRow | None:
        return self._shown.get(key)

