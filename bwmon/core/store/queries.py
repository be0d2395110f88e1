"""What `bwmon report`, the TUI's history view and /api/v1/history ask the store.

A range [since, until) counts the bytes of every minute that starts in it. It is answered from
the coarsest table that gives the same sum: whole local days from `days`, whole hours from
`hours`, the rest from `minutes` (see `pieces`). Past a table's retention its rows are gone:
there, a range counts whole hours (older than `history.minutes_hours`) or whole days (older
than `history.hours_days`) that start in it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bwmon.core.store.calendar import HOUR, MINUTE, local_midnight, month_start, next_midnight


@dataclass(frozen=True, slots=True)
class AppTotal:
    """One app's bytes over a range; `units` lists the units its rows were counted in."""

    name: str
    units: tuple[str, ...]
    bytes_in: int
    bytes_out: int

    @property
    def total(self) -> int:
        return self.bytes_in + self.bytes_out


@dataclass(frozen=True, slots=True)
class Bucket:
    """Bytes in and out of one period starting at `start` (UTC epoch seconds)."""

    start: int
    bytes_in: int
    bytes_out: int


def pieces(since: int, until: int) -> list[tuple[str, int, int]]:
    """[since, until) split into (table, start, end) pieces: local days, hours, minutes."""
    since = since // MINUTE * MINUTE
    if since >= until:
        return []
    out: list[tuple[str, int, int]] = []
    first_day = since if local_midnight(since) == since else next_midnight(since)
    last_day = local_midnight(until)
    edges = [(since, until)]
    if first_day < last_day:
        out.append(("days", first_day, last_day))
        edges = [(since, first_day), (last_day, until)]
    for a, b in edges:
        if a >= b:
            continue
        first_hour = -(-a // HOUR) * HOUR
        last_hour = b // HOUR * HOUR
        if first_hour < last_hour:
            out.append(("hours", first_hour, last_hour))
            out.extend(("minutes", x, y) for x, y in ((a, first_hour), (last_hour, b)) if x < y)
        else:
            out.append(("minutes", a, b))
    return out


def _union(since: int, until: int, app: str | None = None) -> tuple[str, list[object]]:
    """A SELECT of (t, app, bytes_in, bytes_out) rows answering [since, until)."""
    parts: list[str] = []
    params: list[object] = []
    for table, a, b in pieces(since, until):
        where = "t >= ? AND t < ?"
        params += [a, b]
        if app is not None:
            where += " AND app IN (SELECT id FROM apps WHERE name = ?)"
            params.append(app)
        parts.append(f"SELECT t, app, bytes_in, bytes_out FROM {table} WHERE {where}")
    if not parts:
        parts.append("SELECT t, app, bytes_in, bytes_out FROM minutes WHERE 0")
    return " UNION ALL ".join(parts), params


def top_apps(conn: sqlite3.Connection, since: int, until: int,
             limit: int | None = None) -> list[AppTotal]:
    """Apps by bytes in + out over [since, until), most first (ties by name)."""
    union, params = _union(since, until)
    sql = (f"SELECT a.name, group_concat(DISTINCT a.unit), sum(r.bytes_in), sum(r.bytes_out) "
           f"FROM ({union}) AS r JOIN apps AS a ON a.id = r.app GROUP BY a.name "
           f"ORDER BY sum(r.bytes_in) + sum(r.bytes_out) DESC, a.name")
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [AppTotal(name, tuple(sorted(str(units).split(","))), int(b_in), int(b_out))
            for name, units, b_in, b_out in conn.execute(sql, params)]


def series(conn: sqlite3.Connection, table: str, since: int, until: int,
           app: str | None = None) -> list[Bucket]:
    """The rows of one table (minutes, hours or days) starting in [since, until), summed over
    apps (or of one app), oldest first; periods without bytes are left out."""
    if table not in ("minutes", "hours", "days"):
        raise ValueError(f"no table {table!r}")
    sql = f"SELECT t, sum(bytes_in), sum(bytes_out) FROM {table} WHERE t >= ? AND t < ?"
    params: list[object] = [since, until]
    if app is not None:
        sql += " AND app IN (SELECT id FROM apps WHERE name = ?)"
        params.append(app)
    sql += " GROUP BY t ORDER BY t"
    return [Bucket(int(t), int(i), int(o)) for t, i, o in conn.execute(sql, params)]


def per_day(conn: sqlite3.Connection, since: int, until: int,
            app: str | None = None) -> list[Bucket]:
    """Bytes per local day for the days starting in [local midnight of since, until)."""
    return series(conn, "days", local_midnight(since), until, app)


def per_month(conn: sqlite3.Connection, since: int, until: int,
              app: str | None = None) -> list[Bucket]:
    """Bytes per local month, from the days starting in [start of since's month, until)."""
    months: dict[int, list[int]] = {}
    for day in series(conn, "days", month_start(since), until, app):
        sums = months.setdefault(month_start(day.start), [0, 0])
        sums[0] += day.bytes_in
        sums[1] += day.bytes_out
    return [Bucket(m, s[0], s[1]) for m, s in sorted(months.items())]


def app_names(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute("SELECT DISTINCT name FROM apps ORDER BY name")]


def recorded_span(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """The start of the oldest and of the newest minute recorded (days give the oldest)."""
    row = conn.execute("SELECT min(t) FROM days").fetchone()
    newest = conn.execute("SELECT max(t) FROM minutes").fetchone()
    if row is None or row[0] is None:
        return None
    last = newest[0] if newest and newest[0] is not None else row[0]
    return int(row[0]), int(last)
