"""The store's one writer: minutes' bytes added to their minute, hour and day; roll-ups.

Runs in the recorder's thread (never in the event loop). Each write is one transaction, so a
crash leaves the store as of the last write, never half of one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from bwmon.core.store.calendar import HOUR, local_midnight
from bwmon.core.store.retention import Retention, roll_up
from bwmon.core.store.schema import WriterLock, make_directory, open_writer
from bwmon.core.store.tally import AppKey, MinuteBytes

_UPSERT = ("INSERT INTO {table} (t, app, bytes_in, bytes_out) VALUES (?, ?, ?, ?) "
           "ON CONFLICT (t, app) DO UPDATE SET bytes_in = bytes_in + excluded.bytes_in, "
           "bytes_out = bytes_out + excluded.bytes_out")


class StoreWriter:
    """Holds the writer's lock and connection. `open` raises the schema module's errors."""

    def __init__(self, path: Path, retention: Retention) -> None:
        self.path = path
        self.retention = retention
        self.conn: sqlite3.Connection | None = None
        self.lock = WriterLock(path)
        self._ids: dict[AppKey, int] = {}

    def open(self) -> None:
        """Take the lock (StoreBusy if another bwmon writes), then open the file."""
        make_directory(self.path)
        self.lock.acquire()
        try:
            self.conn = open_writer(self.path)
        except BaseException:
            self.lock.close()
            raise

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.lock.close()

    def write(self, rows: Iterable[MinuteBytes]) -> int:
        """Add the rows' bytes to their minutes, hours and local days in one transaction;
        returns how many minute rows were written. Raises sqlite3.Error (e.g. a full disk)
        with nothing written."""
        conn = self.conn
        assert conn is not None, "write before open"
        tables: dict[str, dict[tuple[int, AppKey], list[int]]] = {
            "minutes": {}, "hours": {}, "days": {}}
        midnights: dict[int, int] = {}
        for r in rows:
            hour = r.minute // HOUR * HOUR
            day = midnights.get(r.minute)
            if day is None:
                day = midnights[r.minute] = local_midnight(r.minute)
            for table, t in (("minutes", r.minute), ("hours", hour), ("days", day)):
                acc = tables[table].setdefault((t, r.app), [0, 0])
                acc[0] += r.bytes_in
                acc[1] += r.bytes_out
        if not tables["minutes"]:
            return 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = self._app_ids(conn, {app for _, app in tables["minutes"]})
            for table, by_key in tables.items():
                conn.executemany(_UPSERT.format(table=table),
                                 [(t, ids[app], s[0], s[1]) for (t, app), s in by_key.items()])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # (SQLite ends it itself on some errors, a full disk one)
                conn.execute("ROLLBACK")
            self._ids.clear()  # ids inserted by the rolled-back transaction are gone
            raise
        return len(tables["minutes"])

    def roll_up(self, now: float) -> int:
        conn = self.conn
        assert conn is not None, "roll-up before open"
        deleted = roll_up(conn, now, self.retention)
        if deleted:
            self._ids.clear()  # apps without rows were deleted
        return deleted

    def _app_ids(self, conn: sqlite3.Connection, apps: set[AppKey]) -> dict[AppKey, int]:
        for app in apps - self._ids.keys():
            row = conn.execute(
                "SELECT id FROM apps WHERE name = ? AND unit = ? AND container IS ? "
                "AND service IS ?", (app.name, app.unit, app.container, app.service)).fetchone()
            if row is None:
                cur = conn.execute("INSERT INTO apps (name, unit, container, service) "
                                   "VALUES (?, ?, ?, ?)",
                                   (app.name, app.unit, app.container, app.service))
                row = (cur.lastrowid,)
            self._ids[app] = int(row[0])
        return self._ids
