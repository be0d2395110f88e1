"""One network namespace measured: its conntrack table read through a process inside it, its
flows attributed through its own socket table, usages handed to the engine's accounting.

The same steps as the engine's own namespace (FlowTracker, owner cache, attribution), with the
namespace's views: `/proc/PID/net/nf_conntrack` (or `nsenter --net=… conntrack -L` where the
kernel has no such file), a sock_diag dump made inside the namespace (namespaces.enter; the
/proc/PID/net tables without the privilege), `/proc/PID/net` for its addresses. Socket inodes
are host-wide, so owners come from the engine's one process table. An idle namespace costs one
read of a short conntrack table a tick: sockets are dumped only for flows that need an owner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bwmon.core.attribution.attributor import Attributor, EndUsage, SocketLookup
from bwmon.core.attribution.flows import FlowTracker
from bwmon.core.model import ProcKey
from bwmon.core.namespaces.netns import NetNamespace
from bwmon.core.sources.conntrack_read import ConntrackSource, SourceError
from bwmon.core.sources.processes import ProcessTable
from bwmon.core.sources.socket_source import SocketSource
from bwmon.core.sources.socket_table import SocketIndex

_NO_SOCKETS = SocketIndex(())
ALIVE_TICKS = 10


@dataclass(slots=True)
class Measured:
    """What one namespace's tick gives accounting (see Accounting.step_changes)."""

    added: list[EndUsage] = field(default_factory=list)
    closed: list[EndUsage] = field(default_factory=list)
    replaced: list[tuple[EndUsage, EndUsage]] = field(default_factory=list)
    steady: list[tuple[EndUsage, ...]] = field(default_factory=list)


def _views(ns: NetNamespace, proc_root: Path) -> tuple[Path, tuple[str, ...]]:
    """(procfs root of the namespace's view, argv prefix entering it for the conntrack tool)."""
    root = proc_root / str(ns.pid) if ns.pid is not None else Path(ns.handle)
    return root, ("nsenter", f"--net={ns.handle}")


class NamespaceMeter:
    """Flows of one namespace, tick by tick."""

    def __init__(self, ns: NetNamespace, name: str, *, proc_root: Path,
                 conntrack_command: str, lookback: bool) -> None:
        self.ns = ns
        self.name = name
        self.proc_root = proc_root
        root, prefix = _views(ns, proc_root)
        self.conntrack = ConntrackSource(root, conntrack_command, argv_prefix=prefix)
        self.sockets = self._sockets(ns)
        self.flows = FlowTracker(lookback=lookback)
        self.attributor = Attributor()
        self.error: str | None = None
        self.flows_seen = 0  # entries of the last read

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
        self.ns = ns

    def open_usages(self) -> list[EndUsage]:
        """Every usage still counted as an open flow (to close them all when it vanishes)."""
        return list(self.attributor.cache.usages())

    async def measure(self, tick: int, procs: ProcessTable) -> Measured:
        try:
            entries = await self.conntrack.read()
        except SourceError as exc:
            self.error = str(exc)
            return Measured()
        self.error = None
        self.flows_seen = len(entries)
        read = self.flows.read(entries, tick, self.conntrack.change)
        gone, steady = read.gone, read.steady
        cache = self.attributor.cache
        if tick % ALIVE_TICKS == 0:
            for key in cache.owners():
                if not procs.alive(key):
                    cache.owner_died(key)
        plan = cache.plan(read.deltas, gone, self.flows.entry, tick, steady)
        out = Measured(closed=plan.closed, replaced=plan.replaced, steady=plan.steady)
        if not (plan.probe or plan.lookup):
            return out
        index: SocketLookup = _NO_SOCKETS
        local: frozenset[str] = frozenset()
        if self.sockets is not None:
            index = await self.sockets.index()
            local = self.sockets.local_addresses
        if plan.probe:
            cache.probe(plan, index, self.flows.entry)
        if plan.lookup:
            matches, inodes, uids = self.attributor.match(plan.lookup, index, local)
            owners: dict[int, ProcKey] = await procs.owners(inodes, uids) if inodes else {}
            found = self.attributor.attribute(matches, owners, tick)
            cache.store(matches, found)
            out.added = found
        return out


__all__ = ["Measured", "NamespaceMeter"]
