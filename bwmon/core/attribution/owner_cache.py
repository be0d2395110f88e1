"""The owner cache: per open flow, the usages of its last attribution.

A flow whose counters move reuses the ends and owners it had, without a socket lookup; it is
looked up again only when something could change the answer (see FlowOwners). This is what
makes a tick cost in proportion to the flows that changed, not to the table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from bwmon.core.attribution.ends import EndKey, EndUsage, Match, SocketLookup
from bwmon.core.attribution.flows import CLOSED_STATES, FlowDelta, Steady, new_delta
from bwmon.core.model import ConntrackEntry, FlowKey, ProcKey
from bwmon.core.runtime.slots import fast_constructor

# An unchanged flow with an end nobody owns is looked up again about this often (in ticks),
# at most MAX_RETRIES times (later only when its counters change or an owner is learnt).
RETRY_TICKS = 5
MAX_RETRIES = 3
# TCP states of a flow whose sockets are closed for good: no lookup can find an owner again.

_new_usage = fast_constructor(
    EndUsage, ("entry", "end", "owner", "d_in", "d_out", "loopback", "open"))



@dataclass(slots=True)
class _Cached:
    """The usages a flow's last lookup gave, and whether a later one could do better."""

    usages: tuple[EndUsage, ...]
    sides: tuple[bool, ...]  # per usage: True for the initiator's end (or a forwarded flow)
    firm: bool  # every end's owner came from its own socket (or the flow is forwarded)
    retry: bool  # some local end has no owner at all: look it up again now and then
    attempts: int = 0  # lookups so far that left an end without owner


@dataclass(slots=True)
class TickPlan:
    """What a tick must do: flows to look up, usages reused without lookup, usages that end."""

    lookup: list[FlowDelta]
    closed: list[EndUsage]  # previous usages that end (flows gone, or looked up again)
    replaced: list[tuple[EndUsage, EndUsage]]  # (previous, reused) usage of the same end
    probe: list[FlowKey]  # unowned flows due a periodic retry: see FlowOwners.probe
    # the usages of steady flows (see FlowTracker), updated in place with this tick's bytes
    steady: list[tuple[EndUsage, ...]] = field(default_factory=list)


class FlowOwners:
    """Per open flow, the usages of its last attribution, so unchanged flows cost no lookup.

    A flow is looked up again only when it is new, when its counters changed and some end's
    owner was not firm (memory or listener), when an end has no owner (retried every
    RETRY_TICKS ticks, or at once when events/eBPF learn an owner on its port), or when its
    owner died. A settled flow whose counters changed reuses its ends and owners.
    """

    def __init__(self) -> None:
        self._flows: dict[FlowKey, _Cached] = {}
        self._unowned: dict[FlowKey, None] = {}  # flows with a `retry` end, oldest first
        self._ports: dict[tuple[str, int], set[FlowKey]] = {}  # (proto, lport) of unowned ends
        self._by_owner: dict[ProcKey, set[FlowKey]] = {}
        self._due: set[FlowKey] = set()  # looked up next tick whatever their state
        self._tries: dict[FlowKey, int] = {}  # this tick's retries: lookups done before
        self.dead: set[ProcKey] = set()  # owners found dead (their flows were looked up again)

    def __len__(self) -> int:
        return len(self._flows)

    def usages(self) -> Iterator[EndUsage]:
        for cached in self._flows.values():
            yield from cached.usages

    def owners(self) -> set[ProcKey]:
        """Owners of cached flows not yet known to be dead (for a liveness check)."""
        self.dead &= self._by_owner.keys()
        return self._by_owner.keys() - self.dead

    def owner_died(self, key: ProcKey) -> None:
        """Look its flows up again: another process may hold their sockets now."""
        self.dead.add(key)
        self._due.update(self._by_owner.get(key, ()))

    def learnt(self, end: EndKey) -> None:
        """An owner was learnt for `end`: flows left without owner there are due. An end
        without remote (an unconnected socket seen by eBPF) stands for its whole port."""
        keys = self._ports.get((end.proto, end.lport))
        if not keys:
            return
        if not end.remote:
            self._due.update(keys)
            return
        flows = self._flows
        for key in keys:  # only the flow with that very end: others on the port gain nothing
            cached = flows.get(key)
            if cached is not None and any(u.end == end and u.owner is None
                                          for u in cached.usages):
                self._due.add(key)

    def plan(self, changed: Sequence[FlowDelta], gone: Iterable[FlowKey], entry_of: Callable[
            [FlowKey], ConntrackEntry | None], tick: int, steady: Sequence[Steady] = ()
             ) -> TickPlan:
        """Sort this tick's flows into lookups and reuses; collect the usages that end.
        `steady` flows (counters moved, nothing else) keep their usages when the reuse
        holds, and become deltas like `changed` ones otherwise."""
        plan = TickPlan([], [], [], [])
        flows = self._flows
        for key in gone:
            cached = self._drop(key)
            if cached is not None:
                plan.closed.extend(cached.usages)
        planned: set[FlowKey] = set()
        tries: dict[FlowKey, int] = {}
        due = self._due
        # which flows were planned matters only to flows due or probed in this same tick
        marking = bool(due) or bool(self._unowned and tick % RETRY_TICKS == 0)
        replaced = plan.replaced
        if steady:
            changed = [*changed, *self._keep(steady, plan.steady, planned if marking else None)]
        for delta in changed:
            key = delta.entry.key
            if marking:
                planned.add(key)
            cached = flows.get(key)
            if cached is None:
                plan.lookup.append(delta)
                continue
            if cached.firm and key not in due and not _reset(cached, delta.entry):
                reused = _reuse(cached, delta)
                replaced.extend(zip(cached.usages, reused, strict=True))
                if delta.open:  # same ends and owners: the indexes by owner and port hold
                    cached.usages, cached.firm, cached.retry, cached.attempts = (
                        reused, True, False, 0)  # in place: nothing new outlives the tick
                else:
                    self._drop(key)
                continue
            plan.closed.extend(cached.usages)
            self._drop(key)
            plan.lookup.append(delta)
        for key in self._due:
            if key not in planned and key in flows:
                planned.add(key)
                self._look_again(key, entry_of, plan, tries)
        self._due = set()
        if self._unowned and tick % RETRY_TICKS == 0:
            plan.probe = [key for key in self._unowned if key not in planned]
        self._tries = tries
        return plan

    def _keep(self, steady: Sequence[Steady], kept: list[tuple[EndUsage, ...]],
              planned: set[FlowKey] | None) -> list[FlowDelta]:
        """The reuse of `plan` for steady flows, without new objects: a firm flow not due,
        still the same conntrack flow, keeps its usages, updated in place with the new entry
        and bytes (listed in `kept`); the others are returned as deltas for the general case."""
        flows, due = self._flows, self._due
        rest: list[FlowDelta] = []
        for key, entry, d_orig, d_reply in steady:
            if planned is not None:
                planned.add(key)
            cached = flows.get(key)
            if cached is None or not cached.firm or key in due or _reset(cached, entry):
                rest.append(new_delta(entry, d_orig, d_reply, True))
                continue
            for u, initiator in zip(cached.usages, cached.sides, strict=True):
                u.entry = entry
                if initiator and u.end is not None:
                    u.d_in, u.d_out = d_reply, d_orig
                else:
                    u.d_in, u.d_out = d_orig, d_reply
            kept.append(cached.usages)
            cached.retry, cached.attempts = False, 0
        return rest

    def probe(self, plan: TickPlan, sockets: SocketLookup,
              entry_of: Callable[[FlowKey], ConntrackEntry | None]) -> None:
        """The periodic retry of unowned flows: only a flow with something new to find (a
        socket with an inode at an unowned end, or a listener behind it) is looked up again;
        the others keep their usages and count the attempt. Most unowned flows have no socket
        left at all, and looking them up in full re-accounted each of them for nothing."""
        tries = self._tries
        for key in plan.probe:
            cached = self._flows.get(key)
            if cached is None:
                continue
            if _could_improve(cached, sockets):
                self._look_again(key, entry_of, plan, tries)
                continue
            cached.attempts += 1
            if cached.attempts >= MAX_RETRIES:
                cached.retry = False
                self._unowned.pop(key, None)
        plan.probe = []

    def _look_again(self, key: FlowKey, entry_of: Callable[[FlowKey], ConntrackEntry | None],
                    plan: TickPlan, tries: dict[FlowKey, int]) -> None:
        entry = entry_of(key)
        if entry is None:
            return
        cached = self._drop(key)
        if cached is not None:
            plan.closed.extend(cached.usages)
            tries[key] = cached.attempts + 1
        plan.lookup.append(FlowDelta(entry, 0, 0))

    def store(self, matches: Sequence[Match], usages: Sequence[EndUsage]) -> None:
        """Cache the usages of looked-up open flows (matches and usages pair up in order)."""
        start = 0
        n = len(matches)
        while start < n:
            delta = matches[start].delta
            stop = start + 1
            while stop < n and matches[stop].delta is delta:
                stop += 1
            if delta.open:
                group = matches[start:stop]
                flow_usages = tuple(usages[start:stop])
                key = delta.entry.key
                attempts = self._tries.get(key, 0)
                e = delta.entry
                if e.state in CLOSED_STATES or e.proto not in ("tcp", "udp"):
                    # sockets gone for good, or a protocol the socket table does not list:
                    # no lookup can do better than this one (owners learnt still count)
                    firm, retry = True, False
                else:
                    firm = all(m.end is None or m.firm for m in group)
                    retry = attempts < MAX_RETRIES and any(
                        u.end is not None and u.owner is None for u in flow_usages)
                self._store(key, _Cached(flow_usages, tuple(m.initiator for m in group), firm,
                                         retry, attempts))
            start = stop

    def _store(self, key: FlowKey, cached: _Cached) -> None:
        self._flows[key] = cached
        for u in cached.usages:
            if u.owner is not None:
                self._by_owner.setdefault(u.owner, set()).add(key)
            elif u.end is not None:
                self._ports.setdefault((u.end.proto, u.end.lport), set()).add(key)
        if cached.retry:
            self._unowned[key] = None

    def _drop(self, key: FlowKey) -> _Cached | None:
        cached = self._flows.pop(key, None)
        if cached is None:
            return None
        for u in cached.usages:
            if u.owner is not None:
                keys = self._by_owner.get(u.owner)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._by_owner[u.owner]
            elif u.end is not None:
                port = (u.end.proto, u.end.lport)
                keys = self._ports.get(port)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._ports[port]
        self._unowned.pop(key, None)
        return cached


def _could_improve(cached: _Cached, sockets: SocketLookup) -> bool:
    """Whether a lookup now could find an owner for one of the flow's unowned ends."""
    for u, initiator in zip(cached.usages, cached.sides, strict=True):
        end = u.end
        if end is None or u.owner is not None:
            continue
        sock = sockets.find(end.proto, end.local, end.lport, end.remote, end.rport)
        if sock is not None and sock.inode:
            return True
        if not initiator and sockets.listener(end.proto, end.local, end.lport) is not None:
            return True
    return False


def _reset(cached: _Cached, new: ConntrackEntry) -> bool:
    """The tuple names a new flow (counters dropped, new conntrack id): new sockets too."""
    old = cached.usages[0].entry
    return (old.ct_id != new.ct_id or (new.orig_bytes or 0) < (old.orig_bytes or 0)
            or (new.reply_bytes or 0) < (old.reply_bytes or 0))


def _reuse(cached: _Cached, delta: FlowDelta) -> tuple[EndUsage, ...]:
    """The cached ends and owners with this delta's bytes."""
    d = delta
    out = []
    for u, initiator in zip(cached.usages, cached.sides, strict=True):
        if u.end is None:
            out.append(_new_usage(d.entry, None, None, d.d_orig, d.d_reply, False, d.open))
        else:
            d_in, d_out = (d.d_reply, d.d_orig) if initiator else (d.d_orig, d.d_reply)
            out.append(_new_usage(d.entry, u.end, u.owner, d_in, d_out, u.loopback, d.open))
    return tuple(out)
