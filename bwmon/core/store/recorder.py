"""The recorder: tallies every snapshot's bytes per minute and has a thread write them.

A tick only adds to a dict (`tally`); every `flush_seconds` of snapshot time the sums go to
the writer thread through a queue, so no tick ever waits for the disk. A `kill -9` loses at
most what was tallied since the last write. Problems (another writer, a damaged file, a
read-only directory, a full disk) go to the alert log as one clear line each, once per
distinct problem; the live monitor runs on whatever happens to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from bwmon.core.config.settings import HistorySettings
from bwmon.core.feed import SnapshotFeed
from bwmon.core.model import Level, Snapshot
from bwmon.core.store.location import store_path
from bwmon.core.store.retention import Retention
from bwmon.core.store.schema import (
    StoreBusy,
    StoreCorrupt,
    StoreError,
    describe,
    is_full,
    move_aside,
)
from bwmon.core.store.tally import MinuteBytes, MinuteTally
from bwmon.core.store.writer import StoreWriter

SOURCE = "history"
ROLL_UP_SECONDS = 600  # roll-ups run with the first write and then at most this often
NOT_RECORDED = "history is not recorded meanwhile; the live view goes on"


class StoreState(StrEnum):
    STARTING = "starting"
    WRITING = "writing"  # this bwmon records
    READING = "reading"  # another bwmon records; this one reads the store
    FAILED = "failed"  # the store cannot be written (see the alert log); retried each flush


@dataclass(frozen=True, slots=True)
class _Job:
    rows: list[MinuteBytes]
    now: float
    final: bool = False


class Recorder:
    """Feeds the history store from a snapshot feed. `start()` in the event loop, then
    `await close()` (it writes what is tallied)."""

    def __init__(self, feed: SnapshotFeed, settings: HistorySettings,
                 wall: Callable[[], float]) -> None:
        self.feed = feed
        self.path: Path = store_path(settings.path)
        self.flush_seconds = settings.flush_seconds
        self.retention = Retention(settings.minutes_hours, settings.hours_days,
                                   settings.days_days)
        self.state = StoreState.STARTING
        self.other_writer: int | None = None  # pid of the bwmon that writes, when READING
        self.problem = ""  # why the store cannot be written, when FAILED (as the log says)
        self.tally = MinuteTally()
        self._wall = wall
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bwmon-history", daemon=True)
        self._last_flush: float | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # thread side
        self._said: str | None = None
        self._pending: list[MinuteBytes] = []
        self._last_roll_up: float | None = None

    # -- event loop side -----------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = self.feed.subscribe(self.on_snapshot)
        self._thread.start()
        self._jobs.put(_Job([], self._wall()))  # opens the store at once: problems show early

    def on_snapshot(self, snap: Snapshot) -> None:
        self.tally.add(snap)
        if self._last_flush is None:
            self._last_flush = snap.time
        elif snap.time - self._last_flush >= self.flush_seconds:
            self._last_flush = snap.time
            self._jobs.put(_Job(self.tally.take(), snap.time))

    async def close(self, timeout: float = 30.0) -> None:
        """Write what is tallied, then stop the thread (waiting at most `timeout` seconds)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if not self._thread.is_alive():
            return
        self._jobs.put(_Job(self.tally.take(), self._wall(), final=True))
        await asyncio.to_thread(self._thread.join, timeout)

    def _say(self, level: Level, message: str) -> None:
        """One line in the alert log (from the thread, through the loop); a repeat of the
        last problem is not said again."""
        if level is Level.ERROR:
            self.problem = message
        if message == self._said:
            return
        self._said = message
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody to tell
            loop.call_soon_threadsafe(self.feed.log.add, self._wall(), level, SOURCE, message)

    # -- thread side ---------------------------------------------------------------------------

    def _run(self) -> None:
        writer = StoreWriter(self.path, self.retention)
        try:
            while True:
                job = self._jobs.get()
                try:
                    self._handle(writer, job)
                except Exception as exc:  # a bug here must not end the thread with a traceback
                    self.state = StoreState.FAILED
                    self._say(Level.ERROR, f"cannot record history in {self.path}: {exc!r}")
                if job.final:
                    return
        finally:
            writer.close()

    def _handle(self, writer: StoreWriter, job: _Job) -> None:
        rows = job.rows
        if writer.conn is None:
            was = self.state
            if not self._open(writer, job.now):
                if self.state is StoreState.FAILED:
                    self._keep(rows)
                return  # READING: the other bwmon records the same traffic
            if was is StoreState.READING:  # taking over: the other one wrote (part of) this
                rows = []  # interval already; better a part of one interval lost than doubled
        rows = self._pending + rows
        self._pending = []
        try:
            writer.write(rows)
            if self._last_roll_up is None or job.now - self._last_roll_up >= ROLL_UP_SECONDS:
                writer.roll_up(job.now)
                self._last_roll_up = job.now
        except (sqlite3.Error, OSError) as exc:
            self._keep(rows)
            self.state = StoreState.FAILED
            minutes = len({r.minute for r in self._pending})
            if is_full(exc):
                self._say(Level.ERROR, f"cannot write {self.path}: the disk is full; "
                          f"{minutes} minute(s) of totals wait in memory and are written "
                          "when there is room")
            else:
                self._say(Level.ERROR, f"cannot write {self.path}: {describe(exc)}; "
                          f"{minutes} minute(s) of totals wait in memory")
            return
        if self.state is not StoreState.WRITING:
            self.state = StoreState.WRITING
            self._say(Level.INFO, f"recording history in {self.path}")

    def _open(self, writer: StoreWriter, now: float) -> bool:
        try:
            try:
                writer.open()
            except StoreCorrupt as exc:
                aside = move_aside(self.path, now)
                self._say(Level.WARNING, f"{exc}: moved it aside to {aside.name} and "
                          "started a fresh store")
                self._said = None  # the next message (recording) must be said too
                writer.open()
        except StoreBusy as exc:
            self.state, self.other_writer = StoreState.READING, exc.pid
            self._say(Level.INFO, f"{exc}: this bwmon reads that store and records nothing "
                      "(the other one records the same traffic)")
            return False
        except (StoreError, OSError) as exc:
            self.state = StoreState.FAILED
            text = str(exc) if isinstance(exc, StoreError) else describe(exc)
            self._say(Level.ERROR, f"{text}; {NOT_RECORDED} (fix it, or set history.path, "
                      "or history.enabled = false)")
            return False
        self.other_writer = None
        return True

    def _keep(self, rows: list[MinuteBytes]) -> None:
        """Rows that could not be written wait for the next write, within the tally's cap."""
        kept = MinuteTally(self.tally.cap)
        kept.add_rows(self._pending + rows)
        self._pending = kept.take()
