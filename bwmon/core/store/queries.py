"""What `bwmon report`, the TUI's history view and /api/v1/history ask the store.

A range [since, until) counts the bytes of every minute that starts in it. It is answered from
the coarsest table that gives the same sum: whole local days from `days`, whole hours from
`hours`, the rest from `minutes` (see `pieces`). Past a table's retention its rows are gone:
there, a range counts whole hours (older than `history.minutes_hours`) or whole days (older
than `history.hours_days`) that start in it.

Totals are grouped by app, by container or by systemd unit (`by`), and any query can be
narrowed to the rows of one app, container or unit (`Selection`). Rows without a place (no
container or unit, or recorded before bwmon recorded places) group under "".
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Literal

from bwmon.core.store.calendar import HOUR, MINUTE, local_midnight, month_start, next_midnight

Grouping = Literal["app", "container", "unit"]
GROUPINGS: tuple[Grouping, ...] = ("app", "container", "unit")
# the apps table's column of each grouping (the systemd unit is `service`: `unit` there is
# the bytes' unit, ip or payload)
_COLUMN = {"app": "name", "container": "container", "unit": "service"}


@dataclass(frozen=True, slots=True)
class Selection:
    """Which rows a query counts: all, or those of the app, container and unit given. A
    container or unit "" selects the rows without one."""

    app: str | None = None
    container: str | None = None
    unit: str | None = None

    def sql(self) -> tuple[str, list[object]]:
        """` AND app IN (...)` selecting these rows' app ids ("" when everything is)."""
        conds: list[str] = []
        params: list[object] = []
        for by, value in (("app", self.app), ("container", self.container),
                          ("unit", self.unit)):
            if value == "" and by != "app":
                conds.append(f"{_COLUMN[by]} IS NULL")
            elif value is not None:
                conds.append(f"{_COLUMN[by]} = ?")
                params.append(value)
        if not conds:
            return "", []
        return f" AND app IN (SELECT id FROM apps WHERE {' AND '.join(conds)})", params

    def and_group(self, by: Grouping, name: str) -> Selection:
        """This selection narrowed to one group of `top_apps(by=...)`."""
        if by == "app":
            return Selection(name, self.container, self.unit)
        if by == "container":
            return Selection(self.app, name, self.unit)
        return Selection(self.app, self.container, name)


def _selection(only: str | Selection | None) -> Selection:
    return only if isinstance(only, Selection) else Selection(app=only)


@dataclass(frozen=True, slots=True)
class AppTotal:
    """One app's (or container's or unit's: see `top_apps`' `by`) bytes over a range;
    `units` lists the units its rows were counted in. `name` "" is the group without one."""

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


def _union(since: int, until: int, only: Selection | None = None) -> tuple[str, list[object]]:
    """A SELECT of (t, app, bytes_in, bytes_out) rows answering [since, until)."""
    parts: list[str] = []
    params: list[object] = []
    narrow, narrow_params = only.sql() if only is not None else ("", [])
    for table, a, b in pieces(since, until):
        params += [a, b, *narrow_params]
        parts.append(f"SELECT t, app, bytes_in, bytes_out FROM {table} "
                     f"WHERE t >= ? AND t < ?{narrow}")
    if not parts:
        parts.append("SELECT t, app, bytes_in, bytes_out FROM minutes WHERE 0")
    return " UNION ALL ".join(parts), params


def top_apps(conn: sqlite3.Connection, since: int, until: int, limit: int | None = None, *,
             by: Grouping = "app", only: Selection | None = None) -> list[AppTotal]:
    """Apps (or containers, or units: `by`) by bytes in + out over [since, until) of the
    rows `only` selects, most first (ties by name)."""
    union, params = _union(since, until, only)
    group = f"ifnull(a.{_COLUMN[by]}, '')"
    sql = (f"SELECT {group}, group_concat(DISTINCT a.unit), sum(r.bytes_in), "
           f"sum(r.bytes_out) FROM ({union}) AS r JOIN apps AS a ON a.id = r.app "
           f"GROUP BY {group} ORDER BY sum(r.bytes_in) + sum(r.bytes_out) DESC, {group}")
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [AppTotal(name, tuple(sorted(str(units).split(","))), int(b_in), int(b_out))
            for name, units, b_in, b_out in conn.execute(sql, params)]


def series(conn: sqlite3.Connection, table: str, since: int, until: int,
           app: str | Selection | None = None) -> list[Bucket]:
    """The rows of one table (minutes, hours or days) starting in [since, until), summed over
    apps (or those of one app, or of a Selection), oldest first; periods without bytes are
    left out."""
    if table not in ("minutes", "hours", "days"):
        raise ValueError(f"no table {table!r}")
    narrow, narrow_params = _selection(app).sql()
    sql = (f"SELECT t, sum(bytes_in), sum(bytes_out) FROM {table} WHERE t >= ? AND t < ?"
           f"{narrow} GROUP BY t ORDER BY t")
    params: list[object] = [since, until, *narrow_params]
    return [Bucket(int(t), int(i), int(o)) for t, i, o in conn.execute(sql, params)]


def per_day(conn: sqlite3.Connection, since: int, until: int,
            app: str | Selection | None = None) -> list[Bucket]:
    """Bytes per local day for the days starting in [local midnight of since, until)."""
    return series(conn, "days", local_midnight(since), until, app)


def per_month(conn: sqlite3.Connection, since: int, until: int,
              app: str | Selection | None = None) -> list[Bucket]:
    """Bytes per local month, from the days starting in [start of since's month, until)."""
    months: dict[int, list[int]] = {}
    for day in series(conn, "days", month_start(since), until, app):
        sums = months.setdefault(month_start(day.start), [0, 0])
        sums[0] += day.bytes_in
        sums[1] += day.bytes_out
    return [Bucket(m, s[0], s[1]) for m, s in sorted(months.items())]


def app_names(conn: sqlite3.Connection) -> list[str]:
    return [name for (name,) in conn.execute("SELECT DISTINCT name FROM apps ORDER BY name")]


def names(conn: sqlite3.Connection, by: Grouping) -> list[str]:
    """The apps, containers or units (`by`) the store has rows of (a place's, not "")."""
    column = _COLUMN[by]
    return [name for (name,) in conn.execute(
        f"SELECT DISTINCT {column} FROM apps WHERE {column} IS NOT NULL ORDER BY {column}")]


def recorded_span(conn: sqlite3.Connection) -> tuple[int, int] | None:
    """The start of the oldest and of the newest minute recorded (days give the oldest)."""
    row = conn.execute("SELECT min(t) FROM days").fetchone()
    newest = conn.execute("SELECT max(t) FROM minutes").fetchone()
    if row is None or row[0] is None:
        return None
    last = newest[0] if newest and newest[0] is not None else row[0]
    return int(row[0]), int(last)
