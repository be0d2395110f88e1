"""Event-driven owner discovery: learn who owns a flow when it starts, not at the next tick.

Conntrack NEW events trigger an immediate, batched socket lookup (one sock_diag dump per batch,
well under a millisecond) and owner resolution; DESTROY events hand the flow's final counters to
the engine so bytes moved after the last poll are not lost. The optional eBPF socket probe
reports the process that sent or received on a socket as it happens, so even 1 ms connections
get their owner. Everything is bounded: a storm of NEW events is batched, capped and paced so
lookups never take more than about half of the event loop; an event overrun (ENOBUFS) is
repaired by one full socket-table pass, never by counting anything twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Protocol

from bwmon.core.attribution.attributor import EndKey, SocketLookup, is_loopback
from bwmon.core.model import (
    ConntrackEntry,
    FlowKey,
    Level,
    ProcKey,
    SocketEntry,
    SourceStatus,
)
from bwmon.core.sources.socket_table import TCP_ESTABLISHED, TCP_LISTEN, TCP_TIME_WAIT, WILDCARDS

# Pending NEW flows kept at most; beyond this the oldest are dropped (the tick still sees them).
MAX_PENDING = 20_000
# A flow whose responder socket is not accepted yet is retried this many times.
MAX_ATTEMPTS = 4
BATCH_DELAY = 0.005
RETRY_DELAY = 0.02
# In a storm, after a batch that took T seconds the next one waits at least T × PACE: lookups
# take at most 1 / (1 + PACE) of the event loop, so ticks and the UI keep their share.
PACE = 1.0
# Processes whose facts were fetched on sight, remembered so a busy one costs one read.
DESCRIBED_MAX = 4096
# A full pass after an overrun runs at most this often (seconds).
RESYNC_INTERVAL = 1.0
# Batches of up to this many ends are looked up socket by socket, bigger ones by a table dump.
EXACT_MAX = 64
# Protocols whose flows have sockets to look up (sock_diag and /proc/net know no others).
SOCKET_PROTOS = frozenset(("tcp", "udp"))
# Batches of more ends than this count as a storm and are paced (see PACE).
STORM = 256


class OwnerSink(Protocol):
    """What discovery feeds: the engine."""

    def remember_owner(self, end: EndKey, owner: ProcKey, netns: int = 0) -> None: ...
    def flow_ended(self, entry: ConntrackEntry) -> None: ...
    def set_source_status(self, status: SourceStatus) -> None: ...


@dataclass(slots=True)
class _Pending:
    entry: ConntrackEntry
    attempts: int = 0
    resolved: int = 0  # bitmask: 1 initiator, 2 responder
    gone: int = 0  # ends whose socket is gone for good: not retried


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
        describe: Callable[[ProcKey], object] | None = None,
        entries: Callable[[], Awaitable[list[SocketEntry]]] | None = None,
        lookup: Callable[[int, EndKey], SocketEntry | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sighted: Callable[[ProcKey, str, int], None] | None = None,
    ) -> None:
        self.sink = sink
        self.log_problem = log_problem
        self._index = index
        self._local = local_addresses
        self._owners = owners
        self._describe = describe
        self._sighted = sighted
        self._entries = entries
        self._lookup = lookup
        self._clock = clock
        self._pending: OrderedDict[FlowKey, _Pending] = OrderedDict()
        self._described: OrderedDict[ProcKey, None] = OrderedDict()
        self._wake = asyncio.Event()
        self._resync_due = False
        self._last_resync = -1e9
        self.stats = {"new": 0, "destroy": 0, "resolved": 0, "dropped": 0, "sightings": 0,
                      "batches": 0, "no_socket": 0, "no_owner": 0, "resyncs": 0}

    # -- event callbacks (called from the listeners' reader tasks) -----------------------------

    def on_new(self, entry: ConntrackEntry) -> None:
        self.stats["new"] += 1
        if entry.proto not in SOCKET_PROTOS:  # ICMP and the like: no socket to look up
            return
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
                    owner: ProcKey, comm: str = "", uid: int = -1, netns: int = 0) -> None:
        """eBPF saw `owner` (whose comm the kernel gave, and the socket's uid) use a socket;
        `netns`: the inode of the other network namespace the socket is in (0: this one)."""
        self.stats["sightings"] += 1
        if self._sighted is not None and comm:
            self._sighted(owner, comm, uid)
        if rport == 0:  # an unconnected (UDP) socket: remember it by its local port
            remote = ""
            if local in ("0.0.0.0", "::"):
                local = ""
        end = EndKey(proto, local, lport, remote, rport)
        if netns:
            self.sink.remember_owner(end, owner, netns)
        else:
            self.sink.remember_owner(end, owner)
        self._describe_now(owner)

    def _describe_now(self, owner: ProcKey) -> None:
        """Read a sighted process's facts at once, while its command line can still be read
        (one that exited already is described by what the sighting said)."""
        if self._describe is None or owner in self._described:
            return
        self._described[owner] = None
        if len(self._described) > DESCRIBED_MAX:
            self._described.popitem(last=False)
        self._describe(owner)

    def on_events_lost(self) -> None:
        """Events were lost (overrun, listener restart): some NEW flows were never seen.
        Schedule a full pass."""
        self._resync_due = True
        self._wake.set()

    # -- the resolver loop --------------------------------------------------------------------

    async def resolve_forever(self) -> None:
        """Batch pending NEW flows: one socket dump, one owner resolution per batch.

        The first socket-table read happens at once, before any event: it pays the one-time
        costs (imports, the address list, a worker thread) that would otherwise delay the first
        batch past the life of its connections.
        """
        await self._index()
        while True:
            await self._wake.wait()
            await asyncio.sleep(BATCH_DELAY)
            self._wake.clear()
            started = self._clock()
            retry = await self.resolve_pending()
            if self._resync_due and started - self._last_resync >= RESYNC_INTERVAL:
                self._resync_due = False
                self._last_resync = started
                await self.resync()
            took = self._clock() - started
            if retry or self._resync_due:
                self._wake.set()
            pace = took * PACE if len(self._pending) > STORM else 0.0
            await asyncio.sleep(max(pace, RETRY_DELAY if retry else 0.0))

    async def resolve_pending(self) -> bool:
        """Resolve what is pending now; returns True when some flows wait for a retry.

        A small batch looks each end up by exact tuple (one netlink round trip each, whatever
        the size of the socket table); a big one dumps the table once. An initiator whose socket
        is gone (closed, or TIME_WAIT with inode 0) is not retried: only a responder's socket
        can still appear (a TCP connection waiting to be accepted).
        """
        if not self._pending:
            return False
        self.stats["batches"] += 1
        batch = list(self._pending.items())
        local = self._local()
        todo = [(p, bit, end) for _key, p in batch for bit, end in local_ends(p.entry, local)
                if not p.resolved & bit]
        socks = self._exact(todo) if len(todo) <= EXACT_MAX else None
        if socks is None:
            index = await self._index()
            socks = [index.find(e.proto, e.local, e.lport, e.remote, e.rport) for _, _, e in todo]
        wanted: list[tuple[_Pending, int, EndKey, int]] = []
        inodes: set[int] = set()
        uids: set[int] = set()
        for (p, bit, end), sock in zip(todo, socks, strict=True):
            if sock is not None and sock.inode:
                wanted.append((p, bit, end, sock.inode))
                inodes.add(sock.inode)
                uids.add(sock.uid)
            else:
                self.stats["no_socket"] += 1
                if bit == 1 or (sock is not None and sock.state == TCP_TIME_WAIT):
                    p.gone |= bit  # a responder may still wait in the accept queue
        owners = await self._owners(inodes, uids) if inodes else {}
        for p, bit, end, inode in wanted:
            owner = owners.get(inode)
            if owner is not None:
                self.sink.remember_owner(end, owner)
                p.resolved |= bit
                self.stats["resolved"] += 1
            else:
                self.stats["no_owner"] += 1
                p.gone |= bit  # its process closed it meanwhile, or cannot be read
        retry = False
        for key, p in batch:
            p.attempts += 1
            done = all((p.resolved | p.gone) & bit for bit, _ in local_ends(p.entry, local))
            if done or p.attempts >= MAX_ATTEMPTS:
                self._pending.pop(key, None)
            else:
                retry = True
        return retry

    def _exact(self, todo: list[tuple[_Pending, int, EndKey]]) -> list[SocketEntry | None] | None:
        """Each end's socket by exact lookup; None when lookups are unavailable (use a dump)."""
        if self._lookup is None:
            return None
        found: list[SocketEntry | None] = []
        try:
            for p, _bit, end in todo:
                found.append(self._lookup(p.entry.family, end))
        except OSError:
            self._lookup = None  # e.g. no sock_diag: the socket table dump copes
            return None
        return found

    async def resync(self) -> int:
        """Remember the owner of every connected socket now open: the full re-read that
        repairs an overrun (flows whose NEW event was lost). Bytes still come only from
        conntrack reads and DESTROY events, so nothing is counted twice. Returns how many."""
        if self._entries is None:
            return 0
        self.stats["resyncs"] += 1
        socks = [s for s in await self._entries() if s.inode and _connected(s)]
        owners = await self._owners({s.inode for s in socks}, {s.uid for s in socks})
        found = 0
        for sock in socks:
            owner = owners.get(sock.inode)
            if owner is not None:
                self.sink.remember_owner(
                    EndKey(sock.proto, sock.local, sock.lport, sock.remote, sock.rport), owner)
                found += 1
        return found


def _connected(sock: SocketEntry) -> bool:
    """A socket with a peer: an established TCP connection or a connected UDP socket."""
    if sock.proto == "tcp":
        return sock.state == TCP_ESTABLISHED
    return sock.state != TCP_LISTEN and not (sock.rport == 0 and sock.remote in WILDCARDS)


async def run_listeners(discovery: Discovery, *, events: bool, ebpf_ring: int | None,
                        conntrack_command: str, all_namespaces: bool = False) -> None:
    """Start the conntrack event listener, and the eBPF sightings reader when the engine loaded
    the socket probe (`ebpf_ring`: its ring buffer's fd; with `all_namespaces` the sightings of
    every network namespace, each other one's marked with its inode); runs until cancelled.
    Unavailable sources are reported once and skipped (the engine reports an eBPF probe it
    could not load)."""
    tasks: list[asyncio.Task[None]] = [asyncio.create_task(discovery.resolve_forever())]
    sink = discovery.sink
    if events:
        from bwmon.core.sources.conntrack_events import ConntrackEvents

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
                discovery.on_events_lost()  # an overrun or a restart: events were missed

            sink.set_source_status(SourceStatus("events", True, "conntrack -E (NEW, DESTROY)"))
            tasks.append(asyncio.create_task(listener.run(on_event, on_problem)))
        else:
            sink.set_source_status(SourceStatus("events", False, reason))
            discovery.log_problem(Level.INFO, "events", f"conntrack events off: {reason}")
    if ebpf_ring is not None:
        from bwmon.core.sources.ebpf import EbpfOwners, Sighting
        from bwmon.core.sources.ebpf_bytes import own_netns

        probe = EbpfOwners(ring_fd=ebpf_ring, all_namespaces=all_namespaces)
        own = own_netns()

        def on_sighting(s: Sighting) -> None:
            discovery.on_sighting(s.proto, s.local, s.lport, s.remote, s.rport, s.key, s.comm,
                                  s.uid, 0 if s.netns == own else s.netns)

        def on_ebpf_problem(message: str) -> None:
            discovery.log_problem(Level.WARNING, "ebpf", message)

        sink.set_source_status(SourceStatus("ebpf", False, "starting: reading the probe"))
        tasks.append(asyncio.create_task(probe.run(on_sighting, on_ebpf_problem)))
        tasks.append(asyncio.create_task(_watch_probe(probe.ready, sink)))
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t



async def _watch_probe(ready: asyncio.Event, sink: OwnerSink) -> None:
    """Say "ebpf" is active only while the sightings are read (the header tells the truth)."""
    while True:
        await ready.wait()
        sink.set_source_status(SourceStatus("ebpf", True, "socket probe on sock_send/recv_length"))
        while ready.is_set():
            await asyncio.sleep(0.5)
        sink.set_source_status(SourceStatus("ebpf", False, "socket probe stopped: restarting"))


def sockdiag_lookup(family: int, end: EndKey) -> SocketEntry | None:
    """One flow end's socket through sock_diag, by exact tuple (raises OSError without it).

    An IPv4 flow may belong to a dual-stack IPv6 socket (a `::` listener's accepted
    connections): those are found under their IPv4-mapped addresses.
    """
    from bwmon.core.sources.sock_diag import lookup_socket

    sock = lookup_socket(end.proto, family, end.local, end.lport, end.remote, end.rport)
    if sock is None and family == 4:
        sock = lookup_socket(end.proto, 6, end.local, end.lport, end.remote, end.rport)
    return sock
