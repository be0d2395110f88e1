"""The history store under a real `bwmon run` with a real pipe and a real traffic generator,
in a namespace of the test's own: kill -9 and restart, two bwmon on one store, a damaged
file, a read-only directory and a full disk (small tmpfs mounts made and removed here)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bwmon.core.store import queries
from bwmon.core.store.schema import StoreError, open_reader
from tests.conftest import REPO, TRAFFIC
from tests.helpers.netns import NetNS, sh

pytestmark = pytest.mark.privileged

BWMON = [sys.executable, "-m", "bwmon"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
SINK_PORT = 9300
HEADER = 16  # traffic.py's client sends a 16-byte header before its payload
FLUSH = 1.0


def config(tmp_path: Path, store: Path, port: int, name: str = "cfg") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f"""
[general]
interval = 0.2
events = false
ebpf = "off"

[[monitors]]
name = "gen"
type = "pipe"
listen = "127.0.0.1"
port = {port}
target_host = "127.0.0.1"
target_port = {SINK_PORT}

[history]
path = "{store}"
flush_seconds = {FLUSH}
""")
    return path


class Bwmon:
    """`bwmon run` in the namespace; stdout's ticks and stderr's lines are collected."""

    def __init__(self, ns: NetNS, cfg: Path) -> None:
        self.proc = ns.popen([*BWMON, "run", "--config", str(cfg)], env=ENV, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.err: list[str] = []
        self.ticks = 0
        threading.Thread(target=self._read_err, daemon=True).start()
        threading.Thread(target=self._read_out, daemon=True).start()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line.rstrip("\n"))

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("host "):
                self.ticks += 1

    def wait_for(self, what: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if self.proc.poll() is not None:
                raise AssertionError(f"bwmon ended ({self.proc.returncode}): {self.err}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; stderr: {self.err}")
            time.sleep(0.05)

    def said(self, text: str) -> str | None:
        return next((line for line in self.err if text in line), None)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout=30)
        time.sleep(0.1)  # the reader threads see the last lines
        assert not any("Traceback" in line for line in self.err), self.err
        return status


def pipe_up(ns: NetNS, port: int) -> bool:
    def connects() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
        except OSError:
            return False
        return True

    return ns.call(connects)


def send(ns: NetNS, port: int, count: int, size: int) -> int:
    """Send `count` connections of `size` bytes through the pipe (once it listens); returns
    the pipe's bytes in."""
    deadline = time.monotonic() + 30
    while not pipe_up(ns, port):
        assert time.monotonic() < deadline, f"pipe on port {port} never listened"
        time.sleep(0.05)
    ns.run(sys.executable, TRAFFIC, "client", "--host", "127.0.0.1", "--port", str(port),
           "--send", str(size), "--count", str(count))
    return count * (HEADER + size)


def recorded_in(store: Path) -> int:
    """The pipe's bytes in over the last hour, as `reported_in` gives them, read here: polled
    every 50 ms, a `bwmon report` process each time would take a CPU of this machine's two."""
    try:
        conn = open_reader(store)
    except StoreError as exc:
        if "no history store at" in str(exc) or "not a history store of this" in str(exc):
            return -1  # not created yet, or its tables not yet
        raise
    try:
        now = int(time.time())
        apps = {a.name: a for a in queries.top_apps(conn, now - 3600, now + 1)}
    finally:
        conn.close()
    return apps["gen"].bytes_in if "gen" in apps else 0


def reported_in(store: Path) -> int:
    """The pipe's bytes in over the last hour, says `bwmon report` (-1: no store yet)."""
    done = subprocess.run([*BWMON, "report", "top", "--since", "1h", "--json", "--store",
                           str(store)], env=ENV, capture_output=True, text=True, timeout=60)
    if "no history store at" in done.stderr:
        return -1  # not created yet
    assert done.returncode == 0, done.stderr
    apps = {a["app"]: a for a in json.loads(done.stdout)["apps"]}
    return int(apps["gen"]["bytes_in"]) if "gen" in apps else 0


@pytest.fixture
def ns() -> Iterator[NetNS]:
    with NetNS() as space:
        sink = space.popen([sys.executable, TRAFFIC, "sink", "--port", str(SINK_PORT)],
                           stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        yield space


def test_kill_9_loses_at_most_one_flush_interval(ns: NetNS, tmp_path: Path) -> None:
    store = tmp_path / "state" / "history.sqlite"
    cfg = config(tmp_path, store, 9301)
    first = Bwmon(ns, cfg)
    first.wait_for(lambda: pipe_up(ns, 9301))
    kept = send(ns, 9301, 5, 100_000)
    first.wait_for(lambda: recorded_in(store) == kept)  # written
    at_risk = send(ns, 9301, 3, 50_000)  # sent within the last flush interval
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(timeout=10)
    second = Bwmon(ns, cfg)
    second.wait_for(lambda: pipe_up(ns, 9301))
    kept += send(ns, 9301, 4, 70_000)
    # stopped only once its flushes hold the new bytes: the pipe child's counters reach bwmon
    # a tick or more after the bytes (several on a loaded machine), and a count of ticks since
    # start can be reached before the sends even end
    second.wait_for(lambda: recorded_in(store) >= kept)
    assert second.stop() == 0, second.err
    got = reported_in(store)
    assert kept <= got <= kept + at_risk, (got, kept, at_risk)
    assert second.said("recording history in"), second.err


def test_two_bwmon_on_one_store_one_writes_the_other_reads(ns: NetNS, tmp_path: Path) -> None:
    store = tmp_path / "history.sqlite"
    writer = Bwmon(ns, config(tmp_path, store, 9311, "a"))
    writer.wait_for(lambda: bool(writer.said("recording history in")))
    reader = Bwmon(ns, config(tmp_path, store, 9312, "b"))
    reader.wait_for(lambda: bool(reader.said("this bwmon reads that store")))
    line = reader.said("this bwmon reads that store")
    assert line is not None and f"pid {writer.proc.pid}" in line and str(store) in line
    sent = send(ns, 9311, 2, 30_000)
    send(ns, 9312, 2, 10_000)  # measured by the reader: not recorded, the writer's run is
    # (and not when the reader takes over: the interval of the takeover is the writer's)
    writer.wait_for(lambda: recorded_in(store) == sent)
    assert reported_in(store) == sent  # a report beside both: no error
    assert writer.stop() == 0
    # the writer is gone: the reader takes over at its next flush
    reader.wait_for(lambda: reader.said("recording history in") is not None)
    later = send(ns, 9312, 1, 5_000)
    reader.wait_for(lambda: recorded_in(store) == sent + later)
    assert reported_in(store) == sent + later
    assert reader.stop() == 0


def test_a_damaged_store_is_moved_aside_and_a_fresh_one_started(ns: NetNS,
                                                                 tmp_path: Path) -> None:
    store = tmp_path / "history.sqlite"
    junk = b"not a database, a file some mishap left here\n" * 200
    store.write_bytes(junk)
    bwmon = Bwmon(ns, config(tmp_path, store, 9321))
    bwmon.wait_for(lambda: bool(bwmon.said("moved it aside")))
    line = bwmon.said("moved it aside")
    assert line is not None and "not a readable history store" in line
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("history.sqlite.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == junk and aside[0].name in line
    sent = send(ns, 9321, 2, 20_000)
    bwmon.wait_for(lambda: recorded_in(store) == sent)
    assert bwmon.stop() == 0


@contextlib.contextmanager
def tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    sh("mount", "-t", "tmpfs", "-o", options, "bwmon-test", str(where))
    try:
        yield where
    finally:
        sh("umount", "-l", str(where), check=False)


def test_a_read_only_directory_is_one_message_and_the_monitor_goes_on(
        ns: NetNS, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        store = ro / "bwmon" / "history.sqlite"
        bwmon = Bwmon(ns, config(tmp_path, store, 9331))
        bwmon.wait_for(lambda: bool(bwmon.said("history is not recorded")))
        line = bwmon.said("history is not recorded")
        assert line is not None and "Read-only file system" in line and str(ro) in line
        assert "history.path" in line  # names a fix
        ticks = bwmon.ticks
        bwmon.wait_for(lambda: pipe_up(ns, 9331))
        send(ns, 9331, 1, 10_000)
        bwmon.wait_for(lambda: bwmon.ticks >= ticks + 10)  # live ticks go on
        assert bwmon.stop() == 0
        assert len([x for x in bwmon.err if "not recorded" in x]) == 1  # said once


def test_a_full_disk_is_one_message_and_nothing_is_lost_once_there_is_room(
        ns: NetNS, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "size=2m") as small:
        store = small / "history.sqlite"
        bwmon = Bwmon(ns, config(tmp_path, store, 9341))
        bwmon.wait_for(lambda: bool(bwmon.said("recording history in")))
        filler = small / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        sent = send(ns, 9341, 3, 40_000)
        bwmon.wait_for(lambda: bool(bwmon.said("the disk is full")))
        line = bwmon.said("the disk is full")
        assert line is not None and str(store) in line and "wait in memory" in line
        ticks = bwmon.ticks
        bwmon.wait_for(lambda: bwmon.ticks >= ticks + 10)  # live ticks go on
        filler.unlink()
        bwmon.wait_for(lambda: recorded_in(store) == sent)  # written once there is room
        assert bwmon.stop() == 0


def test_a_store_nobody_writes_is_read_where_the_reader_may_not_write(
        ns: NetNS, tmp_path: Path) -> None:
    """A WAL store with no writer, in a directory the reader cannot write (another user's, a
    read-only mount): SQLite would need a -shm file there; the report reads it all the same."""
    with tmpfs(tmp_path / "ro", "size=2m") as ro:
        store = ro / "history.sqlite"
        bwmon = Bwmon(ns, config(tmp_path, store, 9351))
        sent = send(ns, 9351, 2, 25_000)
        bwmon.wait_for(lambda: recorded_in(store) == sent)
        assert bwmon.stop() == 0
        assert not (ro / "history.sqlite-shm").exists()  # a clean stop leaves the file alone
        sh("mount", "-o", "remount,ro", str(ro))
        assert reported_in(store) == sent
