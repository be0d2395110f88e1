"""Per-minute byte counts of each app, accumulated from snapshots between two writes (pure).

A snapshot's rows carry this tick's rates and the seconds the tick covered; rate × elapsed is
the tick's bytes, exactly (rates are bytes divided by elapsed; rounding undoes the division
for any count below 2**50). The first tick (elapsed 0) only sets the baseline: what conntrack
held before bwmon started is either in the store from the previous run or of unknown time.

An app's bytes are split by the places of its processes, (container, systemd unit): an app
"nginx" running in two containers gives two keys. The parts always add up to the app row's
bytes (`split_exactly`): bytes no process of the app accounts for (none should) go to the key
without a place, so the store's per-app sums are those of the live table.
"""

from __future__ import annotations

from dataclasses import dataclass

from bwmon.core.model import RowKind, Snapshot

MINUTE = 60


@dataclass(frozen=True, slots=True)
class AppKey:
    """What a history row belongs to: the app, the unit of its bytes, and (where the model
    knows them) its container and systemd unit."""

    name: str
    unit: str
    container: str | None = None  # None: none (bwmon's own namespace) or not known
    service: str | None = None  # the systemd unit; None: none or not known

    @property
    def order(self) -> tuple[str, str, str, str]:
        """A sort key (None sorts as "": keys with and without a place compare)."""
        return self.name, self.unit, self.container or "", self.service or ""


Place = tuple[str | None, str | None]  # (container, systemd unit) of a process
NOWHERE: Place = (None, None)


def places_of(snap: Snapshot) -> dict[str, dict[Place, list[int]]]:
    """This tick's bytes in and out of each app's processes, summed per place; only apps
    whose processes name a container or unit are listed (the rest need no split)."""
    moved = [p for p in snap.processes if p.rate_in or p.rate_out]
    if not any(p.info.container or p.info.unit for p in moved):
        return {}
    out: dict[str, dict[Place, list[int]]] = {}
    placed: set[str] = set()
    elapsed = snap.elapsed
    for p in moved:
        info = p.info
        place = (info.container or None, info.unit or None)
        if place != NOWHERE:
            placed.add(p.app)
        parts = out.get(p.app)
        if parts is None:
            parts = out[p.app] = {}
        sums = parts.get(place)
        if sums is None:
            sums = parts[place] = [0, 0]
        sums[0] += max(0, round(p.rate_in * elapsed))
        sums[1] += max(0, round(p.rate_out * elapsed))
    return {app: parts for app, parts in out.items() if app in placed}


def split_exactly(parts: dict[Place, int], total: int) -> dict[Place, int]:
    """`parts` made to add up to `total`: a shortfall goes to NOWHERE, an excess is taken
    from the largest parts first; parts left at 0 are dropped."""
    out = dict(parts)
    gap = total - sum(out.values())
    if gap > 0:
        out[NOWHERE] = out.get(NOWHERE, 0) + gap
    elif gap < 0:
        for place in sorted(out, key=lambda k: (-out[k], k != NOWHERE, str(k))):
            take = min(out[place], -gap)
            out[place] -= take
            gap += take
            if gap == 0:
                break
    return {place: b for place, b in out.items() if b > 0}


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
        self._keys: dict[tuple[str, str, str | None, str | None], AppKey] = {}

    def __len__(self) -> int:
        return len(self._sums)

    def add(self, snap: Snapshot) -> None:
        if snap.elapsed <= 0:
            return
        minute = int(snap.time // MINUTE) * MINUTE
        elapsed = snap.elapsed
        places = places_of(snap)
        for row in snap.apps:
            b_in = max(0, round(row.rate_in * elapsed))
            b_out = max(0, round(row.rate_out * elapsed))
            if b_in <= 0 and b_out <= 0:
                continue
            parts = places.get(row.name) if places and row.kind is RowKind.APP else None
            if parts is None:
                self._add(minute, self._key(row.name, row.unit.value, NOWHERE), b_in, b_out)
                continue
            unit = row.unit.value
            if (sum(v[0] for v in parts.values()) == b_in
                    and sum(v[1] for v in parts.values()) == b_out):  # as always expected
                for place, (p_in, p_out) in parts.items():
                    if p_in or p_out:
                        self._add(minute, self._key(row.name, unit, place), p_in, p_out)
                continue
            ins = split_exactly({k: v[0] for k, v in parts.items()}, b_in)
            outs = split_exactly({k: v[1] for k, v in parts.items()}, b_out)
            for place in ins.keys() | outs.keys():
                key = self._key(row.name, row.unit.value, place)
                self._add(minute, key, ins.get(place, 0), outs.get(place, 0))
        if len(self._sums) > self.cap:
            self._trim()

    def _key(self, name: str, unit: str, place: Place) -> AppKey:
        """The AppKey of these fields, made once (a tick asks for the same keys again)."""
        fields = (name, unit, *place)
        key = self._keys.get(fields)
        if key is None:
            if len(self._keys) >= self.cap:
                self._keys.clear()
            key = self._keys[fields] = AppKey(name, unit, *place)
        return key

    def _add(self, minute: int, app: AppKey, b_in: int, b_out: int) -> None:
        sums = self._sums.get((minute, app))
        if sums is None:
            self._sums[(minute, app)] = [b_in, b_out]
        else:
            sums[0] += b_in
            sums[1] += b_out

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
        return [MinuteBytes(m, app, s[0], s[1])
                for (m, app), s in sorted(sums.items(), key=_minute_order)]

    def _trim(self) -> None:
        keys = sorted(self._sums, key=lambda k: (k[0], k[1].order))
        drop = keys[: len(keys) - self.cap]
        for k in drop:
            del self._sums[k]
        self.dropped += len(drop)


def _minute_order(item: tuple[tuple[int, AppKey], list[int]]) -> tuple[int, tuple[str, ...]]:
    return item[0][0], item[0][1].order
