"""Per-minute byte counts of each app, accumulated from snapshots between two writes (pure).

A snapshot's rows carry this tick's rates and the seconds the tick covered; rate × elapsed is
the tick's bytes, exactly (rates are bytes divided by elapsed; rounding undoes the division
for any count below 2**50). The first tick (elapsed 0) only sets the baseline: what conntrack
held before bwmon started is either in the store from the previous run or of unknown time.
"""

from __future__ import annotations

from dataclasses import dataclass

from bwmon.core.model import Snapshot

MINUTE = 60


@dataclass(frozen=True, slots=True, order=True)
class AppKey:
    """What a history row belongs to: the app, the unit of its bytes, and (where the model
    knows them) its container and systemd unit."""

    name: str
    unit: str
    container: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class MinuteBytes:
    """Bytes in and out of one app in the minute starting at `minute` (UTC epoch seconds)."""

    minute: int
    app: AppKey
    bytes_in: int
    bytes_out: int


class MinuteTally:
    """Sums the bytes of each (minute, app) until `take()` hands them to the writer.

    `cap` bounds memory while the store cannot be written (a full disk): beyond it the oldest
    minutes are dropped, and `dropped` counts their rows.
    """

    def __init__(self, cap: int = 50_000) -> None:
        self.cap = cap
        self.dropped = 0
        self._sums: dict[tuple[int, AppKey], list[int]] = {}

    def __len__(self) -> int:
        return len(self._sums)

    def add(self, snap: Snapshot) -> None:
        if snap.elapsed <= 0:
            return
        minute = int(snap.time // MINUTE) * MINUTE
        for row in snap.apps:
            b_in = round(row.rate_in * snap.elapsed)
            b_out = round(row.rate_out * snap.elapsed)
            if b_in <= 0 and b_out <= 0:
                continue
            key = (minute, AppKey(row.name, row.unit.value))
            sums = self._sums.get(key)
            if sums is None:
                self._sums[key] = [max(0, b_in), max(0, b_out)]
            else:
                sums[0] += max(0, b_in)
                sums[1] += max(0, b_out)
        if len(self._sums) > self.cap:
            self._trim()

    def add_rows(self, rows: list[MinuteBytes]) -> None:
        """Put back rows a write could not store (they are tried again with the next one)."""
        for r in rows:
            sums = self._sums.setdefault((r.minute, r.app), [0, 0])
            sums[0] += r.bytes_in
            sums[1] += r.bytes_out
        if len(self._sums) > self.cap:
            self._trim()

    def take(self) -> list[MinuteBytes]:
        """The sums so far, oldest minute first; the tally starts empty again."""
        sums, self._sums = self._sums, {}
        return [MinuteBytes(m, app, s[0], s[1]) for (m, app), s in sorted(sums.items())]

    def _trim(self) -> None:
        keys = sorted(self._sums)
        drop = keys[: len(keys) - self.cap]
        for k in drop:
            del self._sums[k]
        self.dropped += len(drop)
