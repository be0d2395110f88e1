"""Conntrack events (`conntrack -E`): NEW and DESTROY of every flow as it happens.

A connection that opens and closes between two ticks never shows in a table read; its DESTROY
event still carries its final counters (when accounting is on), so the engine can count it.
The listener runs the conntrack tool as a child process and restarts it if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import shutil
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bwmon.core.capabilities import NET_ADMIN, effective, holds
from bwmon.core.model import ConntrackEntry
from bwmon.core.runtime.process_tree import die_with_parent
from bwmon.core.sources.conntrack_parse import parse_line
from bwmon.core.sources.conntrack_read import TOOL_FIX, tool_argv

__all__ = ["EVENT_KINDS", "ConntrackEvents", "CtEvent", "parse_event_line"]

EVENT_KINDS = frozenset({"NEW", "UPDATE", "DESTROY"})


@dataclass(frozen=True, slots=True)
class CtEvent:
    """One conntrack event: the flow as the kernel reported it, and when (epoch seconds)."""

    kind: str  # "NEW", "UPDATE" or "DESTROY"
    entry: ConntrackEntry
    timestamp: float | None = None


def parse_event_line(line: str) -> CtEvent | None:
    """Parse a `conntrack -E -o extended,id,timestamp` line; None for anything else.

    Shape: `[1700000000.123456]\\t    [NEW] ipv4 2 tcp 6 120 SYN_SENT src=… id=…`; the timestamp
    is optional. DESTROY lines carry the final packets=/bytes= when accounting is on, and a flow
    removed by a program ends in `[USERSPACE] portid=… progname=…` (flag "USERSPACE").
    """
    s = line.strip()
    timestamp: float | None = None
    kind = ""
    for _ in range(2):  # "[timestamp]" then "[KIND]"
        end = s.find("]")
        if not s.startswith("[") or end < 0:
            return None
        head = s[1:end]
        if head.strip() in EVENT_KINDS:
            kind = head.strip()
            break
        try:
            timestamp = float(head)
        except ValueError:
            return None
        s = s[end + 1:].lstrip()
    if not kind:
        return None
    entry = parse_line(s[end + 1:])
    return None if entry is None else CtEvent(kind, entry, timestamp)


class ConntrackEvents:
    """Listens to conntrack events through `conntrack -E`, restarting the tool if it dies.

    `buffer_size` is passed as `-b` (netlink receive buffer, bytes): a larger buffer rides out
    bursts of connections without the kernel dropping events (ENOBUFS). `argv_prefix` runs the
    tool elsewhere, e.g. `("ip", "netns", "exec", NS)`.
    """

    def __init__(
        self,
        command: str | Sequence[str] = "conntrack",
        event_mask: str = "NEW,DESTROY",
        *,
        argv_prefix: Sequence[str] = (),
        buffer_size: int = 8 << 20,
        restart_delay: float = 1.0,
        proc_root: Path = Path("/proc"),
    ) -> None:
        self.command = command
        self.event_mask = event_mask
        self.argv_prefix = tuple(argv_prefix)
        self.buffer_size = buffer_size
        self.restart_delay = restart_delay
        self.proc_root = proc_root
        self.restarts = 0  # how often the tool was started again after it stopped

    def argv(self) -> list[str]:
        """The command line of the listener."""
        args = ["-E", "-e", self.event_mask, "-o", "extended,id,timestamp"]
        if self.buffer_size > 0:
            args[3:3] = ["-b", str(self.buffer_size)]
        return [*tool_argv(self.command, self.argv_prefix), *args]

    def available(self) -> str | None:
        """None when events can be listened to here, else the reason (with its fix)."""
        tool = tool_argv(self.command)
        if not tool or shutil.which(tool[0]) is None:
            return f"the conntrack tool ({shlex.join(tool)}) is missing ({TOOL_FIX})"
        if not holds(NET_ADMIN, effective(self.proc_root)):
            return ("listening to conntrack events needs CAP_NET_ADMIN (run bwmon as root, or "
                    "grant it that capability)")
        if not self.argv_prefix:
            try:
                setting = (self.proc_root / "sys/net/netfilter/nf_conntrack_events").read_text()
            except OSError:
                setting = ""
            if setting.strip() == "0":
                return ("conntrack events are switched off "
                        "(sysctl -w net.netfilter.nf_conntrack_events=1)")
        return None

    async def run(
        self, on_event: Callable[[CtEvent], None], on_problem: Callable[[str], None]
    ) -> None:
        """Call `on_event` for every event until cancelled; `on_problem` for overruns, deaths.

        After an overrun or a restart some events are lost: the engine's next full table read
        still sees every flow that is alive, and it never counts a flow twice.
        """
        delay = self.restart_delay
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                problem = await self._run_once(on_event, on_problem)
            except FileNotFoundError:
                on_problem(f"cannot start {shlex.join(self.argv())}: not found ({TOOL_FIX})")
                return
            except OSError as exc:
                on_problem(f"cannot start {shlex.join(self.argv())}: {exc.strerror}")
                return
            if loop.time() - started > 30:
                delay = self.restart_delay  # it ran fine for a while: restart promptly
            on_problem(f"{problem}; restarting in {delay:g} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            self.restarts += 1

    async def _run_once(
        self, on_event: Callable[[CtEvent], None], on_problem: Callable[[str], None]
    ) -> str:
        """Run the tool until its output ends; returns what went wrong."""
        proc = await asyncio.create_subprocess_exec(
            *self.argv(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, preexec_fn=die_with_parent,
        )
        assert proc.stdout is not None and proc.stderr is not None
        tail: deque[str] = deque(maxlen=4)
        overruns = [0]
        stderr_task = asyncio.create_task(self._watch_stderr(proc.stderr, tail, overruns,
                                                             on_problem))
        try:
            partial = ""
            # read what is there in big chunks: a slow reader makes the tool block on its
            # stdout, stop draining the kernel's buffer, and lose events (ENOBUFS)
            while chunk := await proc.stdout.read(1 << 16):
                lines = (partial + chunk.decode("ascii", errors="replace")).split("\n")
                partial = lines.pop()
                for line in lines:
                    event = parse_event_line(line)
                    if event is not None:
                        on_event(event)
            await proc.wait()
            await stderr_task
        finally:
            if proc.returncode is None:  # cancelled: never leave the tool running
                proc.kill()
                await proc.wait()
            if not stderr_task.done():
                stderr_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stderr_task
        said = " ".join(" ".join(tail).split()) or "no message"
        kind = "overrun: " if overruns[0] else ""
        return f"{kind}conntrack -E stopped (exit {proc.returncode}: {said})"

    @staticmethod
    async def _watch_stderr(
        stream: asyncio.StreamReader, tail: deque[str], overruns: list[int],
        on_problem: Callable[[str], None],
    ) -> None:
        """Report ENOBUFS (the kernel dropped events: the tool says so and goes on)."""
        loop = asyncio.get_running_loop()
        last_report = -1e9
        while raw := await stream.readline():
            line = raw.decode(errors="replace").strip()
            if not line or line.startswith("NOTICE:"):
                continue
            if "ENOBUFS" in line or "No buffer space" in line:
                overruns[0] += 1
                tail.append(line)
                if loop.time() - last_report >= 5:  # one report per burst, not one per line
                    last_report = loop.time()
                    on_problem("overrun: the kernel dropped conntrack events (netlink buffer "
                               "full); connections that ended meanwhile may be missed")
                continue
            if line.startswith(("This message means", "Please, check")):
                continue
            tail.append(line)
