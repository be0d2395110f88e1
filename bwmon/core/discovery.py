"""Event-driven owner discovery: learn who owns a flow when it starts, not at the next tick.

Conntrack NEW events trigger an immediate, batched socket lookup (one sock_diag dump per batch,
well under a millisecond) and owner resolution; DESTROY events hand the flow's final counters to
the engine so bytes moved after the last poll are not lost. The optional eBPF source reports
the process that sent or received on a socket as it happens, so even 1 ms connections get their
owner. Everything is bounded: a storm of NEW events is batched and capped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from bwmon.core.attribution import EndKey, SocketLookup, is_loopback
from bwmon.core.model import ConntrackEntry, FlowKey, Level, ProcKey, SourceStatus

# Pending NEW flows kept at most; beyond this the oldest are dropped (the tick still sees them).
MAX_PENDING = 20_000
# A flow whose responder socket is not accepted yet is retried this many times.
MAX_ATTEMPTS = 4
BATCH_DELAY = 0.005
RETRY_DELAY = 0.02


class OwnerSink(Protocol):
    """What discovery feeds: the engine."""

    def remember_owner(self, end: EndKey, owner: ProcKey) -> None: ...
    def flow_ended(self, entry: ConntrackEntry) -> None: ...
    def set_source_status(self, status: SourceStatus) -> None: ...


@dataclass(slots=True)
class _Pending:
    entry: ConntrackEntry
    attempts: int = 0
    resolved: int = 0  # bitmask: 1 initiator, 2 responder


def local_ends(entry: ConntrackEntry, local_addresses: Collection[str]) -> list[tuple[int, EndKey]]:
    """The ends of a flow that may be local: (1 initiator | 2 responder, EndKey)."""
    ends = []
    for bit, t in ((1, entry.orig), (2, entry.reply)):
        if t.src in local_addresses or is_loopback(t.src):
            ends.append((bit, EndKey(entry.proto, t.src, t.sport, t.dst, t.dport)))
    return ends


class Discovery:
    """Runs the event listener (and eBPF source) beside the tick loop, feeding `sink`."""

    def __init__(
        self,
        sink: OwnerSink,
        log_problem: Callable[[Level, str, str], None],
        index: Callable[[], Awaitable[SocketLookup]],
        local_addresses: Callable[[], Collection[str]],
        owners: Callable[[set[int], set[int]], Awaitable[dict[int, ProcKey]]],
    ) -> None:
        self.sink = sink
        self.log_problem = log_problem
        self._index = index
        self._local = local_addresses
        self._owners = owners
        self._pending: OrderedDict[FlowKey, _Pending] = OrderedDict()
        self._wake = asyncio.Event()
        self.stats = {"new": 0, "destroy": 0, "resolved": 0, "dropped": 0, "sightings": 0}

    # -- event callbacks (called from the listeners' reader tasks) -----------------------------

    def on_new(self, entry: ConntrackEntry) -> None:
        self.stats["new"] += 1
        key = entry.key
        if key in self._pending:
            return
        if len(self._pending) >= MAX_PENDING:
            self._pending.popitem(last=False)
            self.stats["dropped"] += 1
        self._pending[key] = _Pending(entry)
        self._wake.set()

    def on_destroy(self, entry: ConntrackEntry) -> None:
        self.stats["destroy"] += 1
        self._pending.pop(entry.key, None)
        if entry.has_counters:
            self.sink.flow_ended(entry)

    def on_sighting(self, proto: str, local: str, lport: int, remote: str, rport: int,
                    owner: ProcKey) -> None:
        self.stats["sightings"] += 1
        if rport == 0:  # an unconnected (UDP) socket: remember it by its local port
            remote = ""
            if local in ("0.0.0.0", "::"):
                local = ""
        self.sink.remember_owner(EndKey(proto, local, lport, remote, rport), owner)

    # -- the resolver loop --------------------------------------------------------------------

    async def resolve_forever(self) -> None:
        """Batch pending NEW flows: one socket dump, one owner resolution per batch."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(BATCH_DELAY)
            self._wake.clear()
            retry = await self.resolve_pending()
            if retry:
                await asyncio.sleep(RETRY_DELAY)
                self._wake.set()

    async def resolve_pending(self) -> bool:
        """Resolve what is pending now; returns True when some flows wait for a retry."""
        if not self._pending:
            return False
        batch = list(self._pending.items())
        index = await self._index()
        local = self._local()
        wanted: list[tuple[FlowKey, _Pending, int, EndKey, int]] = []
        inodes: set[int] = set()
        uids: set[int] = set()
        for key, p in batch:
            for bit, end in local_ends(p.entry, local):
                if p.resolved & bit:
                    continue
                sock = index.find(end.proto, end.local, end.lport, end.remote, end.rport)
                if sock is not None and sock.inode:
                    wanted.append((key, p, bit, end, sock.inode))
                    inodes.add(sock.inode)
                    uids.add(sock.uid)
        owners = await self._owners(inodes, uids) if inodes else {}
        for _key, p, bit, end, inode in wanted:
            owner = owners.get(inode)
            if owner is not None:
                self.sink.remember_owner(end, owner)
                p.resolved |= bit
                self.stats["resolved"] += 1
        retry = False
        for key, p in batch:
            p.attempts += 1
            complete = all(p.resolved & bit for bit, _ in local_ends(p.entry, local))
            if complete or p.attempts >= MAX_ATTEMPTS:
                self._pending.pop(key, None)
            else:
                retry = True
        return retry


async def run_listeners(discovery: Discovery, *, events: bool, ebpf: str,
                        conntrack_command: str) -> None:
    """Start the conntrack event listener and the eBPF source as configured; runs until
    cancelled. Unavailable sources are reported once and skipped."""
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(discovery.resolve_forever())]
    sink = discovery.sink
    if events:
        from bwmon.core.ctevents import ConntrackEvents

        listener = ConntrackEvents(conntrack_command)
        reason = listener.available()
        if reason is None:
            def on_event(ev: object) -> None:
                kind = getattr(ev, "kind", "")
                entry: ConntrackEntry = ev.entry  # type: ignore[attr-defined]
                if kind == "NEW":
                    discovery.on_new(entry)
                elif kind == "DESTROY":
                    discovery.on_destroy(entry)

            def on_problem(message: str) -> None:
                discovery.log_problem(Level.WARNING, "events", message)

            sink.set_source_status(SourceStatus("events", True, "conntrack -E (NEW, DESTROY)"))
            tasks.append(asyncio.create_task(listener.run(on_event, on_problem)))
        else:
            sink.set_source_status(SourceStatus("events", False, reason))
            discovery.log_problem(Level.INFO, "events", f"conntrack events off: {reason}")
    if ebpf != "off":
        from bwmon.core.ebpf import EbpfOwners

        probe = EbpfOwners()
        reason = probe.available()
        if reason is None:
            def on_sighting(s: object) -> None:
                discovery.on_sighting(s.proto, s.local, s.lport, s.remote, s.rport,  # type: ignore[attr-defined]
                                      s.key)  # type: ignore[attr-defined]

            def on_ebpf_problem(message: str) -> None:
                discovery.log_problem(Level.WARNING, "ebpf", message)

            sink.set_source_status(SourceStatus("ebpf", True, "bpftrace sock_send/recv_length"))
            tasks.append(asyncio.create_task(probe.run(on_sighting, on_ebpf_problem)))
        else:
            sink.set_source_status(SourceStatus("ebpf", False, reason))
            level = Level.WARNING if ebpf == "on" else Level.INFO
            discovery.log_problem(level, "ebpf", f"eBPF attribution off: {reason}")
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

