"""`/api/v1/history` with `range`, `since` or `until`: answered from the history store.

Without those parameters the endpoint keeps its live answer (the in-memory rates of the last
minutes, see api.py). From the store, each app's series has one point per bucket (minute, hour
or local day, whichever the range needs; empty buckets are 0) with its bytes and its mean rate.
`by=container` or `by=unit` gives a series per container or systemd unit instead ("" for the
bytes without one); `container=`, `unit=` (and with `by`, `app=`) keep only their rows.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

from bwmon.core.jsonify import API_VERSION
from bwmon.core.store.calendar import next_midnight
from bwmon.core.store.queries import GROUPINGS, Grouping, Selection
from bwmon.core.store.ranges import RANGES, RangeAnswer, answer
from bwmon.core.store.schema import StoreError, open_reader
from bwmon.http.api import ApiError, dumps

MAX_TOP = 100


def parse_range(range_: str | None, since: str | None, until: str | None,
                now: float) -> tuple[int, int]:
    """[since, until) as epoch seconds from `range` (1h, 24h, 7d, 30d: the last one) or from
    `since`/`until` (epoch seconds; until defaults to now, since to 24 h before until)."""
    if range_ is not None:
        if since is not None:
            raise ApiError(400, "give range or since, not both")
        if range_ not in RANGES:
            raise ApiError(400, f"range={range_!r} is not one of {', '.join(RANGES)}",
                           ranges=list(RANGES))
    end = _epoch(until, "until") if until is not None else int(now) + 1
    if range_ is not None:
        start = end - RANGES[range_]
    else:
        start = _epoch(since, "since") if since is not None else end - RANGES["24h"]
    if start >= end:
        raise ApiError(400, "since must be before until")
    return start, end


def _epoch(text: str, name: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ApiError(400, f"{name}={text!r} is not a time in epoch seconds") from None
    if not math.isfinite(value) or value < 0 or value > 1e11:
        raise ApiError(400, f"{name}={text!r} is not a time in epoch seconds")
    return int(value)


def parse_selection(by: str | None, apps: list[str], container: str | None,
                    unit: str | None) -> tuple[Grouping, Selection, list[str]]:
    """(grouping, rows kept, series asked for) from by=, app=, container= and unit=. With
    by=app (the default) each app= asks for that app's series; otherwise one app= keeps only
    that app's rows."""
    grouping = by or "app"
    if grouping not in GROUPINGS:
        raise ApiError(400, f"by={by!r} is not one of {', '.join(GROUPINGS)}",
                       by=list(GROUPINGS))
    if grouping == "app":
        return "app", Selection(None, container, unit), apps
    if len(apps) > 1:
        raise ApiError(400, f"by={grouping} takes at most one app (the app whose "
                       f"{grouping}s are shown)")
    return grouping, Selection(apps[0] if apps else None, container, unit), []


async def store_history(store: Path | None, apps: list[str], range_: str | None,
                        since: str | None, until: str | None, top: str | None,
                        by: str | None = None, container: str | None = None,
                        unit: str | None = None) -> bytes:
    if store is None:
        raise ApiError(404, "history is off (history.enabled = false): only the live history "
                       "is served (no range, since or until)")
    n_top = 8
    if top is not None:
        try:
            n_top = max(1, min(MAX_TOP, int(top)))
        except ValueError:
            raise ApiError(400, f"top={top!r} is not a whole number") from None
    grouping, only, wanted = parse_selection(by, apps, container, unit)
    start, end = parse_range(range_, since, until, time.time())
    return await asyncio.to_thread(_answer, store, start, end, wanted, n_top, grouping, only)


def _answer(store: Path, start: int, end: int, apps: list[str], top: int,
            by: Grouping = "app", only: Selection | None = None) -> bytes:
    try:
        conn = open_reader(store)
    except StoreError as exc:
        raise ApiError(503, str(exc)) from None
    try:
        got = answer(conn, start, end, top=top, apps=apps or None, by=by, only=only)
    finally:
        conn.close()
    missing = sorted(set(apps) - {s.name for s in got.series})
    if missing:
        raise ApiError(404, f"no history for app {missing[0]!r} in this range",
                       apps=[t.name for t in got.totals])
    return body(got, by)


def buckets(got: RangeAnswer) -> list[int]:
    """Every bucket start of the answer's range."""
    out = []
    t = got.since
    while t < got.until:
        out.append(t)
        t = next_midnight(t) if got.table == "days" else t + got.step
    return out


def body(got: RangeAnswer, by: Grouping = "app") -> bytes:
    starts = buckets(got)
    index = {t: i for i, t in enumerate(starts)}
    lengths = [(starts[i + 1] if i + 1 < len(starts) else got.until) - t
               for i, t in enumerate(starts)]
    parts = []
    for s in got.series:
        b_in = [0] * len(starts)
        b_out = [0] * len(starts)
        for t, i, o in zip(s.starts, s.bytes_in, s.bytes_out, strict=True):
            k = index.get(t)
            if k is not None:
                b_in[k] += i
                b_out[k] += o
        parts.append(dumps(s.name) + b":" + dumps({
            "t": starts,
            "in": [int(b / n + 0.5) for b, n in zip(b_in, lengths, strict=True)],
            "out": [int(b / n + 0.5) for b, n in zip(b_out, lengths, strict=True)],
            "bytes_in": b_in,
            "bytes_out": b_out,
        }))
    head = dumps({
        "version": API_VERSION, "source": "store", "by": by, "table": got.table,
        "step": got.step,
        "since": got.since, "until": got.until, "time": time.time(),
        "units": {t.name: "+".join(t.units) for t in got.totals[:MAX_TOP]},
        "totals": {t.name: {"bytes_in": t.bytes_in, "bytes_out": t.bytes_out}
                   for t in got.totals[:MAX_TOP]},
    })
    return head[:-1] + b',"series":{' + b",".join(parts) + b"}}"

