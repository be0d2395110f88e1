"""One network namespace measured: its conntrack table read through a process inside it, its
TCP sockets' own byte counters, its flows attributed through its own socket table, usages
handed to the engine's accounting.

The same steps as the engine's own namespace (FlowTracker, owner cache, attribution; the socket
counters' SocketFlows, SocketCounting and ByteMerge: conntrack's IP bytes where this
namespace's table counts a flow, the socket's payload bytes otherwise), with the namespace's
views: `/proc/PID/net/nf_conntrack` (or `nsenter --net=… conntrack -L` where the kernel has no
such file), sock_diag sockets created inside the namespace (namespaces.enter; the /proc/PID/net
tables without the privilege), `/proc/PID/net` for its addresses. Socket inodes are host-wide,
so owners come from the engine's one process table. An idle namespace (its interfaces' packet
counters did not move) costs one ~10 µs read a tick: no table is read, no socket dumped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bwmon.core.attribution.attributor import Attributor, EndKey, EndUsage, SocketLookup
from bwmon.core.attribution.byte_merge import ByteMerge
from bwmon.core.attribution.flows import FlowTracker
from bwmon.core.attribution.owner_cache import TickPlan
from bwmon.core.attribution.socket_counting import WATCH_BACKOFF, SocketCounting
from bwmon.core.attribution.socket_flows import SocketFlows
from bwmon.core.model import ProcKey, SocketBytes
from bwmon.core.namespaces.crossing import Crossing, Place
from bwmon.core.namespaces.enter import enter
from bwmon.core.namespaces.netns import NetNamespace
from bwmon.core.sources.addresses import read_local_addresses
from bwmon.core.sources.conntrack_read import ConntrackSource, SourceError
from bwmon.core.sources.processes import ProcessTable
from bwmon.core.sources.socket_source import SocketSource
from bwmon.core.sources.socket_table import SocketIndex
from bwmon.core.sources.tcp_counters import TcpCounters

_NO_SOCKETS = SocketIndex(())
ALIVE_TICKS = 10
# Tables shorter than this (~30 flows) are read without a worker thread (most are idle ones).
INLINE_CHARS = 8192
ADDRESS_TICKS = 30  # the namespace's addresses are read again this often (and at first sight)
FULL_READ_TICKS = 10  # an idle namespace's table is still read this often
# The owner watch (between ticks) checks the packet counters of a namespace in which they did
# not move for WATCH_QUIET_ROUNDS rounds only every WATCH_IDLE_ROUNDS rounds; it dumps its
# sockets only when they moved since its last look (a new connection needs packets: a SYN).
WATCH_IDLE_ROUNDS = 4
WATCH_QUIET_ROUNDS = 20


@dataclass(slots=True)
class Measured:
    """What one namespace's tick gives accounting (see Accounting.step_changes)."""

    added: list[EndUsage] = field(default_factory=list)
    closed: list[EndUsage] = field(default_factory=list)
    replaced: list[tuple[EndUsage, EndUsage]] = field(default_factory=list)
    steady: list[tuple[EndUsage, ...]] = field(default_factory=list)


def _own_addresses() -> frozenset[str]:
    """The addresses of the namespace the calling thread is in."""
    return read_local_addresses(Path("/proc/thread-self"))


def _views(ns: NetNamespace, proc_root: Path) -> tuple[Path, tuple[str, ...]]:
    """(procfs root of the namespace's view, argv prefix entering it for the conntrack tool)."""
    root = proc_root / str(ns.pid) if ns.pid is not None else Path(ns.handle)
    return root, ("nsenter", f"--net={ns.handle}")


class NamespaceMeter:
    """Flows of one namespace, tick by tick."""

    def __init__(self, ns: NetNamespace, name: str, *, proc_root: Path,
                 conntrack_command: str, lookback: bool, socket_counters: bool = False,
                 shares: dict[str, int] | None = None) -> None:
        self.ns = ns
        self.name = name
        self.proc_root = proc_root
        root, prefix = _views(ns, proc_root)
        self.conntrack = ConntrackSource(root, conntrack_command, argv_prefix=prefix,
                                         inline_max=INLINE_CHARS)
        self.sockets = self._sockets(ns)
        self.flows = FlowTracker(lookback=lookback)
        self.attributor = Attributor()
        self.error: str | None = None
        self.flows_seen = 0  # entries of the last read
        self._root = root
        self.addresses: frozenset[str] = frozenset()
        self._addresses_read = -ADDRESS_TICKS
        self._plan: TickPlan | None = None
        self.place = Place(name, self.flows, lambda: self.addresses,
                           self.index if self.sockets is not None else None)
        self._activity: bytes | None = None  # /proc/PID/net/dev at the last table read
        self._full_read = -FULL_READ_TICKS
        self._moved = True  # its packet counters moved since the table's last read
        # TCP's own counters, opened inside the namespace once a process is in it (a bind
        # mount alone has no sockets to count)
        self.socket_counters = socket_counters
        self.counters: TcpCounters | None = None
        self.merge = ByteMerge(frozenset({"tcp"}) if socket_counters else frozenset())
        self.counting = SocketCounting(self.merge, shares if shares is not None else {})
        self.lookback = lookback
        self.socket_flows = SocketFlows(lookback=lookback)
        self._samples: Sequence[SocketBytes] | None = None
        # UDP and the other non-TCP sockets: the eBPF byte sums of this namespace's sockets,
        # handed over by the engine each tick (`take_sums`), counted once like TCP's
        self.sum_flows: SocketFlows | None = None
        self._sums: Sequence[SocketBytes] | None = None
        self.ct_counting = False  # its table's last read held byte counters
        self._watch_activity: bytes | None = None  # /proc/PID/net/dev at the watch's last look
        self._watch_moved = 0  # the watch round that last saw them move
        self.tick = 0  # the last tick read

    def _sockets(self, ns: NetNamespace) -> SocketSource | None:
        if ns.pid is None:  # no process in it: no socket has an owner; its flows are routed
            return None
        return SocketSource(self.proc_root / str(ns.pid), netns=ns.handle)

    def follow(self, ns: NetNamespace, name: str) -> None:
        """The namespace's latest scan: a new way in when the process it used exited."""
        self.name = name
        if ns.pid != self.ns.pid or ns.mount != self.ns.mount:
            root, prefix = _views(ns, self.proc_root)
            self.conntrack.retarget(root, prefix)
            self.sockets = self._sockets(ns)
            self._root = root
            self._addresses_read = -ADDRESS_TICKS
            self.place = Place(name, self.flows, lambda: self.addresses,
                               self.index if self.sockets is not None else None)
        self.ns = ns

    def open_usages(self) -> list[EndUsage]:
        """Every usage still counted as an open flow (to close them all when it vanishes)."""
        found = list(self.attributor.cache.usages())
        for flows in (self.socket_flows, self.sum_flows):
            if flows is not None:
                found.extend(st.usage for st in flows.states() if st.usage is not None)
        return found

    def take_sums(self, samples: Sequence[SocketBytes] | None, protos: frozenset[str],
                  tick: int) -> None:
        """This tick's eBPF byte sums of the namespace's sockets (every one in the kernel's map,
        so one missing has closed); None when the source could not be read. From then on its
        conntrack bytes of `protos` merge with them (one flow counted once)."""
        if samples is not None and self.sum_flows is None:
            # after bwmon's first tick, every socket of a namespace new to it is new traffic
            self.sum_flows = SocketFlows(lookback=self.lookback or tick > 1)
        if not protos <= self.merge.protos:
            self.merge.protos = self.merge.protos | protos
        self._sums = samples

    async def close(self) -> None:
        """Release its netlink sockets (it vanished, or bwmon stops)."""
        if self.counters is not None:
            await self.counters.close()

    async def read(self, tick: int, procs: ProcessTable) -> None:
        """Read the table and plan the tick (which flows need an owner); attribution follows
        once every namespace has read its table (see namespaces.crossing)."""
        if tick - self._addresses_read >= ADDRESS_TICKS:
            self._addresses_read = tick
            try:
                if self.ns.pid is not None:
                    self.addresses = await asyncio.to_thread(read_local_addresses, self._root)
                else:  # a bind mount alone has no /proc/PID view: read it from inside
                    self.addresses = await enter(self.ns.handle, _own_addresses)
            except OSError:
                self.addresses = frozenset()
        self.tick = tick
        self._plan = None
        self._samples = None
        if self._idle(tick):
            return
        if self.counters is None and self.socket_counters and self.ns.pid is not None:
            self.counters = TcpCounters(self.ns.handle)
            # after bwmon's first tick, every socket of a namespace new to it is new traffic
            self.socket_flows = SocketFlows(lookback=self.lookback or tick > 1)
        if self.counters is not None and self._moved:  # no packet, no byte, no new socket
            self._samples = await self.counters.read()
            if self.counters.denied:  # not root: its conntrack table alone, as before
                self.counters, self.socket_counters = None, False
            elif self._samples is None:
                self.error = self.counters.status().detail
        try:
            entries = await self.conntrack.read()
        except SourceError as exc:
            self.error = str(exc)
            return
        if self._samples is not None or self.counters is None:
            self.error = None
        self.flows_seen = len(entries)
        self.ct_counting = any(e.orig_bytes is not None for e in entries)
        read = self.flows.read(entries, tick, self.conntrack.change)
        cache = self.attributor.cache
        if tick % ALIVE_TICKS == 0:
            for key in cache.owners():
                if not procs.alive(key):
                    cache.owner_died(key)
        self._plan = cache.plan(read.deltas, read.gone, self.flows.entry, tick, read.steady)

    def _idle(self, tick: int) -> bool:
        """True when no packet went in, out or through the namespace since its table was last
        read (its interfaces' counters in /proc/PID/net/dev did not move, ~10 µs to read,
        where the conntrack file walks the host's whole table, ~0.3 ms even when empty): its
        conntrack counters cannot have moved. Read anyway every FULL_READ_TICKS, so flows that
        time out leave the rows; its sockets only when packets moved (`_moved`)."""
        self._moved = True
        if self.ns.pid is None:
            return False
        try:
            with open(self._root / "net" / "dev", "rb") as f:
                now = f.read()
        except OSError:
            now = None
        self._moved = now is None or now != self._activity
        if not self._moved and tick - self._full_read < FULL_READ_TICKS:
            return True
        self._activity = now
        self._full_read = tick
        return False

    async def index(self) -> SocketLookup:
        """Its socket table; none this tick when the process it is read through has just
        exited (the next scan of namespaces gives the meter another way in, see `follow`)."""
        if self.sockets is None:
            return _NO_SOCKETS
        try:
            return await self.sockets.index()
        except OSError:
            return _NO_SOCKETS

    async def attribute(self, tick: int, procs: ProcessTable, foreign: Crossing | None = None,
                        elsewhere: Mapping[str, ByteMerge] | None = None,
                        sightings: bool = False) -> Measured:
        """The usages of what `read` planned and of its sockets' counters; ends in other
        measured namespaces through `foreign` (and conntrack's bytes of ends that another
        namespace counts from its sockets merged there, `elsewhere`)."""
        out = await self._conntrack_usages(tick, procs, foreign)
        sums, self._sums = self._sums, None
        if self.counters is None and sums is None and not elsewhere and not self.counting.pending:
            return out
        merge = self.merge.conntrack
        merge(out.added, tick, elsewhere)
        merge([new for _, new in out.replaced], tick, elsewhere)
        for steady in out.steady:
            merge(steady, tick, elsewhere)
        if self._samples is not None or sums is not None or self.counting.pending:
            deltas = self.socket_flows.read(self._samples, tick) if self._samples else []
            if sums is not None and self.sum_flows is not None:
                deltas.extend(self.sum_flows.read(sums, tick))
            name = self.name

            def sighted(owner: ProcKey, comm: str, uid: int) -> None:
                procs.sighted(owner, comm, uid, name)

            def remember(end: EndKey, owner: ProcKey) -> None:
                self.attributor.remember(end, owner, tick)

            added, closed, replaced = await self.counting.usages(
                deltas, tick, owners=procs.owners, memory=self.attributor.owner_of,
                remember=remember, ct_counts=self.ct_counting,
                ct_tracks=self.ct_counting or self.flows_seen > 0, sighted=sighted,
                sightings=sightings)
            out.added = [*out.added, *added]
            out.closed = [*out.closed, *closed]
            out.replaced = [*out.replaced, *replaced]
        self.merge.sweep(tick)
        return out

    async def _conntrack_usages(self, tick: int, procs: ProcessTable,
                                foreign: Crossing | None) -> Measured:
        """The usages of the flows its table's read planned."""
        plan = self._plan
        if plan is None:
            return Measured()
        cache = self.attributor.cache
        out = Measured(closed=plan.closed, replaced=plan.replaced, steady=plan.steady)
        if not (plan.probe or plan.lookup):
            return out
        index: SocketLookup = _NO_SOCKETS
        local = self.addresses
        if self.sockets is not None:
            index = await self._index_now(tick)
        if plan.probe:
            cache.probe(plan, index, self.flows.entry)
        if plan.lookup:
            if foreign is not None:
                await foreign.prepare(plan.lookup, tick)
            matches, inodes, uids = self.attributor.match(plan.lookup, index, local, foreign)
            owners: dict[int, ProcKey] = await procs.owners(inodes, uids) if inodes else {}
            found = self.attributor.attribute(matches, owners, tick)
            cache.store(matches, found)
            out.added = found
        return out

    def watch_due(self, rounds: int) -> bool:
        """Whether the owner watch looks at its sockets this round: its packet counters moved
        since the watch's last look (read each round while they moved lately, else every
        WATCH_IDLE_ROUNDS rounds), and its closings were not all too short for the watch."""
        if self.counters is None or self.counters.dumper is None:
            return False
        if rounds - self._watch_moved > WATCH_QUIET_ROUNDS and rounds % WATCH_IDLE_ROUNDS:
            return False
        if self.counting.backing_off() and rounds % WATCH_BACKOFF:
            return False
        try:
            with open(self._root / "net" / "dev", "rb") as f:
                now = f.read()
        except OSError:
            return False
        if now == self._watch_activity:
            return False
        self._watch_activity = now
        self._watch_moved = rounds
        return True

    async def _index_now(self, tick: int) -> SocketLookup:
        """The socket table, shared with the Place: read at most once a tick."""
        await self.place.fetch(tick)
        return self.place.sockets or _NO_SOCKETS
