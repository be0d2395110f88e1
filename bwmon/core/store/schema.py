"""Opening the store: its tables, the one-writer lock, and a damaged file moved aside.

Three tables of the same shape, `minutes`, `hours` and `days`, keyed by the period's start
(UTC epoch seconds; a day starts at local midnight) and the app. Every write adds to all three,
so a coarser table always holds the exact sum of its finer one; a roll-up only deletes the
finer rows past their retention (see `retention`). WAL mode: readers never wait for the writer.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import time
from pathlib import Path

SCHEMA_VERSION = 1
TABLES = ("minutes", "hours", "days")
PERIOD_SQL = """CREATE TABLE IF NOT EXISTS {name} (
    t INTEGER NOT NULL,
    app INTEGER NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    PRIMARY KEY (t, app)
) WITHOUT ROWID"""
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    # container and service stay NULL until the model knows them (issue 21)
    """CREATE TABLE IF NOT EXISTS apps (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        unit TEXT NOT NULL,
        container TEXT,
        service TEXT
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS apps_key ON apps "
    "(name, unit, ifnull(container, ''), ifnull(service, ''))",
    *(PERIOD_SQL.format(name=name) for name in TABLES),
]


class StoreError(Exception):
    """The store cannot be used; the message says why and what to do, in one line."""


class StoreCorrupt(StoreError):
    """The file is not a readable history store."""


class StoreBusy(StoreError):
    """Another bwmon holds the writer's lock."""

    def __init__(self, message: str, pid: int | None) -> None:
        super().__init__(message)
        self.pid = pid


def describe(exc: BaseException) -> str:
    """An OSError or SQLite error as a short phrase: `Permission denied`, `disk is full`."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    text = str(exc)
    return "the disk is full" if "full" in text else text


def is_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL" or "is full" in str(exc)


class WriterLock:
    """An exclusive `flock` on `PATH.lock`, holding the writer's pid; released on close."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreBusy (naming the other writer) or StoreError."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create {self.path}: {describe(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            who = f"another bwmon (pid {pid})" if pid else "another bwmon"
            raise StoreBusy(f"{who} writes {self.path.with_suffix('')}", pid) from None
        with contextlib.suppress(OSError):  # the pid is a courtesy: a full disk may refuse it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def make_directory(path: Path) -> None:
    """The store's directory, created if missing (StoreError saying why it cannot be)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the directory {path.parent}: {describe(exc)}") from None


def open_writer(path: Path) -> sqlite3.Connection:
    """The writer's connection: the directory and file created if needed, the schema checked.

    Raises StoreCorrupt for a file that is not a readable store, StoreError for the rest
    (a read-only directory, a full disk, a store of a newer bwmon).
    """
    make_directory(path)
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        fresh = conn.execute("PRAGMA page_count").fetchone()[0] == 0
        if fresh:  # must precede the first table: freed pages can then be given back
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a power cut loses the last commit
        if not fresh:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreCorrupt(f"{path} is damaged ({check})")
        conn.execute("BEGIN IMMEDIATE")
        for statement in SCHEMA:
            conn.execute(statement)
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            conn.execute("INSERT INTO meta VALUES ('created', ?)", (str(int(time.time())),))
        conn.execute("COMMIT")
        if row is not None and row[0] != str(SCHEMA_VERSION):
            raise StoreError(f"{path} was written by another version of bwmon (schema "
                             f"{row[0]}, this one writes {SCHEMA_VERSION})")
        return conn
    except sqlite3.DatabaseError as exc:
        if conn is not None:
            conn.close()
        if _is_corruption(exc):
            raise StoreCorrupt(f"{path} is not a readable history store ({exc})") from None
        if is_full(exc):
            raise StoreError(f"cannot write {path}: the disk is full") from None
        raise StoreError(f"cannot open {path}: {_sqlite_reason(exc, path)}") from None
    except StoreError:
        if conn is not None:
            conn.close()
        raise


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    return name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "malformed" in str(exc) or (
        "not a database" in str(exc))


def _sqlite_reason(exc: sqlite3.Error, path: Path) -> str:
    """SQLite says "unable to open database file" for a directory one cannot write: say so."""
    if "unable to open" in str(exc) or "readonly" in str(exc):
        where = path.parent if not path.exists() else path
        if not os.access(where, os.W_OK):
            return f"{where} is not writable"
    return str(exc)


def move_aside(path: Path, now: float) -> Path:
    """Rename a damaged store (and its -wal, -shm files) out of the way; returns the new name."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    os.replace(path, aside)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.replace(side, aside.with_name(aside.name + suffix))
    return aside


def _read_only(path: Path, query: str) -> tuple[sqlite3.Connection, tuple[str] | None]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?{query}", uri=True,
                           isolation_level=None, check_same_thread=False)
    try:
        return conn, conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
    except BaseException:
        conn.close()
        raise


def _no_wal_data(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    try:
        return wal.stat().st_size == 0
    except FileNotFoundError:
        return True


def open_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection to an existing store; StoreError (one line) if there is none or
    it cannot be read."""
    if not path.exists():
        raise StoreError(f"no history store at {path} yet: bwmon records one while it runs "
                         "(history.path and history.enabled in bwmon.toml)")
    try:
        try:
            conn, row = _read_only(path, "mode=ro")
        except sqlite3.OperationalError:
            # SQLite reads a WAL-mode file by sharing memory with its writer (the -shm file
            # beside it). With no writer there is none, and a reader that may not create one
            # (another user's directory) is refused: but with no -wal data either, the file
            # alone is the whole store, and "immutable" reads it as it is.
            if not _no_wal_data(path):
                raise
            conn, row = _read_only(path, "mode=ro&immutable=1")
    except sqlite3.DatabaseError as exc:
        if _is_corruption(exc):
            raise StoreCorrupt(f"{path} is not a readable history store ({exc}); the "
                               "next bwmon that records moves it aside") from None
        raise StoreError(f"cannot read {path}: {_sqlite_reason(exc, path)}") from None
    if row is None or row[0] != str(SCHEMA_VERSION):
        conn.close()
        raise StoreError(f"{path} is not a history store of this bwmon version")
    return conn
