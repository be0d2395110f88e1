"""Discovery in a child process, and the engine's side of it.

The tick runs on the same event loop as everything else: a tick of 100-200 ms (thousands of
tracked flows) would hold back every lookup, and a 100 ms connection is gone by then. So the
engine runs discovery in its own process
(`python -m bwmon.core.attribution.discovery_worker`), on the other
core, and reads what it learnt as JSON lines: the owner is captured while the socket lives,
whatever the tick is doing, and with the process's facts, so an owner that exited at once
still shows its command line. The child ends when its stdin closes (the engine stopped or died).
"""

from __future__ import annotations

if __name__ == "__main__":  # the child process: before asyncio is imported
    from bwmon.core.runtime.startup import prepare

    prepare()

import asyncio
import contextlib
import json
import os
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

from bwmon.core.attribution.attributor import EndKey
from bwmon.core.attribution.discovery import (
    DESCRIBED_MAX,
    Discovery,
    run_listeners,
    sockdiag_lookup,
)
from bwmon.core.model import (
    ConntrackEntry,
    Level,
    ProcessInfo,
    ProcKey,
    SourceStatus,
    Tuple5,
)
from bwmon.core.runtime import heap
from bwmon.core.runtime.process_tree import kill_tree

WORKER_RESTART = (1.0, 30.0)  # first and longest pause before restarting a dead worker
WORKER_BUFFER = 16 << 20  # bytes of reports queued for a busy engine at most
WORKER_EXPIRE = 30.0  # seconds between two passes dropping dead processes' cached facts


_ENTRY_FIELDS = tuple(f.name for f in fields(ConntrackEntry))


def _entry_json(e: ConntrackEntry) -> list[object]:
    """A conntrack entry as a compact list, in field order (tuples as lists, flags sorted)."""
    out: list[object] = []
    for name in _ENTRY_FIELDS:
        v = getattr(e, name)
        if isinstance(v, Tuple5):
            v = [v.src, v.dst, v.sport, v.dport]
        elif isinstance(v, frozenset):
            v = sorted(v)
        out.append(v)
    return out


def _entry_from(values: list[Any]) -> ConntrackEntry:
    d = dict(zip(_ENTRY_FIELDS, values, strict=True))
    return ConntrackEntry(**{**d, "orig": Tuple5(*d["orig"]), "reply": Tuple5(*d["reply"]),
                             "flags": frozenset(d["flags"])})


class _LineSink:
    """The worker's sink: one JSON line per owner learnt (with the process's facts the first
    time), final counters, source status and problem."""

    def __init__(self, describe: Callable[[ProcKey], ProcessInfo | None],
                 out: asyncio.WriteTransport) -> None:
        self._describe = describe
        self._out = out
        self._sent: OrderedDict[ProcKey, None] = OrderedDict()
        self.dropped = 0

    def write(self, obj: object) -> None:
        """Queue a line without blocking: while the engine is busy (a long tick) the pipe may
        be full, and lookups must go on meanwhile. Beyond WORKER_BUFFER bytes, lines are lost."""
        if self._out.get_write_buffer_size() > WORKER_BUFFER:
            self.dropped += 1
            return
        self._out.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def remember_owner(self, end: EndKey, owner: ProcKey, netns: int = 0) -> None:
        info = None
        if owner not in self._sent:
            self._sent[owner] = None
            if len(self._sent) > DESCRIBED_MAX:
                self._sent.popitem(last=False)
            p = self._describe(owner)
            if p is not None:
                info = [p.name, p.cmdline, p.user, p.uid, p.exe_base, p.container, p.unit]
        line = {"o": [end.proto, end.local, end.lport, end.remote, end.rport],
                "p": [owner.pid, owner.start], "i": info}
        if netns:  # an end in another network namespace: that namespace's owner memory
            line["n"] = netns
        self.write(line)

    def flow_ended(self, entry: ConntrackEntry) -> None:
        self.write({"d": _entry_json(entry)})

    def set_source_status(self, status: SourceStatus) -> None:
        self.write({"s": [status.name, status.active, status.detail]})

    def log_problem(self, level: Level, source: str, message: str) -> None:
        self.write({"l": [level.value, source, message]})


async def _worker(proc_root: Path, events: bool, ebpf_ring: int | None,
                  conntrack_command: str, all_namespaces: bool = False) -> None:
    """The child's main: discovery with its own socket and process tables, until stdin ends
    (the engine stopped or died)."""
    from bwmon.core.sources.processes import ProcessTable
    from bwmon.core.sources.socket_source import SocketSource

    loop = asyncio.get_running_loop()
    out, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    sockets = SocketSource(proc_root)
    procs = ProcessTable(proc_root)
    from bwmon.core.namespaces.netns import NamespaceScan
    from bwmon.core.namespaces.placement import Placer

    procs.placer = Placer(NamespaceScan(proc_root))  # containers and units named here too
    sink = _LineSink(procs.info, out)
    discovery = Discovery(sink, sink.log_problem, sockets.index, lambda: sockets.local_addresses,
                          procs.owners, describe=procs.info, entries=sockets.entries,
                          lookup=sockdiag_lookup if sockets.kind == "sock_diag" else None,
                          sighted=procs.sighted)
    listeners = asyncio.create_task(run_listeners(discovery, events=events, ebpf_ring=ebpf_ring,
                                                  conntrack_command=conntrack_command,
                                                  all_namespaces=all_namespaces))

    async def expire() -> None:  # dead processes leave the worker's caches too
        while True:
            await asyncio.sleep(WORKER_EXPIRE)
            procs.expire()
            heap.trim()  # and the pages their lookups used go back to the kernel

    expiry = asyncio.create_task(expire())
    parent = loop.run_in_executor(None, sys.stdin.buffer.read)  # EOF: the parent is gone
    await asyncio.wait((parent, listeners), return_when=asyncio.FIRST_COMPLETED)
    if not parent.done():  # discovery ended by itself (it runs until cancelled)
        await _die(out, listeners.exception())
    for task in (listeners, expiry):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _die(out: asyncio.WriteTransport, exc: BaseException | None) -> None:
    """Discovery failed: exit, so that the engine logs why and restarts the worker, instead of
    living on with no listener, sending no owner while the engine waits for sightings (a
    failure this way went unseen: short connections' bytes went to `(unattributed)`). The
    reports queued so far go out first."""
    for _ in range(100):
        if not out.get_write_buffer_size():
            break
        await asyncio.sleep(0.01)
    why = f"{type(exc).__name__}: {exc}" if exc is not None else "its listeners stopped"
    sys.stderr.write(f"discovery failed: {why}\n")
    sys.stderr.flush()
    os._exit(1)  # the stdin reader's thread would keep a normal exit waiting for the parent


class RemoteSink(Protocol):
    """What the engine offers the worker's reports to."""

    def remember_owner(self, end: EndKey, owner: ProcKey,
                       info: ProcessInfo | None = None, netns: int = 0) -> None: ...
    def flow_ended(self, entry: ConntrackEntry) -> None: ...
    def set_source_status(self, status: SourceStatus) -> None: ...


# Owners reported, one ProcKey object each: owner memory holds an entry per end (tens of
# thousands under churn) but few distinct owners. Cleared when it exceeds this many.
OWNERS_MAX = 4096
_owners: dict[tuple[int, int], ProcKey] = {}


def _owner(pid: int, start: int) -> ProcKey:
    """The one ProcKey of a reported owner (a new one per report cost ~100 bytes an end)."""
    key = _owners.get((pid, start))
    if key is None:
        if len(_owners) >= OWNERS_MAX:
            _owners.clear()
        key = _owners[(pid, start)] = ProcKey(pid, start)
    return key


def _info(owner: ProcKey, fields: list[Any]) -> ProcessInfo:
    """A process's facts from a report, its strings interned: churn brings many processes of
    one program (same name, user, often the same command line)."""
    name, cmdline, user, uid, exe_base, *place = fields
    container, unit = [*place, "", ""][:2]
    return ProcessInfo(owner, sys.intern(name), sys.intern(cmdline), sys.intern(user), uid,
                       sys.intern(exe_base), sys.intern(container), sys.intern(unit))


def _dispatch(line: bytes, sink: RemoteSink,
              log_problem: Callable[[Level, str, str], None]) -> None:
    try:
        msg = json.loads(line)
        if "o" in msg:
            owner = _owner(*msg["p"])
            info = None if msg["i"] is None else _info(owner, msg["i"])
            proto, local, lport, remote, rport = msg["o"]
            # interned: owner memory holds tens of thousands of these under churn
            end = EndKey(sys.intern(proto), sys.intern(local), lport, sys.intern(remote), rport)
            if "n" in msg:
                sink.remember_owner(end, owner, info, int(msg["n"]))
            else:
                sink.remember_owner(end, owner, info)
        elif "d" in msg:
            sink.flow_ended(_entry_from(msg["d"]))
        elif "s" in msg:
            sink.set_source_status(SourceStatus(*msg["s"]))
        elif "l" in msg:
            log_problem(Level(msg["l"][0]), msg["l"][1], msg["l"][2])
    except (ValueError, TypeError, KeyError) as exc:
        log_problem(Level.WARNING, "discovery", f"unreadable report from the worker: {exc}")


async def run_worker(sink: RemoteSink, log_problem: Callable[[Level, str, str], None], *,
                     proc_root: Path, events: bool, ebpf_ring: int | None,
                     conntrack_command: str, all_namespaces: bool = False) -> None:
    """Run discovery in a child process and feed its reports to `sink` until cancelled;
    a worker that dies is restarted after a pause (doubling up to 30 s). `ebpf_ring`: the fd of
    the socket probe's sightings ring (loaded by the engine), inherited by the worker;
    `all_namespaces`: sightings of every network namespace (bwmon measures the others too)."""
    argv = [sys.executable, "-m", "bwmon.core.attribution.discovery_worker", str(proc_root),
            "1" if events else "0", "-" if ebpf_ring is None else str(ebpf_ring),
            conntrack_command, "all" if all_namespaces else "own"]
    fds = () if ebpf_ring is None else (ebpf_ring,)
    delay = WORKER_RESTART[0]
    while True:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, pass_fds=fds)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            pending = b""
            while chunk := await proc.stdout.read(1 << 16):
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    _dispatch(line, sink, log_problem)
            err = (await proc.stderr.read()).decode(errors="replace").strip().splitlines()
            await proc.wait()
        finally:
            if proc.returncode is None:  # cancelled: close its stdin, then make sure
                if proc.stdin is not None:
                    proc.stdin.close()
                try:
                    await asyncio.wait_for(proc.wait(), 3.0)
                except TimeoutError:  # with its conntrack -E
                    kill_tree(proc.pid)
                    await proc.wait()
        said = err[-1] if err else "no message"
        log_problem(Level.WARNING, "discovery", f"discovery worker stopped (exit "
                    f"{proc.returncode}: {said}); restarting in {delay:g} s")
        for name in ("events", "ebpf"):
            sink.set_source_status(SourceStatus(name, False, "restarting"))
        await asyncio.sleep(delay)
        delay = min(delay * 2, WORKER_RESTART[1])


if __name__ == "__main__":
    _root, _events, _ring, _command = sys.argv[1:5]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_worker(Path(_root), _events == "1", None if _ring == "-" else int(_ring),
                            _command, sys.argv[5:6] == ["all"]))
