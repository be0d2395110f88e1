"""The monitor's side of pipe monitors: one child process per pipe, supervised.

Each configured pipe runs as `python -m bwmon.core.pipes.child …` (see that module for the
JSON-lines
protocol). The supervisor reads its reports, restarts a child that dies (exponential backoff,
0.5 s … 30 s, logged as `pipe:NAME`), and keeps counters cumulative across restarts by adding
each dead child's last report as an offset: bytes relayed after a child's last report and before
its death are lost, never counted twice. Settings changed at run time reach the child over stdin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bwmon.core.config.settings import MonitorSettings
from bwmon.core.eventlog import EventLog
from bwmon.core.model import Level, PipeClient, PipeCounters
from bwmon.core.runtime.process_tree import kill_tree

BACKOFF_MIN = 0.5
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 30.0  # a child that lived this long restarts with the shortest delay again
STOP_GRACE = 2.0  # seconds a child gets to exit after its stdin closes
PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])


def _target(m: MonitorSettings) -> str:
    host = m.target_host or ""
    port = m.target_port if m.target_port is not None else m.port
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen(m: MonitorSettings) -> str:
    return f"[{m.listen}]:{m.port}" if ":" in m.listen else f"{m.listen}:{m.port}"


def _control_line(m: MonitorSettings) -> bytes:
    change = {
        "shape_in": m.shape_in,
        "shape_out": m.shape_out,
        "max_connections": m.max_connections,
    }
    return json.dumps(change).encode() + b"\n"


def _endpoint(m: MonitorSettings) -> tuple[object, ...]:
    return (m.listen, m.port, m.target_host, m.target_port)


class _PipeChild:
    """One pipe: its child process, restart loop, and counter offsets."""

    def __init__(self, settings: MonitorSettings, sup: PipeSupervisor) -> None:
        self.settings = settings
        self.sup = sup
        self.offset_in = 0
        self.offset_out = 0
        self.report: dict[str, Any] | None = None
        self.error: str | None = "starting"
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None
        self.stopping = False
        self.respawn_now = False
        self.stderr_tail: deque[str] = deque(maxlen=5)
        self.wake = asyncio.Event()

    @property
    def source(self) -> str:
        return f"pipe:{self.settings.name}"

    def log(self, level: Level, message: str, **data: object) -> None:
        self.sup.log.add(self.sup.clock(), level, self.source, message, **data)

    def argv(self) -> list[str]:
        m = self.settings
        argv = [
            self.sup.python, "-m", "bwmon.core.pipes.child",
            "--listen", m.listen, "--port", str(m.port), "--target-host", str(m.target_host),
            "--target-port", str(m.target_port if m.target_port is not None else m.port),
            "--max-connections", str(m.max_connections), "--interval", str(self.sup.interval),
            "--control", "--parent-death", str(os.getpid()),
        ]  # fmt: skip
        if m.shape_in:
            argv += ["--shape-in", str(m.shape_in)]
        if m.shape_out:
            argv += ["--shape-out", str(m.shape_out)]
        return argv + list(self.sup.extra_args)

    def counters(self) -> PipeCounters:
        r = self.report or {}
        clients = tuple(
            PipeClient(str(c.get("peer", "")), int(c.get("in", 0)), int(c.get("out", 0)),
                       bool(c.get("open", False)))
            for c in r.get("clients", ())
        )  # fmt: skip
        return PipeCounters(
            name=self.settings.name,
            listen=_listen(self.settings),
            target=_target(self.settings),
            bytes_in=self.offset_in + int(r.get("in", 0)),
            bytes_out=self.offset_out + int(r.get("out", 0)),
            connections=int(r.get("connections", 0)),
            clients=clients,
            up=self.proc is not None and self.report is not None and self.error is None,
            error=self.error,
        )

    async def run(self) -> None:
        delay = BACKOFF_MIN
        first = True
        while not self.stopping:
            started = time.monotonic()
            if not first:
                self.log(Level.INFO, "pipe child restarted")
            first = False
            self.respawn_now = False  # an update() during a backoff wait is applied by this spawn
            failure = await self._run_once()
            self.offset_in += int((self.report or {}).get("in", 0))
            self.offset_out += int((self.report or {}).get("out", 0))
            self.report, self.proc = None, None
            if self.stopping:
                break
            if self.respawn_now:
                delay = BACKOFF_MIN
                self.error = "restarting with new settings"
                continue
            if time.monotonic() - started >= HEALTHY_AFTER:
                delay = BACKOFF_MIN
            self.error = f"{failure}; restarting in {delay:g} s"
            self.log(Level.ERROR if "cannot" in failure else Level.WARNING, self.error)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), delay)
            delay = min(delay * 2, BACKOFF_MAX)

    async def _run_once(self) -> str:
        """Run one child until it exits; the reason it ended, in words."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
        self.stderr_tail.clear()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, limit=1 << 22,
            )  # fmt: skip
        except OSError as exc:
            return f"cannot start {self.sup.python}: {exc.strerror}"
        self.proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        err_task = asyncio.create_task(self._read_stderr(proc.stderr))
        fatal: str | None = None
        try:
            while True:
                try:
                    line = await asyncio.wait_for(proc.stdout.readline(), self.sup.silence)
                except TimeoutError:
                    fatal = f"child silent for {self.sup.silence:g} s, killed"
                    kill_tree(proc.pid)
                    break
                if not line:
                    break
                fatal = self._on_line(line) or fatal
        except (ValueError, asyncio.LimitOverrunError):
            fatal = "child wrote an over-long line, killed"
            kill_tree(proc.pid)
        finally:
            code = await proc.wait()
            with contextlib.suppress(asyncio.CancelledError):
                await err_task
        if fatal:
            return fatal
        detail = "; ".join(self.stderr_tail)
        return f"pipe child exited with status {code}" + (f": {detail}" if detail else "")

    def _on_line(self, line: bytes) -> str | None:
        try:
            report = json.loads(line)
            if not isinstance(report, dict):
                raise ValueError
        except ValueError:
            return None
        for message in report.get("events", ()):
            self.log(Level.WARNING, str(message))
        if report.get("error"):
            self.error = str(report["error"])
            return f"cannot run: {report['error']}"
        self.report, self.error = report, None
        return None

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").strip()
            if text:
                self.stderr_tail.append(text[:200])

    def send(self, data: bytes) -> None:
        proc = self.proc
        if proc is not None and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(data)

    async def end_child(self) -> None:
        """Close the child's stdin (it then exits); kill it if it lingers."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE)
        except TimeoutError:
            kill_tree(proc.pid)
            await proc.wait()


class PipeSupervisor:
    """Runs the pipes among `monitors` as child processes and sums their counters."""

    def __init__(
        self,
        monitors: list[MonitorSettings],
        log: EventLog,
        *,
        python: str = sys.executable,
        interval: float = 0.5,
        clock: Callable[[], float] = time.time,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.log = log
        self.python = python
        self.interval = interval
        self.silence = max(5.0, 10 * interval)  # no report for this long: the child is hung
        self.clock = clock
        self.extra_args = extra_args
        self._wanted = [m for m in monitors if m.type == "pipe"]
        self._children: dict[str, _PipeChild] = {}

    async def start(self) -> None:
        """Start one child per pipe; returns at once (children report as they come up)."""
        for m in self._wanted:
            self._spawn(m)

    def _spawn(self, m: MonitorSettings) -> None:
        child = _PipeChild(m, self)
        self._children[m.name] = child
        child.task = asyncio.create_task(child.run(), name=f"pipe:{m.name}")

    def counters(self) -> list[PipeCounters]:
        """Cumulative counters of every pipe, in configuration order; `up` False when down."""
        return [child.counters() for child in self._children.values()]

    async def update(self, monitors: list[MonitorSettings]) -> None:
        """Apply new settings: start/stop pipes, restart moved ones, pass limits to the child."""
        wanted = {m.name: m for m in monitors if m.type == "pipe"}
        for name in [n for n in self._children if n not in wanted]:
            await self._retire(self._children.pop(name))
        for name, m in wanted.items():
            child = self._children.get(name)
            if child is None:
                self._spawn(m)
                continue
            old, child.settings = child.settings, m
            if _endpoint(old) != _endpoint(m):
                child.log(Level.INFO, f"now {_listen(m)} → {_target(m)}; restarting its child")
                child.respawn_now = True
                child.wake.set()
                await child.end_child()
            elif _control_line(old) != _control_line(m):
                child.send(_control_line(m))
                child.log(Level.INFO, "shaping/limits changed",
                          shape_in=m.shape_in, shape_out=m.shape_out)  # fmt: skip
        self._children = {n: self._children[n] for n in wanted if n in self._children}

    async def _retire(self, child: _PipeChild) -> None:
        child.stopping = True
        child.wake.set()
        await child.end_child()
        if child.task is not None:
            child.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await child.task

    async def stop(self) -> None:
        """Stop every child (stdin closed, then killed after a grace period)."""
        await asyncio.gather(*(self._retire(c) for c in self._children.values()))
