"""The engine: one tick loop that reads the sources, runs the pure steps, publishes snapshots.

Ticks never overlap: the next one starts `interval` after the previous one started, or at once
if it ran late, but never two at a time. Rates divide by the time that really elapsed between
two table reads. The only clock reads in the core are here.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from bwmon.core.accounting import Accounting
from bwmon.core.attribution.attributor import Attributor, EndKey, EndUsage, SocketLookup
from bwmon.core.attribution.byte_merge import ByteMerge
from bwmon.core.attribution.flows import FlowDelta, FlowTracker, Steady
from bwmon.core.attribution.socket_counting import WATCH_BACKOFF, SocketCounting
from bwmon.core.attribution.socket_flows import SocketDelta, SocketFlows
from bwmon.core.checkup import Checkup
from bwmon.core.config.settings import GroupSettings, Settings
from bwmon.core.errors import UserError
from bwmon.core.feed import Publisher
from bwmon.core.grouping import Grouper, MonitorFilters, ProcessFilter
from bwmon.core.model import (
    ConntrackEntry,
    Finding,
    FlowKey,
    Level,
    PipeCounters,
    ProcessInfo,
    ProcKey,
    Snapshot,
    SocketBytes,
    SourceStatus,
)
from bwmon.core.runtime.gcpause import collection_deferred
from bwmon.core.runtime.pacing import TickPacer
from bwmon.core.sources.socket_source import SocketSource

if TYPE_CHECKING:
    from bwmon.core.namespaces.crossing import Crossing
    from bwmon.core.namespaces.watch import NamespaceWatch
    from bwmon.core.pipes.supervisor import PipeSupervisor
    from bwmon.core.sources.bpf.loader import LoadedProbe
    from bwmon.core.sources.byte_source import SocketByteSource
    from bwmon.core.store.recorder import Recorder
from bwmon.core.sources.socket_table import SocketIndex

# Exited processes' rows and cached facts are dropped this often (in ticks).
EXPIRE_TICKS = 30
# Owners of cached flows are checked for being alive this often (in ticks).
ALIVE_TICKS = 10
# Ticks at the start whose cost says nothing about the steady state (adaptive polling).
STARTUP_TICKS = 2
# Flows looked up between two returns to the event loop (bwmon-tui draws on the same loop).
LOOKUP_CHUNK = 5000
# New TCP sockets are looked for every general.socket_watch seconds, so the owner of a
# connection shorter than a tick is found while it lives; spaced out so that the dumps cost at
# most WATCH_SHARE of a CPU (a dump walks the kernel's whole TCP hash: ~1.5 ms here, even empty).
WATCH_SHARE = 0.05
# With socket counters, a conntrack table that counts nothing is read this often (seconds),
# and one whose bytes the sockets see too this often (its IP-level bytes correct theirs).
CONNTRACK_IDLE_SECONDS = 2.0
CONNTRACK_SOCKETS_SECONDS = 5.0
# Ticks the table is read every tick after it counted bytes no socket source sees.
CONNTRACK_ONLY_TICKS = 10
# Flows of protocols without sockets (icmp, sctp, ...) are matched against no socket at all.
_NO_SOCKETS = SocketIndex(())


class Engine(Publisher):
    """Owns the sources and the per-tick state; a SnapshotFeed for every consumer."""

    def __init__(
        self,
        settings: Settings,
        *,
        argv_prefix: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        g = settings.general
        super().__init__(
            history_capacity=max(10, int(g.history_seconds / g.interval)),
            log_capacity=settings.tui.log_lines,
        )
        from bwmon.core.sources.conntrack_read import ConntrackSource
        from bwmon.core.sources.processes import ProcessTable

        self.settings = settings
        self.argv_prefix = tuple(argv_prefix)
        self._clock = clock
        self._wall = wall
        self.conntrack = ConntrackSource(g.proc_root, g.conntrack_command,
                                         argv_prefix=self.argv_prefix)
        self.sockets = SocketSource(g.proc_root)
        self.procs = ProcessTable(g.proc_root)
        self.flows = FlowTracker(lookback=g.lookback)
        self.attributor = Attributor()
        from bwmon.core.namespaces.placement import read_placement

        self.grouper = Grouper(settings.groups, auto_group=g.auto_group,
                               cmdline_names=g.cmdline_names, group_by=g.group_by,
                               own_unit=read_placement(g.proc_root, "self").unit)
        self.accounting = Accounting(self.grouper, self._filters(g.include, g.exclude),
                                     ignore_local=self._ignore_local(), linger=g.row_linger)
        self.pipes = self._make_pipes()
        self.tick_count = 0
        self._seq = 0
        self._last_read: float | None = None
        self._pending_destroy: list[ConntrackEntry] = []
        self._stop = asyncio.Event()
        self._source_error: str | None = None
        self.findings: tuple[Finding, ...] = ()
        self.checkup = Checkup(g.proc_root, g.conntrack_command, self.log, wall)
        self._extra_sources: dict[str, SourceStatus] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.pacer = TickPacer(g.interval, g.cpu_budget, g.max_interval)
        self._table_size = 0  # entries of the last conntrack read
        self.socket_sources: list[SocketByteSource] = []
        self.recorder: Recorder | None = None  # the history store's writer, when one runs
        self._socket_flows: list[SocketFlows] = []
        self._everywhere: set[int] = set()  # socket sources reporting every namespace's sockets
        # this tick's sums of other namespaces' sockets, by namespace inode (see take_sums)
        self._elsewhere: list[tuple[frozenset[str], dict[int, list[SocketBytes]] | None]] = []
        self.merge = ByteMerge()
        self._ct_read_at: float | None = None  # clock of the last conntrack table read
        self._ct_read = True  # this tick read the table
        self._ct_counting = True  # its last read held byte counters
        self._ct_only_tick = 0  # last tick conntrack counted (or saw start) what no socket sees
        self.shares: dict[str, int] = {}  # bytes counted per byte source, each flow once
        self.counting = SocketCounting(self.merge, self.shares)  # this namespace's sockets
        self.namespaces = self._make_namespaces()

    def _make_namespaces(self) -> NamespaceWatch | None:
        """The other namespaces' watch when the scope asks for them; the process table learns
        containers and units either way."""
        from bwmon.core.namespaces.netns import NamespaceScan
        from bwmon.core.namespaces.placement import Placer
        from bwmon.core.namespaces.watch import NamespaceWatch, measures_all

        g, ns = self.settings.general, self.settings.namespaces
        if not measures_all(ns.scope, g.proc_root):
            self.procs.placer = Placer(NamespaceScan(g.proc_root))
            return None
        from pathlib import Path

        from bwmon.core.namespaces.crossing import Place

        counters = g.socket_counters and g.proc_root == Path("/proc")
        watch = NamespaceWatch(proc_root=g.proc_root, conntrack_command=g.conntrack_command,
                               lookback=g.lookback, include=ns.include, exclude=ns.exclude,
                               socket_counters=counters, shares=self.shares)
        self.procs.placer = watch.placer
        self._own_place = Place("host", self.flows, lambda: self.sockets.local_addresses,
                                self.sockets.index)
        watch.set_own(self._own_place)
        return watch

    # -- configuration at run time -------------------------------------------------------------

    def _filters(self, include: Sequence[str], exclude: Sequence[str]) -> MonitorFilters:
        monitors = [ProcessFilter(m.include, m.exclude)
                    for m in self.settings.monitors if m.type == "conntrack"]
        return MonitorFilters(ProcessFilter(include, exclude), monitors)

    def _ignore_local(self) -> bool:
        ct = [m for m in self.settings.monitors if m.type == "conntrack"]
        return self.settings.general.ignore_local or (bool(ct) and all(m.ignore_local for m in ct))

    def _make_pipes(self) -> PipeSupervisor | None:
        if not self.settings.pipes:
            return None
        from bwmon.core.pipes.supervisor import PipeSupervisor

        return PipeSupervisor(self.settings.pipes, self.log)

    def set_groups(self, groups: list[GroupSettings]) -> None:
        self.settings.groups = groups
        g = self.settings.general
        if groups and "groups" not in g.group_by:  # as the group editor writes the file
            g.group_by = ["groups", *g.group_by]
            self.grouper.set_group_by(g.group_by)
        self.grouper.set_groups(self.settings.groups)
        self.history.regroup(self.accounting.regroup())

    def set_auto_group(self, on: bool, cmdline_names: bool | None = None) -> None:
        self.settings.general.auto_group = on
        if cmdline_names is not None:
            self.settings.general.cmdline_names = cmdline_names
        self.grouper.set_auto_group(on, cmdline_names)
        self.history.regroup(self.accounting.regroup())

    def set_filters(self, include: list[str], exclude: list[str]) -> None:
        self.settings.general.include = include
        self.settings.general.exclude = exclude
        self.history.regroup(self.accounting.set_filter(self._filters(include, exclude)))

    def set_process_view(self, on: bool) -> None:
        """Snapshots always carry per-process rows; kept for controllers that toggle views."""

    def running_processes(self) -> list[ProcessInfo]:
        return list(self.procs.running())

    def set_source_status(self, status: SourceStatus) -> None:
        """Let add-on sources (events, eBPF) say whether they are active."""
        self._extra_sources[status.name] = status

    def remember_owner(self, end: EndKey, owner: ProcKey, info: ProcessInfo | None = None,
                       netns: int = 0) -> None:
        """An owner learnt by discovery; `info` (its facts, read as it was seen) keeps a process
        that exited before the tick describable. `netns`: the end is in that other namespace
        (an eBPF sighting there): its meter's owner memory learns it, and the process is named by
        that namespace, as the engine names it (the worker knows no bind mount's name)."""
        if netns:
            if self.namespaces is not None:
                info = self.namespaces.remember_owner(netns, end, owner, info)
            if info is not None:
                self.procs.learn(info)
            return
        if info is not None:
            self.procs.learn(info)
        self.attributor.remember(end, owner, self.tick_count)
        if self.socket_sources and end.proto not in self.merge.protos:
            self._ct_only_tick = self.tick_count  # a flow only conntrack counts started

    def add_socket_source(self, source: SocketByteSource, *, everywhere: bool = False) -> None:
        """Plug in a per-socket byte source (eBPF sums per socket, tcp_info, ...) before `run`.

        Each tick reads it once, beside the conntrack table; its sockets' bytes are counted
        where conntrack does not count the flow (see bwmon.core.sources.byte_source for what
        `read()` must return). The engine closes it when the run ends. `everywhere`: it reports
        the sockets of every namespace (SocketBytes.netns); those of the other measured
        namespaces are counted by their meters, the rest left out.
        """
        if everywhere:
            self._everywhere.add(len(self.socket_sources))
        self.socket_sources.append(source)
        self._socket_flows.append(SocketFlows(lookback=self.settings.general.lookback))
        self.merge.protos = self.merge.protos | source.protos

    def flow_ended(self, entry: ConntrackEntry) -> None:
        """A DESTROY event's final counters, accounted at the next tick."""
        self._pending_destroy.append(entry)

    # -- the loop ------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        from bwmon.core.doctor import check_procfs

        procfs = check_procfs(self.settings.general.proc_root)
        if not procfs.ok:  # a misconfiguration, not a kernel state: stop with one line
            raise UserError(f"{procfs.message}; {procfs.fix}")
        if self.pipes is not None:
            await self.pipes.start()
        # the probe first: a socket that closes between the counters' first read and the first
        # tick then has its sighting, so its bytes find their process
        probe = await self._load_ebpf()
        self._open_socket_counters()
        ring = None
        if probe is not None:
            from bwmon.core.sources.ebpf_bytes import EbpfBytes

            # after TCP's counters: they measure TCP; every namespace's sockets when bwmon
            # measures the others too (each namespace's own go to its meter)
            everywhere = self.namespaces is not None
            self.add_socket_source(EbpfBytes(probe, proc_root=self.settings.general.proc_root,
                                             all_namespaces=everywhere),
                                   everywhere=everywhere)
            ring = probe.rings
        await self.check_prerequisites()
        g = self.settings.general
        if g.events or ring is not None:
            self._tasks.append(asyncio.create_task(self._discover(ring)))
        self._tasks.append(asyncio.create_task(self.checkup.run_forever(self._checks_changed)))
        if g.socket_watch > 0 and any("tcp" in s.protos for s in self.socket_sources):
            self._tasks.append(asyncio.create_task(self._watch_sockets()))
        try:
            while not self._stop.is_set():
                started = self._clock()
                cpu = time.process_time()
                await self.tick()
                spacing = self._pace(time.process_time() - cpu)
                delay = max(0.0, started + spacing - self._clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self.pipes is not None:
                await self.pipes.stop()
            for source in self.socket_sources:
                with contextlib.suppress(Exception):
                    await source.close()
            if self.namespaces is not None:
                await self.namespaces.close()

    def _open_socket_counters(self) -> None:
        """TCP's own counters (general.socket_counters), for the namespace bwmon runs in: only
        with the real /proc (a fixture tree describes no kernel to ask)."""
        from pathlib import Path

        g = self.settings.general
        if not g.socket_counters or g.proc_root != Path("/proc"):
            return
        if any("tcp" in s.protos for s in self.socket_sources):
            return
        from bwmon.core.sources.tcp_counters import TcpCounters

        self.add_socket_source(TcpCounters())

    async def _watch_sockets(self) -> None:
        """Owners of new TCP sockets, looked for between ticks: a connection of 100 ms is
        usually born and gone between two ticks, and once closed its socket names no process
        (inode 0). A cheap dump (no tcp_info) every general.socket_watch seconds, in bwmon's
        namespace and in the other namespaces with traffic (namespaces.watch), spaced out so
        the dumps cost at most WATCH_SHARE of a CPU, and the fd scan of the processes whose
        descriptors changed when a new socket shows."""
        from bwmon.core.sources.sock_diag import dump_tcp_inodes

        def dump() -> tuple[dict[int, tuple[int, bytes]], float]:
            started = time.thread_time()
            return dump_tcp_inodes(), time.thread_time() - started

        dev = self.settings.general.proc_root / "self" / "net" / "dev"
        seen: bytes | None = None  # its interfaces' counters at the last look
        rounds = 0
        while True:
            rounds += 1
            cost = 0.0
            try:
                with open(dev, "rb") as f:
                    moved = seen != (seen := f.read())
            except OSError:
                moved = True
            # no packet moved here since the last look: no new connection to look for
            if moved and (not self.counting.backing_off() or rounds % WATCH_BACKOFF == 0):
                try:
                    now, cost = await asyncio.to_thread(dump)  # cost: the dump's own CPU time
                except OSError:
                    return  # the tick's own dump reports the problem
                await self.counting.watch(now, self.procs.owners, self.remember_owner)
            if self.namespaces is not None:
                cost += await self.namespaces.watch_sockets(rounds, self.procs)
            await asyncio.sleep(max(self.settings.general.socket_watch, cost / WATCH_SHARE))

    def _pace(self, cpu_seconds: float) -> float:
        """The spacing before the next tick (adaptive polling, runtime.pacing); says so in
        the log when ticks start or stop being spaced out."""
        g = self.settings.general
        pacer = self.pacer
        pacer.interval, pacer.budget, pacer.max_interval = g.interval, g.cpu_budget, g.max_interval
        if self.tick_count <= STARTUP_TICKS:  # the first read looks every flow up: not typical
            return g.interval
        was = pacer.stretched
        events = self._extra_sources.get("events")
        sockets = bool(self.socket_sources)
        if sockets and not self._ct_read:
            return g.interval  # only ticks that read the table say what reading it costs
        # with socket counters the rates come from the sockets and closing TCP sockets report
        # their final counters: the table's reads, not the ticks, are spaced out
        spacing = pacer.observe(cpu_seconds, sockets or (events is not None and events.active),
                                self._table_size)
        if sockets:
            spacing = g.interval
        if pacer.stretched != was:
            message = (f"conntrack table {pacer.describe()}" if pacer.stretched
                       else f"conntrack table read every {g.interval:g} s again")
            self.log.add(self._wall(), Level.INFO, "conntrack", message)
        return spacing

    async def _load_ebpf(self) -> LoadedProbe | None:
        """Load the eBPF socket probe unless `general.ebpf` is off: its byte sums become a
        socket source read each tick, its sightings ring goes to the discovery worker. Where it
        cannot load, the reason goes to the log and the source list."""
        g = self.settings.general
        if g.ebpf == "off":
            return None
        from bwmon.core.sources.ebpf import EbpfOwners, open_probe

        owners = EbpfOwners(proc_root=g.proc_root)
        probe, reason = await asyncio.to_thread(open_probe, owners)  # the verifier takes ~0.1 s
        if probe is None:
            self.set_source_status(SourceStatus("ebpf", False, reason or ""))
            level = Level.WARNING if g.ebpf == "on" else Level.INFO
            self.log.add(self._wall(), level, "ebpf", f"eBPF attribution off: {reason}")
            return None
        return probe

    async def _discover(self, ebpf_ring: int | None) -> None:
        """Event-driven owner discovery (conntrack events, eBPF sightings) in a child process,
        so a long tick cannot hold back the lookups of connections that live only
        milliseconds."""
        from bwmon.core.attribution.discovery_worker import run_worker

        g = self.settings.general

        def problem(level: Level, source: str, message: str) -> None:
            self.log.add(self._wall(), level, source, message)

        await run_worker(self, problem, proc_root=g.proc_root, events=g.events,
                         ebpf_ring=ebpf_ring, conntrack_command=g.conntrack_command,
                         all_namespaces=self.namespaces is not None)

    async def tick(self) -> Snapshot:
        """Read every source once, account, publish and return the snapshot."""
        with collection_deferred():
            return await self._tick()

    async def _tick(self) -> Snapshot:
        self.tick_count += 1
        tick = self.tick_count
        entries = None
        self._ct_read = self._conntrack_due()
        if self._ct_read:
            self._ct_read_at = self._clock()
            entries = await self._read_conntrack()
        samples = await self._read_sockets()
        now = self._clock()
        elapsed = 0.0 if self._last_read is None else now - self._last_read
        self._last_read = now

        destroyed, self._pending_destroy = self._pending_destroy, []
        changed: list[FlowDelta] = self.flows.finish(destroyed, tick)
        gone: list[FlowKey] = []
        steady: list[Steady] = []
        if entries is not None:
            self._table_size = len(entries)
            if self.socket_sources:
                self._ct_counting = any(e.orig_bytes is not None for e in entries)
            read = self.flows.read(entries, tick, self.conntrack.change)
            changed.extend(read.deltas)
            gone, steady = read.gone, read.steady
        cache = self.attributor.cache
        if tick % ALIVE_TICKS == 0:
            self._check_owners()
        foreign: Crossing | None = None
        gone_spaces: list[EndUsage] = []
        if self.namespaces is not None:  # every table read before any flow is attributed
            gone_spaces = await self.namespaces.read(tick, self.procs)
            for protos, sums in self._elsewhere:
                self.namespaces.take_sums(sums, protos, tick)
            foreign = self.namespaces.crossing(self._own_place)
        plan = cache.plan(changed, gone, self.flows.entry, tick, steady)
        usages: list[EndUsage] = []
        index: SocketLookup = _NO_SOCKETS
        if plan.probe:  # unowned flows due a retry: only those with a new socket are looked up
            index = await self.sockets.index()
            cache.probe(plan, index, self.flows.entry)
        if plan.lookup:  # only new flows and flows whose owner is unsure need the socket table
            if index is _NO_SOCKETS and any(d.entry.proto in ("tcp", "udp") for d in plan.lookup):
                index = await self.sockets.index()
            for start in range(0, len(plan.lookup), LOOKUP_CHUNK):
                if start:  # a long lookup (the first tick of a huge table): let a screen
                    await asyncio.sleep(0)  # sharing the event loop draw and take keys
                chunk = plan.lookup[start:start + LOOKUP_CHUNK]
                if foreign is not None:
                    await foreign.prepare(chunk, tick)
                matches, inodes, uids = self.attributor.match(
                    chunk, index, self.sockets.local_addresses, foreign
                )
                owners = await self.procs.owners(inodes, uids) if inodes else {}
                found = self.attributor.attribute(matches, owners, tick)
                cache.store(matches, found)
                if elapsed == 0.0 and len(plan.lookup) > LOOKUP_CHUNK:
                    # the first tick of a huge table: account chunk by chunk too, so the
                    # screen gets turns (no rates yet, so nothing of this tick is lost)
                    self._merge_conntrack(found, tick)
                    self.accounting.step_changes(found, (), (), self.procs.info, now, 0.0)
                else:
                    usages.extend(found)
            if len(plan.lookup) > LOOKUP_CHUNK:
                await asyncio.sleep(0)
        # (the owner memory of flows the cache keeps is refreshed from the cache at each of
        # its sweeps, before it expires anything: not here, for ~5,000 flows a tick at 50k)
        pipes: list[PipeCounters] = (
            self.pipes.counters() if self.pipes is not None else []
        )
        closed: list[EndUsage] = plan.closed
        replaced = plan.replaced
        kept = plan.steady
        if self.socket_sources:
            from bwmon.core.model import Unit

            self.accounting.default_unit = Unit.PAYLOAD if self.checkup.blocking else Unit.IP
            self._merge_conntrack(usages, tick)
            self._merge_conntrack((new for _, new in replaced), tick)
            for steady_usages in plan.steady:
                self._merge_conntrack(steady_usages, tick)
            s_added, s_closed, s_replaced = await self._socket_usages(samples, tick)
            usages.extend(s_added)
            closed = [*closed, *s_closed]
            replaced = [*replaced, *s_replaced]
            self.merge.sweep(tick)
        if self.namespaces is not None:  # the other namespaces' flows, into the same rows
            ebpf = self._extra_sources.get("ebpf")
            extra = await self.namespaces.attribute(tick, self.procs,
                                                    ebpf is not None and ebpf.active)
            usages.extend(extra.added)
            closed = [*closed, *gone_spaces, *extra.closed]
            replaced = [*replaced, *extra.replaced]
            kept = [*kept, *extra.steady]
        rows = self.accounting.step_changes(
            usages, closed, pipes, self.procs.info, now, elapsed, replaced, kept,
        )
        self._count_shares(rows.host.total_in + rows.host.total_out)
        if tick % EXPIRE_TICKS == 0:
            self.accounting.forget_exited(now, self.procs.alive)
            self.procs.expire(self.accounting.live_processes())
        wall = self._wall()
        self._seq += 1
        sources = self._sources(pipes)
        snapshot = Snapshot(
            seq=self._seq,
            time=wall,
            elapsed=elapsed,
            apps=rows.apps,
            processes=rows.processes,
            host=rows.host,
            filtered=rows.filtered,
            sources=sources,
            findings=self.findings,
            shares=tuple(sorted((k, v) for k, v in self.shares.items() if v)),
            unmeasured=self._unmeasured(sources),
            events=self.log.tail(50),
            checks=self.checkup.checks,
            regrouped=tuple((old, tuple(to.items()))
                            for old, to in self.accounting.take_moves().items()),
            namespaces=self.namespaces.states() if self.namespaces is not None else (),
        )
        self.history.record(wall, rows.apps)
        self.publish(snapshot)
        return snapshot

    def _conntrack_due(self) -> bool:
        """Whether this tick reads the conntrack table. Without socket counters: every tick
        (the tick itself is spaced out, see `_pace`). With them the rates come from the
        sockets, so the table, whose read costs in proportion to all its flows, is read only
        as often as its extra information needs: every tick (within the CPU budget: the
        pacer's spacing) while it counts bytes no socket source sees (UDP without eBPF,
        forwarded flows: their rates come from it) or their flows start (events), else every
        CONNTRACK_SOCKETS_SECONDS (IP-level bytes corrected), and while it counts nothing at
        most every CONNTRACK_IDLE_SECONDS (to notice that it starts to)."""
        if not self.socket_sources or self._ct_read_at is None:
            return True
        spacing = self.pacer.spacing
        if not self._ct_counting and self.checkup.blocking:
            spacing = max(spacing, CONNTRACK_IDLE_SECONDS)
        elif self.tick_count - self._ct_only_tick > CONNTRACK_ONLY_TICKS:
            spacing = max(spacing, CONNTRACK_SOCKETS_SECONDS)
        # a tick due a little early still reads (ticks start `interval` apart, not exactly)
        return self._clock() - self._ct_read_at >= spacing - self.settings.general.interval / 2

    def _merge_conntrack(self, usages: Iterable[EndUsage], tick: int) -> None:
        """Conntrack's share of ends a socket source measures too (attribution.byte_merge);
        notes when conntrack counted bytes no socket source sees."""
        listed = usages if isinstance(usages, (list, tuple)) else list(usages)
        protos = self.merge.protos
        if self._ct_only_tick != tick:
            for u in listed:
                if (u.d_in or u.d_out) and (u.end is None or u.end.proto not in protos):
                    self._ct_only_tick = tick
                    break
        self.merge.conntrack(listed, tick,
                             self.namespaces.merges if self.namespaces is not None else None)

    async def _read_sockets(self) -> list[tuple[int, Sequence[SocketBytes]]]:
        """Every per-socket byte source's read, concurrently; (index, samples) of those that
        answered. A protocol measured by an earlier source is not taken from a later one."""
        if not self.socket_sources:
            return []
        reads = await asyncio.gather(*(s.read() for s in self.socket_sources),
                                     return_exceptions=True)
        out: list[tuple[int, Sequence[SocketBytes]]] = []
        covered: frozenset[str] = frozenset()
        self._elsewhere = []
        for i, (source, got) in enumerate(zip(self.socket_sources, reads, strict=True)):
            protos = source.protos - covered
            covered |= source.protos
            if isinstance(got, BaseException) or got is None:
                if isinstance(got, BaseException):
                    self.log.add(self._wall(), Level.ERROR, source.status().name, str(got))
                if i in self._everywhere:
                    self._elsewhere.append((protos, None))
                continue
            if protos != source.protos:
                got = [s for s in got if s.proto in protos]
            if i in self._everywhere:
                got = self._split_namespaces(got, protos)
            out.append((i, got))
        return out

    def _split_namespaces(self, got: Sequence[SocketBytes],
                          protos: frozenset[str]) -> list[SocketBytes]:
        """The samples of bwmon's own namespace; the others' kept by namespace inode for their
        meters (`_elsewhere`, handed over once the namespaces are read)."""
        own_inode = self.namespaces.scan.own if self.namespaces is not None else None
        own: list[SocketBytes] = []
        others: dict[int, list[SocketBytes]] = {}
        for s in got:
            if not s.netns or s.netns == own_inode:
                own.append(s)
            else:
                others.setdefault(s.netns, []).append(s)
        self._elsewhere.append((protos, others))
        return own

    async def _socket_usages(
        self, samples: list[tuple[int, Sequence[SocketBytes]]], tick: int
    ) -> tuple[list[EndUsage], list[EndUsage], list[tuple[EndUsage, EndUsage]]]:
        """The sockets' deltas as end usages (attribution.socket_counting)."""
        deltas: list[SocketDelta] = []
        for i, got in samples:
            deltas.extend(self._socket_flows[i].read(got, tick))
        # conntrack counts flows (the doctor says so, or its last read held counters)
        ct_counts = not self.checkup.blocking or self._ct_counting
        ebpf = self._extra_sources.get("ebpf")
        return await self.counting.usages(
            deltas, tick, owners=self.procs.owners, memory=self.attributor.owner_of,
            remember=self.remember_owner, ct_counts=ct_counts,
            ct_tracks=ct_counts or self._table_size > 0, sighted=self.procs.sighted,
            sightings=ebpf is not None and ebpf.active)

    def _count_shares(self, host_total: int) -> None:
        """Bytes per byte source since start (the header's shares): conntrack has what the
        host total holds beyond the socket sources' bytes."""
        socket_total = sum(v for k, v in self.shares.items() if k != "conntrack")
        self.shares["conntrack"] = max(0, host_total - socket_total)

    def _check_owners(self) -> None:
        """Owners of cached flows that exited: their flows are looked up again next tick."""
        cache = self.attributor.cache
        for key in cache.owners():
            if not self.procs.alive(key):
                cache.owner_died(key)

    async def _read_conntrack(self) -> list[ConntrackEntry] | None:
        from bwmon.core.sources.conntrack_read import SourceError

        try:
            entries = await self.conntrack.read()
        except SourceError as exc:
            self._ct_counting = False  # an unreadable table counts nothing: sockets hold flows
            message = str(exc)
            if message != self._source_error:
                self._source_error = message
                self.log.add(self._wall(), Level.ERROR, "conntrack", message)
                found = await self._diagnose()
                self.findings = () if self._tcp_measured() else found
            return None
        if self._source_error is not None:
            self._source_error = None
            self.findings = ()
            self.log.add(self._wall(), Level.INFO, "conntrack", "conntrack table readable again")
        return entries

    async def check_prerequisites(self) -> tuple[Finding, ...]:
        """Run the doctor once: when TCP cannot be measured (no socket source measures it and
        conntrack counts nothing) its findings go into snapshots; other failed checks go to the
        log. (The checkup repeats the checks while running.)"""
        await self.checkup.run_once()
        failed = self.checkup.failed
        if self.checkup.blocking and not self._tcp_measured():
            self.findings = failed
        else:
            for f in failed:
                fix = f" (fix: {f.fix})" if f.fix else ""
                self.log.add(self._wall(), Level.INFO, "doctor", f.message + fix)
        return failed

    async def recheck(self) -> None:
        """Run the checks now, not at the next periodic check (fixes were just applied): the
        header, the findings and the log follow at the next tick."""
        before = {f.check: f.ok for f in self.checkup.checks}
        await self.checkup.run_once()
        if {f.check: f.ok for f in self.checkup.checks} != before:
            self._checks_changed()

    def _checks_changed(self) -> None:
        """A periodic check changed its outcome: the screen's findings follow it."""
        if self._source_error is None:
            blocked = self.checkup.blocking and not self._tcp_measured()
            self.findings = self.checkup.failed if blocked else ()

    def _tcp_measured(self) -> bool:
        """Whether a socket source measures TCP (eBPF's byte sums alone measure UDP only)."""
        return any("tcp" in s.protos for s in self.socket_sources)

    async def _diagnose(self) -> tuple[Finding, ...]:
        await self.checkup.run_once()
        return self.checkup.failed

    def _sources(self, pipes: Sequence[PipeCounters]) -> tuple[SourceStatus, ...]:
        detail = self.conntrack.detail
        blocked = self.checkup.blocking  # readable, but counting nothing (e.g. accounting off)
        if blocked:
            detail = f"{detail}, counts nothing: {self.checkup.why_blocking()}"
        if self.pacer.stretched:
            detail = f"{detail}, {self.pacer.describe()}"
        counting = self._source_error is None and not blocked
        ct = SourceStatus(
            f"conntrack-{self.conntrack.kind}", counting, self._source_error or detail,
            counts_bytes=True,
        )
        extra = tuple(self._delivering(s) for s in self._extra_sources.values())
        pipe_status = tuple(
            SourceStatus(f"pipe:{p.name}", p.up, p.error or f"{p.listen} → {p.target}",
                         counts_bytes=True)
            for p in pipes
        )
        spaces: tuple[SourceStatus, ...] = ()
        if self.namespaces is not None:
            states = self.namespaces.states()
            broken = [s for s in states if s.error]
            detail = f"{len(states)} other network namespaces measured"
            if broken:
                detail += f"; {len(broken)} unreadable ({broken[0].name}: {broken[0].error})"
            spaces = (SourceStatus("namespaces", True, detail),)
        counters = tuple(s.status() for s in self.socket_sources)
        return (ct, *counters, SourceStatus("sockets", True, self.sockets.kind), *extra,
                *spaces, *pipe_status)

    def _delivering(self, status: SourceStatus) -> SourceStatus:
        """An add-on source as consumers see it: the conntrack event listener runs, but where
        the kernel tracks no flow (no rule in this namespace uses conntrack) it hears nothing,
        so it is not said to find processes."""
        from bwmon.core import doctor  # on use: the doctor imports every source

        if status.name == "events" and status.active and doctor.tracks_nothing(
                self.checkup.checks):
            return SourceStatus("events", False, "listening, but conntrack tracks no flows in "
                                "this network namespace (no rule uses it), so no events come")
        return status

    def _unmeasured(self, sources: Sequence[SourceStatus]) -> tuple[str, ...]:
        """Protocols whose bytes no source counts now, here or in a measured namespace with
        processes (the header says "not measured"): conntrack counts every protocol it tracks
        with accounting on, in its own namespace only; a source reporting every namespace's
        sockets (eBPF) measures its protocols in all of them."""
        measured: set[str] = set()
        everywhere: set[str] = set()
        for i, (source, status) in enumerate(zip(self.socket_sources, sources[1:],
                                                 strict=False)):
            if status.active:
                measured |= source.protos
                if i in self._everywhere:
                    everywhere |= source.protos
        missing: set[str] = set()
        if not (sources and sources[0].active):
            missing = {"tcp", "udp"} - measured
        if self.namespaces is not None:
            missing |= self.namespaces.unmeasured(frozenset(everywhere))
        return tuple(p for p in ("tcp", "udp") if p in missing)

