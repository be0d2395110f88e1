"""Bounded per-row rate histories (ring buffers) for sparklines, charts and the HTTP API."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from bwmon.core.model import AppRow, HistoryPoint
from bwmon.core.regrouping import Moves, merge_history


class History:
    """Keeps the last `capacity` points per row name; rows unseen for `capacity` ticks expire.

    The engine appends once per tick; consumers read. Memory is bounded by capacity × live rows.
    """

    def __init__(self, capacity: int = 600) -> None:
        self.capacity = capacity
        self._series: dict[str, deque[HistoryPoint]] = {}
        self._last_seen: dict[str, int] = {}
        self._tick = 0

    def record(self, time: float, rows: Iterable[AppRow]) -> None:
        self._tick += 1
        for row in rows:
            series = self._series.get(row.name)
            if series is None:
                series = self._series[row.name] = deque(maxlen=self.capacity)
            series.append(HistoryPoint(time, row.rate_in, row.rate_out))
            self._last_seen[row.name] = self._tick
        stale = [n for n, t in self._last_seen.items() if self._tick - t >= self.capacity]
        for name in stale:
            del self._series[name]
            del self._last_seen[name]

    def regroup(self, moves: Moves) -> None:
        """Rows were renamed (groups changed): their points go to the rows that took their
        processes, so a new row starts with its processes' past and no dip."""
        if not moves:
            return
        names = set(moves).union(*moves.values())
        merged = merge_history({n: self._series[n] for n in names if n in self._series}, moves)
        for name in moves:
            self._series.pop(name, None)
            self._last_seen.pop(name, None)
        for name, points in merged.items():
            self._series[name] = deque(points, maxlen=self.capacity)
            self._last_seen[name] = self._tick

    def names(self) -> list[str]:
        return list(self._series)

    def mean_rates(self, name: str, seconds: float) -> tuple[float, float] | None:
        """The mean rates in and out of `name` over its points of the last `seconds` (the
        newest one and those less than `seconds` older); None if it has no points."""
        series = self._series.get(name)
        if not series:
            return None
        cutoff = series[-1].time - seconds
        total_in = total_out = 0.0
        count = 0
        for point in reversed(series):
            if point.time <= cutoff:
                break
            total_in += point.rate_in
            total_out += point.rate_out
            count += 1
        return total_in / count, total_out / count

    def points(self, name: str, seconds: float | None = None) -> tuple[HistoryPoint, ...]:
        """The retained points of `name`, optionally only those of the last `seconds`."""
        series = self._series.get(name)
        if not series:
            return ()
        if seconds is None:
            return tuple(series)
        cutoff = series[-1].time - seconds
        return tuple(p for p in series if p.time > cutoff)
