"""Series of one range for charts: which table answers it, per-app buckets, rates.

Used by the TUI's history view and /api/v1/history. A range is answered from the finest table
that still holds it and gives at most a few hundred points: minutes up to 6 h, hours up to
8 days, days beyond; and from a coarser one where the finer rows were rolled up.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bwmon.core.store.calendar import HOUR, MINUTE, local_midnight, next_midnight
from bwmon.core.store.queries import AppTotal, Grouping, Selection, top_apps

DAY = 24 * HOUR
# named ranges of the TUI and the chart page
RANGES = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}


@dataclass(frozen=True, slots=True)
class AppSeries:
    """One app's buckets over a range: starts, lengths and bytes in/out (oldest first)."""

    name: str
    units: tuple[str, ...]
    starts: tuple[int, ...]
    seconds: tuple[int, ...]
    bytes_in: tuple[int, ...]
    bytes_out: tuple[int, ...]

    @property
    def total_in(self) -> int:
        return sum(self.bytes_in)

    @property
    def total_out(self) -> int:
        return sum(self.bytes_out)


@dataclass(frozen=True, slots=True)
class RangeAnswer:
    table: str  # minutes, hours or days
    step: int  # nominal seconds per bucket (a day across DST is 23 or 25 h)
    since: int
    until: int
    totals: tuple[AppTotal, ...]  # exact bytes over [since, until), busiest first
    series: tuple[AppSeries, ...]


def _meta(conn: sqlite3.Connection, key: str) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else 0


def table_for(conn: sqlite3.Connection, since: int, until: int) -> str:
    """The finest table that holds [since, until) and gives a readable number of points."""
    span = until - since
    if span <= 6 * HOUR and since >= _meta(conn, "minutes_from"):
        return "minutes"
    if span <= 8 * DAY and since >= _meta(conn, "hours_from"):
        return "hours"
    return "days"


def align(table: str, since: int, until: int) -> tuple[int, int]:
    """[since, until) widened to whole buckets of `table`."""
    if table == "minutes":
        return since // MINUTE * MINUTE, -(-until // MINUTE) * MINUTE
    if table == "hours":
        return since // HOUR * HOUR, -(-until // HOUR) * HOUR
    start = local_midnight(since)
    end = until if local_midnight(until) == until else next_midnight(until)
    return start, end


def answer(conn: sqlite3.Connection, since: int, until: int, *, top: int | None = None,
           apps: list[str] | None = None, by: Grouping = "app",
           only: Selection | None = None) -> RangeAnswer:
    """Totals and series of [since, until) per app, container or unit (`by`), of the rows
    `only` selects: the series of the groups named in `apps`, else of the `top` busiest."""
    table = table_for(conn, since, until)
    since, until = align(table, since, until)
    only = only or Selection()
    totals = top_apps(conn, since, until, by=by, only=only)
    chosen = [t for t in totals if t.name in apps] if apps else totals[:top or None]
    step = {"minutes": MINUTE, "hours": HOUR, "days": DAY}[table]
    series = []
    for total in chosen:
        narrow, params = only.and_group(by, total.name).sql()
        rows = conn.execute(
            f"SELECT t, sum(bytes_in), sum(bytes_out) FROM {table} WHERE t >= ? AND t < ?"
            f"{narrow} GROUP BY t ORDER BY t", (since, until, *params)).fetchall()
        starts = tuple(int(r[0]) for r in rows)
        lengths = tuple(next_midnight(t) - t if table == "days" else step for t in starts)
        series.append(AppSeries(total.name, total.units, starts, lengths,
                                tuple(int(r[1]) for r in rows), tuple(int(r[2]) for r in rows)))
    return RangeAnswer(table, step, since, until, tuple(totals), tuple(series))
