"""`h`: the history view — what each app moved over the last hour, day, week or month.

Read from the history store (bwmon.core.store) in a worker thread, again every minute while
shown; the live table underneath is untouched. Keys: 1–4 choose the range, `s` switches
between every app and the app selected in the table, `b` between apps, containers and systemd
units (of every app or of the selected one), Esc (or h, q) goes back.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from bwmon.core.sanitize import clean
from bwmon.core.store import calendar
from bwmon.core.store.queries import GROUPINGS, Grouping, Selection
from bwmon.core.store.ranges import RANGES, RangeAnswer, answer
from bwmon.core.store.schema import StoreError, open_reader
from bwmon.tui.format import bars, human_bytes

RANGE_KEYS = tuple(RANGES)  # 1: 1h, 2: 24h, 3: 7d, 4: 30d
REFRESH_SECONDS = 60.0
MAX_APPS = 50  # rows of the all-apps view; the rest are summed in one line
BAR_WIDTH = 30
# per grouping: the first column's title, and the name of the bytes without one
BY_TITLE = {"app": ("App", ""), "container": ("Container", "(no container)"),
            "unit": ("Unit", "(no unit)")}


def recorder_note(recorder: object) -> str:
    """Who records the store, from the engine's recorder (None: this bwmon records nothing)."""
    from bwmon.core.store.recorder import Recorder, StoreState

    if not isinstance(recorder, Recorder):
        return "This bwmon does not record history (history.enabled = false, or a demo)."
    if recorder.state is StoreState.READING:
        pid = f" (pid {recorder.other_writer})" if recorder.other_writer else ""
        return f"{recorder.path} is recorded by another bwmon{pid}; this one only reads it."
    if recorder.state is StoreState.FAILED:
        return recorder.problem or f"{recorder.path} cannot be written now: the alert log says why."
    return (f"Recorded in {recorder.path} every {recorder.flush_seconds:g} s; the last "
            "minute shows after the next write.")


def recorder_failed(recorder: object) -> bool:
    """This bwmon records the store but cannot write it now."""
    from bwmon.core.store.recorder import Recorder, StoreState

    return isinstance(recorder, Recorder) and recorder.state is StoreState.FAILED


class HistoryScreen(ModalScreen[None]):
    """Per-app totals and a bar per period over the chosen range, from the history store.

    Modal (over the whole screen): the main screen's keys do nothing while it shows."""

    BINDINGS = [  # noqa: RUF012 - Textual's convention
        Binding("escape,h,q", "dismiss", "Back"),
        *[Binding(str(i + 1), f"range({i})", name) for i, name in enumerate(RANGE_KEYS)],
        Binding("s", "toggle_scope", "All/selected"),
        Binding("b", "cycle_by", "By app/container/unit"),
    ]

    def __init__(self, store: Path | None, selected: str | None, note: str = "",
                 failed: bool = False) -> None:
        super().__init__()
        self.failed = failed  # this bwmon cannot write the store (the note says why)
        self.store = store
        self.selected = selected
        self.note = note  # who records the store (this bwmon, another one, nobody)
        self.range = "24h"
        self.one_app = False
        self.by: Grouping = "app"  # what the rows are: apps, containers or systemd units
        self.answer: RangeAnswer | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="history-head")
        with VerticalScroll(id="history-box"):
            yield Static("loading…", id="history-body")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.load()
        self.set_interval(REFRESH_SECONDS, self.load)

    def action_range(self, index: int) -> None:
        self.range = RANGE_KEYS[index]
        self.load()

    def action_toggle_scope(self) -> None:
        if self.selected is None:
            self.notify("no app is selected in the table", severity="warning")
            return
        self.one_app = not self.one_app
        self.load()

    def action_cycle_by(self) -> None:
        self.by = GROUPINGS[(GROUPINGS.index(self.by) + 1) % len(GROUPINGS)]
        self.load()

    @work(thread=True, exclusive=True)
    def load(self) -> None:
        """Query the store off the event loop; the answer is drawn in it."""
        if self.store is None:
            self.app.call_from_thread(self._show, None, "history is off (history.enabled = "
                                      "false in bwmon.toml)")
            return
        until = int(time.time()) + 1
        since = until - RANGES[self.range]
        if self.failed and not self.store.exists():
            # the note says why it cannot be written; "bwmon records one" would contradict it
            self.app.call_from_thread(self._show, None, "Nothing is recorded yet.")
            return
        try:
            conn = open_reader(self.store)
        except StoreError as exc:
            self.app.call_from_thread(self._show, None, str(exc))
            return
        try:
            one = self.selected if self.one_app else None
            if self.by == "app":
                got = answer(conn, since, until, top=MAX_APPS, apps=[one] if one else None)
            else:  # the containers (units) of every app, or of the selected one
                got = answer(conn, since, until, top=MAX_APPS, by=self.by,
                             only=Selection(app=one))
        finally:
            conn.close()
        self.app.call_from_thread(self._show, got, None)

    def _show(self, got: RangeAnswer | None, error: str | None) -> None:
        self.answer, self.error = got, error
        scope = clean(self.selected) if self.one_app and self.selected else "every app"
        if self.by != "app":
            scope += f", by {self.by}"
        head = Text.assemble(("History", "bold"), f" — last {self.range}, {scope}")
        if self.note:
            head.append(f"\n{self.note}", style="dim")
        self.query_one("#history-head", Static).update(head)
        body = self.query_one("#history-body", Static)
        if got is None:
            body.update(Text(error or "", style="bold"))
            return
        body.update(self.render_answer(got))

    def render_answer(self, got: RangeAnswer) -> Table | Text:
        if not got.totals:
            return Text("Nothing recorded in this range yet.")
        per = {"minutes": "minute", "hours": "hour", "days": "day"}[got.table]
        span = (f"{calendar.local_text(got.since)} to {calendar.local_text(got.until - 1)}, "
                f"one bar per {per} (in + out)")
        if self.one_app and self.selected and self.by == "app":
            return self._one_app_table(got, span)
        title, nameless = BY_TITLE[self.by]
        if self.one_app and self.selected:
            span = f"{clean(self.selected)}: {span}"
        table = Table(title=span, title_justify="left", expand=True, box=None)
        table.add_column(title, ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column("In", justify="right")
        table.add_column("Out", justify="right")
        table.add_column("Total", justify="right")
        table.add_column("Trend", no_wrap=True, width=BAR_WIDTH)
        top = max((max((i + o for i, o in zip(s.bytes_in, s.bytes_out, strict=True)),
                       default=0) for s in got.series), default=0)
        series = {s.name: s for s in got.series}
        for total in got.totals[:MAX_APPS]:
            s = series.get(total.name)
            trend = bars(self._cells(got, s), float(top)) if s else ""
            table.add_row(clean(total.name) or nameless, human_bytes(total.bytes_in),
                          human_bytes(total.bytes_out), human_bytes(total.total), trend)
        rest = got.totals[MAX_APPS:]
        if rest:
            table.add_row(f"({len(rest)} more)", human_bytes(sum(t.bytes_in for t in rest)),
                          human_bytes(sum(t.bytes_out for t in rest)),
                          human_bytes(sum(t.total for t in rest)), "")
        return table

    def _cells(self, got: RangeAnswer, s: object) -> list[float | None]:
        """The app's bytes per bar: the range cut into BAR_WIDTH equal slices."""
        from bwmon.core.store.ranges import AppSeries

        assert isinstance(s, AppSeries)
        width = BAR_WIDTH
        cells: list[float | None] = [0.0] * width
        length = got.until - got.since
        for t, i, o in zip(s.starts, s.bytes_in, s.bytes_out, strict=True):
            k = min(width - 1, max(0, (t - got.since) * width // length))
            cells[k] = (cells[k] or 0.0) + i + o
        return cells

    def _one_app_table(self, got: RangeAnswer, span: str) -> Table:
        table = Table(title=f"{clean(self.selected or '')}: {span}", title_justify="left",
                      expand=True, box=None)
        fmt = "%H:%M" if got.table == "minutes" else "%a %d %H:%M" if got.table == "hours" \
            else "%a %Y-%m-%d"
        table.add_column("Start", no_wrap=True)
        table.add_column("In", justify="right")
        table.add_column("Out", justify="right")
        table.add_column("", ratio=1, no_wrap=True)
        s = got.series[0] if got.series else None
        if s is None:
            return table
        top = max((i + o for i, o in zip(s.bytes_in, s.bytes_out, strict=True)), default=0)
        for t, i, o in zip(s.starts, s.bytes_in, s.bytes_out, strict=True):
            share = (i + o) / top if top else 0.0
            table.add_row(time.strftime(fmt, time.localtime(t)), human_bytes(i), human_bytes(o),
                          "█" * max(1, int(share * 40)) if i + o else "")
        return table
