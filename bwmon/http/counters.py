"""Monotonic per-label byte counters fed from the cumulative totals of successive snapshots.

A Prometheus counter must never go down while the exporter lives. Snapshot totals usually only
grow, but a row can vanish and come back, or a pipe's child restart from zero; here each label
set accumulates non-negative deltas, so the exported value only ever grows. The number of label
sets is capped: names beyond the cap share one "other" series.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

OTHER = "(other)"


@dataclass(slots=True)
class _Track:
    label: str  # the exported label: the name itself or OTHER
    last: tuple[int, int]  # the previous cumulative (in, out)
    seen: float  # snapshot time it was last seen


class MonotonicCounters:
    """Cumulative (in, out) byte counters per name, at most `cap` names plus OTHER.

    A name keeps its own series once given one; after `expire` seconds unseen it is dropped
    and frees its place (a later return starts a new series, which Prometheus reads as a reset).
    """

    def __init__(self, cap: int = 100, expire: float = 3600.0) -> None:
        self.cap = cap
        self.expire = expire
        self._tracks: dict[str, _Track] = {}
        self._values: dict[str, list[int]] = {}
        self._expired_at = float("-inf")

    def update(self, now: float, totals: Iterable[tuple[str, int, int]]) -> None:
        """Feed one snapshot's cumulative (name, total_in, total_out) rows, taken at `now`."""
        if now - self._expired_at >= min(self.expire, 10.0) or now < self._expired_at:
            self._expire(now)
            self._expired_at = now
        for name, total_in, total_out in totals:
            track = self._tracks.get(name)
            if track is None:
                own = sum(1 for v in self._values if v != OTHER)
                label = name if own < self.cap else OTHER
                track = self._tracks[name] = _Track(label, (0, 0), now)
            d_in = total_in - track.last[0] if total_in >= track.last[0] else total_in
            d_out = total_out - track.last[1] if total_out >= track.last[1] else total_out
            value = self._values.setdefault(track.label, [0, 0])
            value[0] += d_in
            value[1] += d_out
            track.last = (total_in, total_out)
            track.seen = now

    def _expire(self, now: float) -> None:
        stale = [n for n, t in self._tracks.items() if now - t.seen > self.expire]
        for name in stale:
            track = self._tracks.pop(name)
            if track.label != OTHER:
                self._values.pop(track.label, None)

    def items(self) -> Iterator[tuple[str, int, int]]:
        """(label, bytes in, bytes out) of every exported series."""
        for label, (b_in, b_out) in self._values.items():
            yield label, b_in, b_out

    def __len__(self) -> int:
        return len(self._values)
