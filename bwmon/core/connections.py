"""Per app, its open connections and the list of the largest ones shown in its row.

Kept incrementally by the accounting: an end enters when its usage is placed, moves when a
new usage of the same end replaces it, and leaves when its flow closes. The shown list is
redone each tick from the previous list plus the ends that moved, not from every open end.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from bwmon.core.ends import EndKey, EndUsage
from bwmon.core.model import Connection

# Connections listed per app row (largest first) for the detail pane.
MAX_CONNECTIONS = 50


class EndTotals(Protocol):
    """What the list needs of an end's totals (the accounting's per-end record)."""

    total_in: int
    total_out: int


def _fmt_endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class AppConnections:
    """Open ends per app (with their latest usage), and each app's shown list."""

    def __init__(self) -> None:
        self._ends: dict[str, dict[EndKey, EndUsage]] = {}  # open, shown ends per app
        self._top: dict[str, list[EndKey]] = {}  # per app: the ends its list shows
        self._touched: dict[str, set[EndKey]] = {}  # per app: ends added or moved this tick

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

    def remove(self, app: str, end: EndKey, usage: EndUsage) -> None:
        """`usage`'s flow closed: its end leaves the app unless a newer usage holds it."""
        ends = self._ends.get(app)
        if ends is not None and ends.get(end) is usage:
            del ends[end]
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
            return ()
        top = self._top.get(app)
        if len(ends) <= MAX_CONNECTIONS or top is None or any(k not in ends for k in top):
            candidates: Iterable[EndKey] = ends
        else:
            candidates = set(top).union(self._touched.get(app, ()))

        def size(k: EndKey) -> int:
            t = totals[k]
            return t.total_in + t.total_out

        chosen = heapq.nlargest(MAX_CONNECTIONS, candidates, key=size)
        self._top[app] = chosen
        out = []
        for k in chosen:
            t = totals[k]
            out.append(Connection(k.proto, _fmt_endpoint(k.local, k.lport),
                                  _fmt_endpoint(k.remote, k.rport), t.total_in, t.total_out,
                                  ends[k].entry.state))
        return tuple(out)

    def forget_apps(self, keep: Callable[[str], bool]) -> None:
        """Drop the shown lists of apps whose rows are gone."""
        for app in [a for a in self._top if not keep(a)]:
            del self._top[app]
