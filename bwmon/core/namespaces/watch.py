"""All the host's other network namespaces, followed and measured each tick.

Every tick starts with a scan (namespaces.netns: new processes' namespaces and the bind mounts),
so a container started while bwmon runs is measured from the next tick on; a namespace that
vanished has its meter dropped, its netlink sockets closed and its open flows closed in the
rows at once (nothing of it is kept). Which namespaces are measured can be narrowed by name
(settings `[namespaces]`). Between ticks, `watch_sockets` names the owners of new TCP sockets in
the namespaces with traffic (the engine's owner watch, for connections shorter than a tick).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from bwmon.core.attribution.byte_merge import ByteMerge
from bwmon.core.attribution.ends import EndKey, EndUsage
from bwmon.core.model import NamespaceState, ProcessInfo, ProcKey, SocketBytes
from bwmon.core.namespaces.crossing import Crossing, Place, by_address
from bwmon.core.namespaces.meter import Measured, NamespaceMeter
from bwmon.core.namespaces.netns import BIND_MOUNT_DIRS, NamespaceScan, NetNamespace
from bwmon.core.namespaces.placement import Placer
from bwmon.core.sources.processes import ProcessTable


class NamespaceWatch:
    """The scan, the names and one meter per measured namespace (not bwmon's own)."""

    def __init__(self, *, proc_root: Path, conntrack_command: str, lookback: bool,
                 include: Sequence[str] = (), exclude: Sequence[str] = (),
                 mount_dirs: Sequence[Path] = BIND_MOUNT_DIRS, socket_counters: bool = False,
                 shares: dict[str, int] | None = None) -> None:
        self.proc_root = proc_root
        self.socket_counters = socket_counters  # TCP counted from each namespace's sockets
        self.shares = shares if shares is not None else {}
        # local address -> the merge of the namespace that counts its sockets (byte_merge)
        self.merges: dict[str, ByteMerge] = {}
        self.conntrack_command = conntrack_command
        self.lookback = lookback
        self.scan = NamespaceScan(proc_root, mount_dirs)
        self.placer = Placer(self.scan)
        self.include = [re.compile(p) for p in include]
        self.exclude = [re.compile(p) for p in exclude]
        self.meters: dict[int, NamespaceMeter] = {}
        self.own: Place | None = None
        self._by_address: dict[str, list[Place]] = {}
        self._names: dict[int, tuple[int, str]] = {}  # inode -> (processes then, name)

    def wanted(self, name: str) -> bool:
        if any(p.search(name) for p in self.exclude):
            return False
        return not self.include or any(p.search(name) for p in self.include)

    def set_own(self, place: Place) -> None:
        """bwmon's own namespace, as the others see it (its flows, addresses, sockets)."""
        self.own = place

    async def read(self, tick: int, procs: ProcessTable) -> list[EndUsage]:
        """Scan, follow the meters, read every measured namespace's table. Returns the open
        usages of namespaces gone (or no longer wanted): to be closed in the rows."""
        await asyncio.to_thread(self.scan.scan)
        closed: list[EndUsage] = []
        found = self.scan.namespaces
        for inode in [i for i in self.meters if i not in found]:
            closed.extend(await self._drop(inode))
        for inode in [i for i in self._names if i not in found]:
            del self._names[inode]
        for inode, ns in found.items():
            if inode == self.scan.own:
                continue
            meter = self.meters.get(inode)
            name = self._name(ns)
            if not self.wanted(name):
                if meter is not None:
                    closed.extend(await self._drop(inode))
                continue
            if meter is None:
                meter = self.meters[inode] = NamespaceMeter(
                    ns, name, proc_root=self.proc_root,
                    conntrack_command=self.conntrack_command, lookback=self.lookback,
                    socket_counters=self.socket_counters, shares=self.shares)
            else:
                meter.follow(ns, name)
        for meter in self.meters.values():
            await meter.read(tick, procs)
        places = [m.place for m in self.meters.values()]
        if self.own is not None:
            places.append(self.own)
        for place in places:
            place.new_tick()
        self._by_address = by_address(places)
        self.merges = {address: m.merge for m in self.meters.values() if m.merge.protos
                       for address in m.addresses
                       if not (address.startswith("127.") or address == "::1")}
        return closed

    def take_sums(self, sums: Mapping[int, Sequence[SocketBytes]] | None,
                  protos: frozenset[str], tick: int) -> None:
        """A per-socket source's sums of every namespace's sockets (eBPF: UDP and the rest),
        by namespace inode, after `read`: each meter gets its own (none: its sockets closed),
        those of namespaces not measured are left out. None: the source could not be read."""
        for inode, meter in self.meters.items():
            meter.take_sums(None if sums is None else sums.get(inode, ()), protos, tick)

    async def _drop(self, inode: int) -> list[EndUsage]:
        """Stop measuring a namespace: its open usages (to close), its sockets closed."""
        meter = self.meters.pop(inode)
        await meter.close()
        return meter.open_usages()

    async def close(self) -> None:
        """Release every namespace's netlink sockets (bwmon stops)."""
        for meter in self.meters.values():
            await meter.close()

    async def watch_sockets(self, rounds: int, procs: ProcessTable) -> float:
        """One round of the owner watch in the namespaces with traffic (see
        NamespaceMeter.watch_due): their connected sockets, dumped through their own netlink
        sockets in one worker thread, and the owners of new ones. Returns the dumps' CPU time."""
        due = [m for m in list(self.meters.values()) if m.watch_due(rounds)]
        if not due:
            return 0.0

        def dump() -> tuple[list[dict[int, tuple[int, bytes]] | None], float]:
            started = time.thread_time()
            found: list[dict[int, tuple[int, bytes]] | None] = []
            for meter in due:
                try:
                    found.append(meter.counters.inodes() if meter.counters else None)
                except OSError:  # it vanished meanwhile; the tick reports other failures
                    found.append(None)
            return found, time.thread_time() - started

        found, cost = await asyncio.to_thread(dump)
        for meter, now in zip(due, found, strict=True):
            if now is None or self.meters.get(meter.ns.inode) is not meter:
                continue

            def remember(end: EndKey, owner: ProcKey, meter: NamespaceMeter = meter) -> None:
                meter.attributor.remember(end, owner, meter.tick)

            await meter.counting.watch(now, procs.owners, remember)
        return cost

    def crossing(self, place: Place) -> Crossing:
        """The other measured namespaces as `place` sees them (after `read`)."""
        return Crossing(place, self._by_address)

    def remember_owner(self, inode: int, end: EndKey, owner: ProcKey,
                       info: ProcessInfo | None) -> ProcessInfo | None:
        """An owner discovery learnt of an end in the namespace `inode` (an eBPF sighting);
        its facts, with that namespace's name for container (None: not measured)."""
        meter = self.meters.get(inode)
        if meter is None:
            return None
        meter.attributor.remember(end, owner, meter.tick)
        if info is None or info.container == meter.name:
            return info
        return dataclasses.replace(info, container=meter.name)

    async def attribute(self, tick: int, procs: ProcessTable,
                        sightings: bool = False) -> Measured:
        """Every namespace's usages of this tick, in one Measured. `sightings`: eBPF sightings
        reach their owner memory (`remember_owner`), so an ownerless socket waits for its."""
        total = Measured()
        for meter in list(self.meters.values()):
            part = await meter.attribute(tick, procs, self.crossing(meter.place), self.merges,
                                         sightings)
            total.added.extend(part.added)
            total.closed.extend(part.closed)
            total.replaced.extend(part.replaced)
            total.steady.extend(part.steady)
        return total

    def _name(self, ns: NetNamespace) -> str:
        """The namespace's name, read again only when its processes changed in number (a
        container's namespace is often created before the container's process enters it)."""
        known = self._names.get(ns.inode)
        if known is not None and known[0] == ns.processes:
            return known[1]
        name = self.placer.namespace_name(ns)
        self._names[ns.inode] = (ns.processes, name)
        return name

    def unmeasured(self, everywhere: frozenset[str]) -> set[str]:
        """Protocols not measured in some namespace with processes: its conntrack counts no
        bytes, and neither its own socket counters (TCP) nor a source of every namespace's
        sockets (`everywhere`, eBPF) measure them."""
        missing: set[str] = set()
        for m in self.meters.values():
            if m.ns.pid is None or m.ct_counting:
                continue
            missing |= {"tcp", "udp"} - everywhere - ({"tcp"} if m.socket_counters else set())
        return missing

    def states(self) -> tuple[NamespaceState, ...]:
        return tuple(
            NamespaceState(m.ns.inode, m.name, m.ns.processes, m.flows_seen, m.error)
            for m in sorted(self.meters.values(), key=lambda m: m.name))

    def namespace(self, inode: int) -> NetNamespace | None:
        return self.scan.namespaces.get(inode)


def measures_all(scope: str, proc_root: Path) -> bool:
    """Whether `scope` means every namespace: "auto" does when bwmon runs in the host's own
    network namespace (that of PID 1), so a bwmon started in a container watches only it."""
    if scope != "auto":
        return scope == "all"
    try:
        return os.stat(proc_root / "1" / "ns" / "net").st_ino == os.stat(
            proc_root / "self" / "ns" / "net").st_ino
    except OSError:
        return False
