"""Per app, its open connections and the list of the largest ones shown in its row.

Kept incrementally by the accounting: an end enters when its usage is placed, moves when a
new usage of the same end replaces it, and leaves when its flow closes. The shown list is
redone each tick from the previous list plus the ends that moved, not from every open end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from operator import attrgetter
from typing import Protocol

from bwmon.core.attribution.ends import EndKey, EndUsage
from bwmon.core.model import Connection

# Connections listed per app row (largest first) for the detail pane.
MAX_CONNECTIONS = 50
_TOTAL = attrgetter("total")


class EndTotals(Protocol):
    """What the list needs of an end's totals (the accounting's per-end record)."""

    total_in: int
    total_out: int
    total: int  # total_in + total_out, kept by the owner (the ranking reads it in C)


def _fmt_endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class AppConnections:
    """Open ends per app (with their latest usage), and each app's shown list."""

    def __init__(self) -> None:
        self._ends: dict[str, dict[EndKey, EndUsage]] = {}  # open, shown ends per app
        self._top: dict[str, list[EndKey]] = {}  # per app: the ends its list shows
        self._touched: dict[str, set[EndKey]] = {}  # per app: ends added or moved this tick
        self._shown: dict[str, tuple[Connection, ...]] = {}  # per app: its last list
        self._rows: dict[str, dict[EndKey, Connection]] = {}  # per app: that list's rows
        self._changed: set[str] = set()  # apps with ends added, moved or closed since then

    def new_tick(self) -> None:
        self._touched = {}

    def put(self, app: str, end: EndKey, usage: EndUsage) -> None:
        """`usage` is now the open usage of `end` in `app` (new, or replacing the previous)."""
        ends = self._ends.get(app)
        if ends is None:
            ends = self._ends[app] = {}
        ends[end] = usage
        touched = self._touched.get(app)
        if touched is None:
            touched = self._touched[app] = set()
        touched.add(end)
        self._changed.add(app)

    def remove(self, app: str, end: EndKey, usage: EndUsage) -> None:
        """`usage`'s flow closed: its end leaves the app unless a newer usage holds it."""
        ends = self._ends.get(app)
        if ends is not None and ends.get(end) is usage:
            del ends[end]
            self._changed.add(app)
            if not ends:
                del self._ends[app]

    def listed(self, app: str, totals: Mapping[EndKey, EndTotals]) -> tuple[Connection, ...]:
        """The app's open connections, largest first, at most MAX_CONNECTIONS of them.

        Totals only grow, so an end outside the previous list can only enter it if it moved
        bytes this tick: the list is redone from the previous one plus this tick's ends, and
        from every open end only when one of the listed ends closed.
        """
        ends = self._ends.get(app)
        if not ends:
            self._top.pop(app, None)
            self._shown.pop(app, None)
            self._rows.pop(app, None)
            return ()
        shown = self._shown.get(app)
        if shown is not None and app not in self._changed:
            return shown  # no end of it moved or closed: every figure listed still holds
        self._changed.discard(app)
        top = self._top.get(app)
        if len(ends) <= MAX_CONNECTIONS or top is None or not all(map(ends.__contains__, top)):
            candidates = list(ends)
        else:
            candidates = list(set(top).union(self._touched.get(app, ())))
        # largest first, ties in candidate order: a sort keyed by C callables (3x nlargest
        # with a Python key function, at the ~130 candidates of a busy app)
        sizes = list(map(_TOTAL, map(totals.__getitem__, candidates)))
        order = sorted(range(len(candidates)), key=sizes.__getitem__, reverse=True)
        chosen = list(map(candidates.__getitem__, order[:MAX_CONNECTIONS]))
        self._top[app] = chosen
        rows = self._rows.get(app, {})
        out = []
        for k in chosen:  # a listed end whose figures did not move keeps its row object
            t = totals[k]
            state = ends[k].entry.state
            row = rows.get(k)
            if row is None or (row.bytes_in, row.bytes_out, row.state) != (
                    t.total_in, t.total_out, state):
                row = Connection(k.proto, _fmt_endpoint(k.local, k.lport),
                                 _fmt_endpoint(k.remote, k.rport), t.total_in, t.total_out,
                                 state)
            out.append(row)
        self._rows[app] = dict(zip(chosen, out, strict=True))
        shown = self._shown[app] = tuple(out)
        return shown

    def forget_apps(self, keep: Callable[[str], bool]) -> None:
        """Drop the shown lists of apps whose rows are gone."""
        for app in [a for a in self._top if not keep(a)]:
            del self._top[app]
            self._shown.pop(app, None)
            self._rows.pop(app, None)
