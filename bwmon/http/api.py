"""The JSON API: snapshot, history and alert log rendered for `/api/v1/*`.

Each answer is encoded once per tick (per query), in a worker thread, and shared: many clients
polling cost one `json.dumps` per tick, not one per request, and never a long stall of the loop.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

from bwmon.core.feed import SnapshotFeed
from bwmon.core.jsonify import API_VERSION, event_json, snapshot_json
from bwmon.core.model import (
    HistoryPoint,
    Snapshot,
)
from bwmon.core.store.queries import GROUPINGS
from bwmon.http.tickcache import TickCache


def snapshot_body(s: Snapshot) -> bytes:
    """`snapshot_json` encoded row by row (short C calls; see `history_body`)."""
    doc = snapshot_json(s)
    apps = b"[" + b",".join(dumps(a) for a in doc.pop("apps")) + b"]"
    procs = b"[" + b",".join(dumps(p) for p in doc.pop("processes")) + b"]"
    return dumps(doc)[:-1] + b',"apps":' + apps + b',"processes":' + procs + b"}"


def dumps(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


class ApiError(Exception):
    """A query the API cannot answer: HTTP status plus a JSON error document."""

    def __init__(self, status: int, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.body = dumps({"error": message, **extra})


class JsonApi:
    """Answers the `/api/v1/*` queries from a feed; each answer encoded once per tick."""

    def __init__(self, feed: SnapshotFeed) -> None:
        self.feed = feed
        self._snap: Snapshot | None = None
        self._count = -1
        self.cache = TickCache(self._changed)

    def _changed(self) -> bool:
        latest, count = self.feed.latest, self.feed.log.count
        if latest is self._snap and count == self._count:
            return False
        self._snap, self._count = latest, count
        return True

    async def snapshot(self) -> bytes:
        def prepare() -> Callable[[], bytes]:
            snap = self.feed.latest
            if snap is None:
                raise ApiError(503, "no snapshot yet: bwmon is starting, retry in a second")
            return lambda: snapshot_body(snap)  # a Snapshot is immutable: safe in a thread

        return await self.cache.get(("snapshot",), prepare)

    async def history(self, apps: list[str], seconds: str | None, top: str | None) -> bytes:
        """Per-app rate series as columns: times, bytes/s in, bytes/s out (oldest first)."""

        def prepare() -> Callable[[], bytes]:
            window = _number(seconds, "seconds")
            n_top = _count(top, "top")
            history = self.feed.history
            known = history.names()
            missing = [a for a in apps if a not in known]
            if missing:
                raise ApiError(404, f"no history for app {missing[0]!r}", apps=sorted(known))
            copies = {name: history.points(name) for name in apps or known}  # tuples: frozen
            snap = self.feed.latest
            units = {name: _unit_of(snap, name) for name in copies}
            return lambda: history_body(copies, units, window, n_top, history.capacity,
                                        snap.time if snap else None)

        return await self.cache.get(("history", seconds, top, *apps), prepare)

    async def alerts(self, limit: str | None, source: str | None, since: str | None) -> bytes:
        """The alert log's tail, newest last; optionally one source and only after `since`."""

        def prepare() -> Callable[[], bytes]:
            n = _count(limit, "limit") or 100
            after = _number(since, "since", positive=False)
            events = [
                e
                for e in self.feed.log.tail()
                if (source is None or e.source == source) and (after is None or e.time > after)
            ][-n:]
            count = self.feed.log.count
            return lambda: dumps({"version": API_VERSION, "count": count,
                                  "events": [event_json(e) for e in events]})

        return await self.cache.get(("alerts", limit, source, since), prepare)


def check_live_grouping(by: str | None, container: str | None, unit: str | None) -> None:
    """The live history keeps one rate series per app row: `by` other than app, and
    `container=`/`unit=`, are a 400 that says where the answer is (the history store, asked
    with range, since or until), never silently ignored."""
    if by not in (None, "app"):
        if by not in GROUPINGS:
            raise ApiError(400, f"by={by!r} is not one of {', '.join(GROUPINGS)}",
                           by=list(GROUPINGS))
        raise ApiError(400, f"by={by} is answered from the history store: add range=1h (or "
                       f"24h, 7d, 30d, or since=/until=) for a series per {by}; the live "
                       "history (no range) keeps rates per app only", by=["app"])
    for name, value in (("container", container), ("unit", unit)):
        if value is not None:
            raise ApiError(400, f"{name}= is answered from the history store: add range=1h "
                           "(or 24h, 7d, 30d, or since=/until=); the live history (no range) "
                           "keeps rates per app only")


def _count(text: str | None, name: str) -> int | None:
    value = _number(text, name)
    return None if value is None else max(1, int(value))


def _number(text: str | None, name: str, *, positive: bool = True) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, f"{name}={text!r} is not a number") from None
    if not math.isfinite(value):  # top=inf made int() raise (500); since=nan matched nothing
        raise ApiError(400, f"{name}={text!r} is not a finite number")
    if positive and not value > 0:
        raise ApiError(400, f"{name} must be greater than 0")
    return value


def history_body(
    copies: dict[str, tuple[HistoryPoint, ...]],
    units: dict[str, str | None],
    window: float | None,
    top: int | None,
    capacity: int,
    time: float | None,
) -> bytes:
    """The `/api/v1/history` document; rates rounded to whole bytes/s, times to milliseconds.

    Encoded series by series: each `json.dumps` is a short C call, so the worker thread running
    this hands the interpreter back to the event loop often.
    """
    if window is not None:
        copies = {n: _last_seconds(pts, window) for n, pts in copies.items()}
    names = list(copies)
    if top is not None:
        names.sort(key=lambda n: -sum(p.rate_in + p.rate_out for p in copies[n]))
        names = names[:top]
    parts = []
    for name in names:
        pts = copies[name]
        parts.append(dumps(name) + b":" + dumps({
            "t": [round(p.time, 3) for p in pts],
            "in": [int(p.rate_in + 0.5) for p in pts],
            "out": [int(p.rate_out + 0.5) for p in pts],
        }))
    head = dumps({"version": API_VERSION, "time": time, "capacity": capacity,
                  "units": {n: units[n] for n in names}})
    return head[:-1] + b',"series":{' + b",".join(parts) + b"}}"


def _last_seconds(points: tuple[HistoryPoint, ...], seconds: float) -> tuple[HistoryPoint, ...]:
    if not points:
        return points
    cutoff = points[-1].time - seconds
    return tuple(p for p in points if p.time > cutoff)


def _unit_of(snap: Snapshot | None, name: str) -> str | None:
    row = snap.app(name) if snap else None
    return row.unit.value if row else None
