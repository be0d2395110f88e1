"""Runs the user's notification commands as asyncio tasks beside the tick loop.

Commands start with `create_subprocess_exec` (never a shell), in their own session, with a
clean environment (the BWMON_* alert variables and what a program needs to run: never bwmon's
own settings, such as the HTTP token); a timeout kills the command, everything still below it
and its whole process group. A semaphore bounds how many run at once and a bounded queue holds
the rest; each outcome (status, duration, start of stderr) becomes an alert-log event. The
command's own exit ends the wait, even when a background process it left behind still holds its
stderr. Scheduling never blocks the caller, so a burst of alerts cannot delay a tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Mapping
from datetime import datetime
from typing import BinaryIO

from bwmon.core.alerts.rules import AlertEvent
from bwmon.core.config.settings import NotifySettings
from bwmon.core.eventlog import EventLog
from bwmon.core.model import Level
from bwmon.core.runtime.process_tree import kill_tree

SOURCE = "notify"
_SIMPLE = re.compile(r"\{(\w+)\}")
# Variables a command may need to run (find programs, locale, a desktop to notify); everything
# else in bwmon's environment stays out of it: BWMON_HTTP__TOKEN, credentials, other secrets.
PASSED_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
              "DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS")
STDERR_GRACE = 0.2  # seconds to read what the command wrote to stderr just before it exited


class _Number(float):
    """A float that prints as a rounded figure in a bare `{average}` but honours `{average:.2f}`."""

    def __format__(self, spec: str) -> str:
        if spec:
            return format(float(self), spec)
        return format(float(self), ".0f") if abs(self) >= 10 else format(float(self), ".3g")


class _Placeholders(dict[str, object]):
    """format_map mapping that leaves unknown `{names}` as they are."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def iso_time(epoch: float) -> str:
    """Local time with offset, to the second (what BWMON_TIME and `{time}` carry)."""
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def placeholders(event: AlertEvent) -> dict[str, object]:
    """The values `{app}`, `{direction}`… stand for in a command's arguments."""
    return {
        "app": event.app,
        "direction": event.direction,
        "threshold": _Number(event.threshold),
        "average": _Number(event.average),
        "window": _Number(event.window),
        "rule": event.rule,
        "event": event.kind,
        "time": iso_time(event.time),
        "epoch": _Number(event.time),
    }


def expand(arg: str, values: Mapping[str, object]) -> str:
    """Fill `{name}` placeholders; unknown names and malformed braces stay as written."""
    try:
        return arg.format_map(_Placeholders(values))
    except (ValueError, IndexError, KeyError, AttributeError, TypeError):
        return _SIMPLE.sub(lambda m: format(values[m[1]]) if m[1] in values else m[0], arg)


def command_environment(event: AlertEvent,
                        parent: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a notification command: PASSED_ENV and LC_* from bwmon's own
    (`parent`, default os.environ), then the event's BWMON_* variables."""
    parent = os.environ if parent is None else parent
    kept = {k: v for k, v in parent.items() if k in PASSED_ENV or k.startswith("LC_")}
    kept.setdefault("PATH", os.defpath)
    return {**kept, **environment(event)}


def environment(event: AlertEvent) -> dict[str, str]:
    """The BWMON_* variables describing the event (rates in bytes/s, rounded)."""
    return {
        "BWMON_ALERT_NAME": event.rule,
        "BWMON_APP": event.app,
        "BWMON_DIRECTION": event.direction,
        "BWMON_THRESHOLD": f"{event.threshold:.0f}",
        "BWMON_AVERAGE": f"{event.average:.0f}",
        "BWMON_WINDOW": f"{event.window:g}",
        "BWMON_TIME": iso_time(event.time),
        "BWMON_EPOCH": f"{event.time:.3f}",
        "BWMON_EVENT": event.kind,
    }


class Notifier:
    """Schedules notification commands; at most `max_concurrent` run, `max_queued` wait."""

    def __init__(self, settings: NotifySettings, log: EventLog, *, max_queued: int = 1000) -> None:
        self.settings = settings
        self.log = log
        self.max_queued = max_queued
        self._semaphore = asyncio.Semaphore(settings.max_concurrent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._procs: set[asyncio.subprocess.Process] = set()
        self.running = 0  # commands executing now
        self.peak = 0  # most commands ever executing at once
        self.dropped = 0

    @property
    def pending(self) -> int:
        """Commands scheduled and not finished (running or waiting for a slot)."""
        return len(self._tasks)

    def notify(self, event: AlertEvent, argv: list[str], timeout: float) -> None:
        """Schedule `argv` (placeholders filled) for `event`; returns at once."""
        if not argv:
            return
        if len(self._tasks) >= self.max_queued:
            self.dropped += 1
            self.log.add(
                time.time(), Level.WARNING, SOURCE,
                f"too many notifications waiting ({len(self._tasks)}): "
                f"dropped the command of rule {event.rule} for {event.app}",
                rule=event.rule, app=event.app, event=event.kind,
            )
            return
        values = placeholders(event)
        expanded = [expand(a, values) for a in argv]
        task = asyncio.get_running_loop().create_task(self._run(event, expanded, timeout))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, event: AlertEvent, argv: list[str], timeout: float) -> None:
        async with self._semaphore:
            self.running += 1
            self.peak = max(self.peak, self.running)
            try:
                await self._execute(event, argv, timeout)
            finally:
                self.running -= 1

    async def _execute(self, event: AlertEvent, argv: list[str], timeout: float) -> None:
        data: dict[str, object] = {
            "rule": event.rule, "app": event.app, "event": event.kind, "command": " ".join(argv),
        }
        started = time.monotonic()
        # stderr through a pipe of our own: asyncio's Process.wait() also waits for its pipes,
        # which a background child of the command (`setsid sleep 300 &`) may hold for ever
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=write_fd,
                env=command_environment(event),
                start_new_session=True,
            )
        except OSError as exc:
            pipe.close()
            what = "not found" if isinstance(exc, FileNotFoundError) else "cannot start"
            self.log.add(
                time.time(), Level.ERROR, SOURCE,
                f"notification command {what}: {argv[0]} ({exc.strerror or exc}); "
                f"fix the command of alert rule {event.rule!r}",
                **data, status="not started",
            )
            return
        finally:
            os.close(write_fd)
        self._procs.add(proc)
        head = bytearray()
        reading = asyncio.create_task(self._collect(pipe, head))
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out = True
            _kill_group(proc)
            await proc.wait()
        except asyncio.CancelledError:
            _kill_group(proc)
            await asyncio.shield(proc.wait())
            self.log.add(
                time.time(), Level.WARNING, SOURCE,
                f"notification {os.path.basename(argv[0])} for {event.app} killed at shutdown",
                **data, status="killed",
            )
            raise
        finally:
            self._procs.discard(proc)
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(reading), STDERR_GRACE)
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
        self._report(event, argv, proc.returncode, timed_out, timeout, head,
                     time.monotonic() - started, data)

    async def _collect(self, pipe: BinaryIO, head: bytearray) -> None:
        """Keep the first `stderr_bytes` of the command's stderr (`pipe`, closed on return) and
        drain the rest, until end of file or cancellation."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        try:
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe)
        except BaseException:
            pipe.close()
            raise
        limit = self.settings.stderr_bytes
        try:
            while chunk := await reader.read(65536):
                if len(head) < limit:
                    head += chunk[: limit - len(head)]
        finally:
            transport.close()

    def _report(
        self, event: AlertEvent, argv: list[str], status: int | None, timed_out: bool,
        timeout: float, head: bytearray, duration: float, data: dict[str, object],
    ) -> None:
        stderr = head.decode(errors="replace").strip()
        name = os.path.basename(argv[0])
        if timed_out:
            level, outcome = Level.WARNING, f"killed after the {timeout:g} s timeout"
        elif status == 0:
            level, outcome = Level.INFO, "ok"
        elif status is not None and status < 0:
            level, outcome = Level.WARNING, f"killed by signal {-status}"
        else:
            level, outcome = Level.WARNING, f"failed with exit status {status}"
        message = f"notification {name} for {event.app} ({event.rule}, {event.kind}): {outcome}"
        if stderr and level != Level.INFO:
            message += f": {stderr.splitlines()[0]}"
        self.log.add(
            time.time(), level, SOURCE, message, **data,
            status="timeout" if timed_out else str(status),
            duration=f"{duration:.3f}", stderr=stderr,
        )

    async def close(self, grace: float = 2.0) -> None:
        """Wait up to `grace` seconds for outstanding commands, then kill what is left."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _done, still = await asyncio.wait(tasks, timeout=grace)
        for task in still:
            task.cancel()
        for proc in list(self._procs):
            _kill_group(proc)
        if still:
            await asyncio.gather(*still, return_exceptions=True)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL the command, every descendant still below it (even one that started its own
    session) and what is left of its process group (children it already left behind)."""
    if proc.returncode is not None:
        return
    kill_tree(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
