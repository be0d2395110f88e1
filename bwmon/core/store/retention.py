"""Roll-ups: the finer rows past their retention are deleted; their coarser sums remain.

Every write adds each minute's bytes to its minute, its hour and its local day at once
(`writer`), so a roll-up never re-adds anything: it cannot lose or double a byte. The cut
points fall on whole hours (minutes) and local midnights (hours), so what remains of a finer
table always covers whole periods of the coarser one. `meta` records them for queries.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from bwmon.core.store.calendar import HOUR, local_midnight

DAY = 24 * HOUR
# Give freed pages back to the file system once this share of the file is free.
VACUUM_SHARE = 0.25
VACUUM_MIN_PAGES = 256


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each table keeps its rows (history.* settings); days 0: for ever."""

    minutes_hours: int = 48
    hours_days: int = 60
    days_days: int = 0


def cut_points(now: float, keep: Retention) -> tuple[int, int, int | None]:
    """The starts before which minutes, hours and days rows go."""
    cut_minutes = int(now - keep.minutes_hours * HOUR) // HOUR * HOUR
    cut_hours = local_midnight(now - keep.hours_days * DAY)
    cut_days = local_midnight(now - keep.days_days * DAY) if keep.days_days else None
    return cut_minutes, cut_hours, cut_days


def roll_up(conn: sqlite3.Connection, now: float, keep: Retention) -> int:
    """Delete what is past retention (in one transaction); returns the rows deleted."""
    cut_minutes, cut_hours, cut_days = cut_points(now, keep)
    deleted = 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        deleted += conn.execute("DELETE FROM minutes WHERE t < ?", (cut_minutes,)).rowcount
        deleted += conn.execute("DELETE FROM hours WHERE t < ?", (cut_hours,)).rowcount
        if cut_days is not None:
            deleted += conn.execute("DELETE FROM days WHERE t < ?", (cut_days,)).rowcount
        for key, value in (("minutes_from", cut_minutes), ("hours_from", cut_hours)):
            conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                         "value = max(CAST(value AS INTEGER), excluded.value)", (key, str(value)))
        if deleted:  # apps no row refers to any more
            conn.execute("DELETE FROM apps WHERE id NOT IN (SELECT DISTINCT app FROM days) "
                         "AND id NOT IN (SELECT DISTINCT app FROM hours) "
                         "AND id NOT IN (SELECT DISTINCT app FROM minutes)")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # (SQLite ends it itself on some errors, a full disk one)
            conn.execute("ROLLBACK")
        raise
    if deleted:
        vacuum_if_sparse(conn)
    return deleted


def vacuum_if_sparse(conn: sqlite3.Connection) -> bool:
    """Give free pages back once a quarter of the file is free (incremental auto-vacuum)."""
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    if free < VACUUM_MIN_PAGES or free < pages * VACUUM_SHARE:
        return False
    # a step of this pragma frees one page and yields a row, which Python's execute() never
    # asks for (the statement has no columns): only a script runs it to its end
    conn.executescript("PRAGMA incremental_vacuum")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return True
