"""The JSON API: snapshot, history and alert log rendered for `/api/v1/*`.

Rendering is done once per snapshot (or per snapshot and query) and cached, so many clients
polling cost one `json.dumps` per tick, not one per request.
"""

from __future__ import annotations

import json
from typing import Any

from bwmon.core.feed import SnapshotFeed
from bwmon.core.model import (
    AppRow,
    Connection,
    LogEvent,
    ProcessInfo,
    ProcessRow,
    RowKind,
    Snapshot,
)

API_VERSION = 1
MAX_CACHED_QUERIES = 64


def _proc(info: ProcessInfo) -> dict[str, Any]:
    return {
        "pid": info.key.pid,
        "start": info.key.start,
        "name": info.name,
        "cmdline": info.cmdline,
        "user": info.user,
        "uid": info.uid,
    }


def _conn(c: Connection) -> dict[str, Any]:
    return {
        "proto": c.proto,
        "local": c.local,
        "remote": c.remote,
        "bytes_in": c.bytes_in,
        "bytes_out": c.bytes_out,
        "state": c.state,
        "open": c.open,
    }


def _row(row: AppRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "kind": row.kind.value,
        "unit": row.unit.value,
        "rate_in": row.rate_in,
        "rate_out": row.rate_out,
        "total_in": row.total_in,
        "total_out": row.total_out,
        "flows": row.flows,
        "pids": [p.key.pid for p in row.processes],
        "connections": [_conn(c) for c in row.connections],
    }


def _process_row(row: ProcessRow) -> dict[str, Any]:
    return {
        **_proc(row.info),
        "app": row.app,
        "rate_in": row.rate_in,
        "rate_out": row.rate_out,
        "total_in": row.total_in,
        "total_out": row.total_out,
        "flows": row.flows,
    }


def event_json(e: LogEvent) -> dict[str, Any]:
    return {
        "time": e.time,
        "level": e.level.value,
        "source": e.source,
        "message": e.message,
        "data": dict(e.data),
    }


def snapshot_json(s: Snapshot) -> dict[str, Any]:
    """The `/api/v1/snapshot` document (schema in the manual's HTTP section)."""

    def kind_row(kind: RowKind) -> dict[str, Any] | None:
        row = next((r for r in s.apps if r.kind is kind), None)
        return _row(row) if row else None

    return {
        "version": API_VERSION,
        "seq": s.seq,
        "time": s.time,
        "elapsed": s.elapsed,
        "host": {
            "rate_in": s.host.rate_in,
            "rate_out": s.host.rate_out,
            "total_in": s.host.total_in,
            "total_out": s.host.total_out,
            "loopback_total": s.host.loopback_total,
            "loopback_rate": s.host.loopback_rate,
        },
        "filtered": {
            "rate_in": s.filtered.rate_in,
            "rate_out": s.filtered.rate_out,
            "total_in": s.filtered.total_in,
            "total_out": s.filtered.total_out,
        },
        "apps": [_row(r) for r in s.apps],
        "unattributed": kind_row(RowKind.UNATTRIBUTED),
        "forwarded": kind_row(RowKind.FORWARDED),
        "processes": [_process_row(p) for p in s.processes],
        "sources": [{"name": x.name, "active": x.active, "detail": x.detail} for x in s.sources],
        "findings": [
            {"check": f.check, "ok": f.ok, "message": f.message, "fix": f.fix} for f in s.findings
        ],
        "events": [event_json(e) for e in s.events],
    }


def dumps(doc: object) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


class ApiError(Exception):
    """A query the API cannot answer: HTTP status plus a JSON error document."""

    def __init__(self, status: int, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.body = dumps({"error": message, **extra})


class JsonApi:
    """Answers the `/api/v1/*` queries from a feed, caching each rendering per snapshot."""

    def __init__(self, feed: SnapshotFeed) -> None:
        self.feed = feed
        self._snap: Snapshot | None = None
        self._snap_body = b""
        self._cache_snap: Snapshot | None = None
        self._cache_count = -1
        self._cache: dict[tuple[str, ...], bytes] = {}

    def snapshot(self) -> bytes:
        snap = self.feed.latest
        if snap is None:
            raise ApiError(503, "no snapshot yet: bwmon is starting, retry in a second")
        if snap is not self._snap:
            self._snap_body = dumps(snapshot_json(snap))
            self._snap = snap
        return self._snap_body

    def _cached(self, key: tuple[str, ...]) -> bytes | None:
        latest, count = self.feed.latest, self.feed.log.count
        if latest is not self._cache_snap or count != self._cache_count:
            self._cache_snap, self._cache_count = latest, count
            self._cache.clear()
        return self._cache.get(key)

    def _store(self, key: tuple[str, ...], body: bytes) -> bytes:
        if len(self._cache) >= MAX_CACHED_QUERIES:
            self._cache.clear()
        self._cache[key] = body
        return body

    def history(self, apps: list[str], seconds: str | None) -> bytes:
        """Per-app rate series as columns: times, bytes/s in, bytes/s out (oldest first)."""
        key = ("history", seconds or "", *apps)
        hit = self._cached(key)
        if hit is not None:
            return hit
        window: float | None = None
        if seconds:
            try:
                window = float(seconds)
            except ValueError:
                raise ApiError(400, f"seconds={seconds!r} is not a number") from None
            if not window > 0:
                raise ApiError(400, "seconds must be greater than 0")
        history = self.feed.history
        known = history.names()
        missing = [a for a in apps if a not in known]
        if missing:
            raise ApiError(404, f"no history for app {missing[0]!r}", apps=sorted(known))
        series = {}
        for name in apps or known:
            points = history.points(name, window)
            series[name] = {
                "t": [p.time for p in points],
                "in": [p.rate_in for p in points],
                "out": [p.rate_out for p in points],
            }
        snap = self.feed.latest
        doc = {
            "version": API_VERSION,
            "time": snap.time if snap else None,
            "capacity": history.capacity,
            "units": {name: _unit_of(snap, name) for name in series},
            "series": series,
        }
        return self._store(key, dumps(doc))

    def alerts(self, limit: str | None, source: str | None, since: str | None) -> bytes:
        """The alert log's tail, newest last; optionally one source and only after `since`."""
        key = ("alerts", limit or "", source or "", since or "")
        hit = self._cached(key)
        if hit is not None:
            return hit
        try:
            n = int(limit) if limit else 100
            after = float(since) if since else None
        except ValueError:
            raise ApiError(400, "limit must be an integer and since a number of seconds") from None
        if n < 1:
            raise ApiError(400, "limit must be at least 1")
        events = [
            e
            for e in self.feed.log.tail()
            if (source is None or e.source == source) and (after is None or e.time > after)
        ]
        doc = {
            "version": API_VERSION,
            "count": self.feed.log.count,
            "events": [event_json(e) for e in events[-n:]],
        }
        return self._store(key, dumps(doc))


def _unit_of(snap: Snapshot | None, name: str) -> str | None:
    row = snap.app(name) if snap else None
    return row.unit.value if row else None
