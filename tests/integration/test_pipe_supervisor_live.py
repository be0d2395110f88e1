"""PipeSupervisor with real relay children: kill -9 recovery, no orphans, run-time changes."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from bwmon.core.config.settings import MonitorSettings
from bwmon.core.eventlog import EventLog
from bwmon.core.model import Level, PipeCounters
from bwmon.core.pipes.supervisor import PipeSupervisor
from tests.integration.test_pipe_helpers import REPO, Target, exchange, free_port, wait_for


def pipe(name: str, port: int, target: int, **kw: object) -> MonitorSettings:
    fields = {"name": name, "type": "pipe", "port": port, "target_host": "127.0.0.1",
              "target_port": target} | kw  # fmt: skip
    return MonitorSettings.model_validate(fields)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


async def until(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


def children_of(pid: int) -> list[psutil.Process]:
    """Pipe children of `pid` (other tests may have children of their own)."""
    kids = psutil.Process(pid).children()
    return [k for k in kids if "bwmon.core.pipes.child" in " ".join(k.cmdline())]


async def test_killed_child_restarts_and_totals_stay_exact(target: Target) -> None:
    port = free_port()
    log = EventLog()
    sup = PipeSupervisor([pipe("web", port, target.port)], log, interval=0.1)
    samples: list[PipeCounters] = []

    async def sample() -> None:
        while True:
            samples.append(sup.counters()[0])
            await asyncio.sleep(0.02)

    await sup.start()
    sampler = asyncio.create_task(sample())
    try:
        await until(lambda: sup.counters()[0].up)
        got1, _ = await asyncio.to_thread(exchange, "127.0.0.1", port, 5000, 70000)
        await until(lambda: sup.counters()[0].bytes_out == 70000)
        (child,) = children_of(os.getpid())
        child.send_signal(signal.SIGKILL)
        await until(lambda: not sup.counters()[0].up)
        await until(lambda: sup.counters()[0].up)
        got2, _ = await asyncio.to_thread(exchange, "127.0.0.1", port, 100, 3000)
        await until(lambda: sup.counters()[0].bytes_out == 73000)
        await asyncio.sleep(0.3)
    finally:
        sampler.cancel()
        await sup.stop()
    final = samples[-1]
    assert (got1, got2) == (70000, 3000)
    assert (final.bytes_in, final.bytes_out) == (5008 + 108, 73000)
    pairs = itertools.pairwise(samples)
    assert all(b.bytes_in >= a.bytes_in and b.bytes_out >= a.bytes_out for a, b in pairs)
    assert any(not s.up and s.error and "-9" in s.error for s in samples)
    events = [e for e in log.tail() if e.source == "pipe:web"]
    assert any(e.level is Level.WARNING and "status -9" in e.message for e in events)
    assert any("restarted" in e.message for e in events)
    assert children_of(os.getpid()) == []


HARNESS = """
import asyncio, sys
from bwmon.core.config.settings import MonitorSettings
from bwmon.core.eventlog import EventLog
from bwmon.core.pipes.supervisor import PipeSupervisor

async def main():
    m = MonitorSettings(name="p", type="pipe", port=int(sys.argv[1]), target_host="127.0.0.1",
                        target_port=int(sys.argv[2]))
    sup = PipeSupervisor([m], EventLog(), interval=0.1)
    await sup.start()
    while not sup.counters()[0].up:
        await asyncio.sleep(0.05)
    print("up", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_no_orphan_survives_the_monitor_being_killed(target: Target, tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "harness.py"
    script.write_text(HARNESS)
    harness = subprocess.Popen(
        [sys.executable, str(script), str(port), str(target.port)],
        stdout=subprocess.PIPE, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    try:
        assert harness.stdout is not None and harness.stdout.readline() == b"up\n"
        (child,) = children_of(harness.pid)
        assert "bwmon.core.pipes.child" in child.cmdline()
        got, _ = exchange("127.0.0.1", port, 10, 10)  # the relay really works
        harness.send_signal(signal.SIGKILL)
        harness.wait(5)
        assert wait_for(lambda: not child.is_running() or child.status() == "zombie", 5)
        # a killed process shows as a zombie while its other threads still exit and hold
        # its sockets for a moment: the port must be free soon, not at that very instant
        assert wait_for(lambda: refused(port), 5)
    finally:
        if harness.poll() is None:
            harness.kill()
    assert got == 10


async def test_update_applies_new_pipes_removals_and_moves(target: Target) -> None:
    a, b, moved = free_port(), free_port(), free_port()
    log = EventLog()
    sup = PipeSupervisor([pipe("a", a, target.port), pipe("b", b, target.port)], log, interval=0.1)
    await sup.start()
    try:
        await until(lambda: all(c.up for c in sup.counters()))
        await asyncio.to_thread(exchange, "127.0.0.1", a, 0, 500)
        await until(lambda: sup.counters()[0].bytes_out == 500)
        # "a" moves to another port, "b" goes away, "c" appears
        c_port = free_port()
        await sup.update([pipe("a", moved, target.port), pipe("c", c_port, target.port)])
        await until(lambda: [c.name for c in sup.counters()] == ["a", "c"])
        await until(lambda: all(c.up for c in sup.counters()))
        await asyncio.to_thread(exchange, "127.0.0.1", moved, 0, 20)
        await until(lambda: sup.counters()[0].bytes_out == 520)
        assert refused(a) and refused(b)
        assert sup.counters()[0].listen == f"127.0.0.1:{moved}"
    finally:
        await sup.stop()
    assert children_of(os.getpid()) == []
    assert refused(moved) and refused(c_port)
