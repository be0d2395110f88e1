"""One count per flow end when two sources measure it: conntrack and the socket's counters.

For each local end both sources see, bwmon counts the larger of the two cumulative figures: the
bytes conntrack counted for it (whole IP packets) and the bytes its socket counted (payload),
each since bwmon first saw it. So nothing is counted twice, and nothing is lost when one source
starts or stops counting a flow mid-way: a flow created after conntrack accounting was switched
on is counted in IP bytes (conntrack's are the larger), with the socket's filling in the rates
between two reads of the table; a flow that was already open when accounting or a tracking rule
came on keeps being counted by its socket (conntrack's figure starts late and stays below).
A pure step: usages are rewritten in place with the increment they add.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping

from bwmon.core.attribution.ends import EndKey, EndUsage

# An end neither source moved for this many seconds is forgotten (bounded memory). Seconds, not
# ticks: what it must outlast is the time between the socket's count of some bytes and
# conntrack's count of the same ones, at most the conntrack read spacing (5 s, or a stretched
# tick); a horizon of 300 ticks held ~21,000 ends (4 MiB) under 35 connections a second.
MERGE_SECONDS = 60.0
SWEEP_TICKS = 32
MERGE_MAX = 400_000


class ByteMerge:
    """Per end: [socket in, socket out, conntrack in, conntrack out, last tick moved]."""

    def __init__(self, protos: frozenset[str] = frozenset()) -> None:
        self.protos = protos  # the protocols some socket source measures: only those merge
        self._ends: dict[EndKey, list[int]] = {}
        self._swept = 0
        self._marks: deque[tuple[int, float]] = deque()  # (tick, when) of the sweeps' calls

    def __len__(self) -> int:
        return len(self._ends)

    def conntrack(self, usages: Iterable[EndUsage], tick: int,
                  elsewhere: Mapping[str, ByteMerge] | None = None) -> None:
        """Rewrite conntrack usages of ends a socket source measures to their increments.
        `elsewhere` (local address -> merge): an end local to another namespace that counts
        its sockets is merged there (a container's NAT'd flow seen by the host's table)."""
        if elsewhere:
            mine: list[EndUsage] = []
            for u in usages:
                other = elsewhere.get(u.end.local) if u.end is not None else None
                if other is None or other is self:
                    mine.append(u)
                else:
                    other.conntrack((u,), tick)
            usages = mine
        protos = self.protos
        if not protos:
            return
        ends = self._ends
        for u in usages:
            end = u.end
            if end is None or end.proto not in protos or not (u.d_in or u.d_out):
                continue
            e = ends.get(end)
            if e is None:
                e = ends[end] = [0, 0, 0, 0, tick]
            e[4] = tick
            before = e[0] if e[0] > e[2] else e[2]
            e[2] += u.d_in
            u.d_in = e[2] - before if e[2] > before else 0
            before = e[1] if e[1] > e[3] else e[3]
            e[3] += u.d_out
            u.d_out = e[3] - before if e[3] > before else 0

    def socket(self, u: EndUsage, tick: int) -> None:
        """Rewrite one socket usage to the increment it adds over what conntrack counted."""
        end = u.end
        if end is None or not (u.d_in or u.d_out):
            return
        ends = self._ends
        e = ends.get(end)
        if e is None:
            e = ends[end] = [0, 0, 0, 0, tick]
        e[4] = tick
        before = e[0] if e[0] > e[2] else e[2]
        e[0] += u.d_in
        u.d_in = e[0] - before if e[0] > before else 0
        before = e[1] if e[1] > e[3] else e[3]
        e[1] += u.d_out
        u.d_out = e[1] - before if e[1] > before else 0

    def conntrack_counted(self, end: EndKey) -> bool:
        """Whether conntrack counted bytes of this end (since it was last forgotten)."""
        e = self._ends.get(end)
        return e is not None and bool(e[2] or e[3])

    def sweep(self, tick: int, now: float | None = None) -> None:
        """Forget ends idle for MERGE_SECONDS (at most every SWEEP_TICKS ticks); called every
        tick, with the monotonic time (`now`, default the clock's)."""
        now = time.monotonic() if now is None else now
        marks = self._marks
        marks.append((tick, now))
        edge = now - MERGE_SECONDS
        while len(marks) > 1 and marks[1][1] <= edge:  # the newest mark at least that old
            marks.popleft()
        if tick - self._swept < SWEEP_TICKS and len(self._ends) < MERGE_MAX:
            return
        self._swept = tick
        # ends last moved before the tick of that mark were idle for MERGE_SECONDS at least
        horizon = marks[0][0] if marks[0][1] <= edge else -1
        if len(self._ends) < MERGE_MAX and horizon < 0:
            return
        if len(self._ends) >= MERGE_MAX:  # a storm of short connections: keep the newest half
            horizon = sorted(e[4] for e in self._ends.values())[len(self._ends) // 2]
        self._ends = {k: e for k, e in self._ends.items() if e[4] >= horizon}
