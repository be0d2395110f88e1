"""Bytes per container and per systemd unit for /metrics, from the snapshots' process rows.

Each process's cumulative totals give its deltas tick by tick (a process seen for the first
time counts from zero, as its row does), added to its container's and its unit's counters: so
a process that exits and whose row goes does not take its bytes back. At most `cap` names get
a series of their own in each family; later names share OTHER (bounded label cardinality, as
for apps).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from bwmon.core.model import ProcessRow, ProcKey
from bwmon.http.counters import OTHER


class _Capped:
    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.values: dict[str, list[int]] = {}

    def add(self, name: str, d_in: int, d_out: int) -> None:
        value = self.values.get(name)
        if value is None:
            own = len(self.values) - (OTHER in self.values)
            label = name if own < self.cap else OTHER
            value = self.values.setdefault(label, [0, 0])
        value[0] += d_in
        value[1] += d_out

    def items(self) -> Iterator[tuple[str, int, int]]:
        for name, (b_in, b_out) in sorted(self.values.items()):
            yield name, b_in, b_out


class PlaceCounters:
    """Monotonic (in, out) byte counters per container and per systemd unit."""

    def __init__(self, cap: int = 100) -> None:
        self.containers = _Capped(cap)
        self.units = _Capped(cap)
        self._last: dict[ProcKey, tuple[int, int]] = {}

    def update(self, processes: Iterable[ProcessRow]) -> None:
        last, seen = self._last, {}
        for p in processes:
            key = p.info.key
            was_in, was_out = last.get(key, (0, 0))
            d_in, d_out = max(0, p.total_in - was_in), max(0, p.total_out - was_out)
            seen[key] = (max(was_in, p.total_in), max(was_out, p.total_out))
            if d_in or d_out:
                if p.info.container:
                    self.containers.add(p.info.container, d_in, d_out)
                if p.info.unit:
                    self.units.add(p.info.unit, d_in, d_out)
        self._last = seen
