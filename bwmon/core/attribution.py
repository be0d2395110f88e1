"""Which local socket, and so which process, each flow's bytes belong to.

A flow has up to two local ends: its initiator (the original tuple's source) and its responder
(the reply tuple's source). A loopback flow has both; a flow routed through this host has none
and goes to `(forwarded)`. Each end's owner comes from the socket table and the fd scan, and is
remembered (owner memory) so a flow whose socket closed (TIME_WAIT, inode 0) stays with the last
process that owned it. No I/O here: socket lookups and inode owners are passed in.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple, Protocol

from bwmon.core.flows import FlowDelta
from bwmon.core.model import ConntrackEntry, FlowKey, ProcKey, SocketEntry

# An end whose owner was not seen for this many ticks is forgotten (bounded memory). Ends of
# flows still in the table are refreshed from the flow cache, so this only has to outlive a
# closed flow's conntrack entry (TIME_WAIT 120 s, UDP up to 180 s) at 1 s ticks.
MEMORY_TICKS = 300
# At most this many remembered ends: a storm of short connections (events and eBPF report every
# one) then forgets its oldest ends first instead of growing without bound.
MEMORY_MAX = 200_000
# An unchanged flow with an end nobody owns is looked up again about this often (in ticks),
# at most MAX_RETRIES times (later only when its counters change or an owner is learnt).
RETRY_TICKS = 5
MAX_RETRIES = 3
# TCP states of a flow whose sockets are closed for good: no lookup can find an owner again.
CLOSED_STATES = frozenset({"TIME_WAIT", "CLOSE"})


class SocketLookup(Protocol):
    def find(
        self, proto: str, local: str, lport: int, remote: str, rport: int
    ) -> SocketEntry | None: ...

    def listener(self, proto: str, local: str, lport: int) -> SocketEntry | None: ...


class EndKey(NamedTuple):
    """A flow as seen from one local socket (a named tuple: hashed in C, see Tuple5)."""

    proto: str
    local: str
    lport: int
    remote: str
    rport: int


@dataclass(frozen=True, slots=True)
class EndUsage:
    """Bytes one local end (or a forwarded flow) moved this tick, and who owns it."""

    entry: ConntrackEntry
    end: EndKey | None  # None: forwarded (no local end)
    owner: ProcKey | None  # None: unattributed (or forwarded)
    d_in: int
    d_out: int
    loopback: bool
    open: bool


def is_loopback(addr: str) -> bool:
    """True for a loopback address in the normalised form (127.0.0.0/8, ::1).

    A string test: called for both ends of every new flow, and a table holds far more distinct
    remote addresses than any cache of `ipaddress` objects could keep.
    """
    if addr.startswith("127.") or addr == "::1":
        return True
    return ":" in addr and _is_loopback_slow(addr)  # e.g. a non-compressed IPv6 spelling


@lru_cache(maxsize=256)
def _is_loopback_slow(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        return False


@dataclass(slots=True)
class _Match:
    delta: FlowDelta
    end: EndKey | None
    initiator: bool
    socket: SocketEntry | None
    listener: SocketEntry | None = None  # for a TCP end not accepted yet
    firm: bool = False  # the owner came from the socket itself (not memory or the listener)


class Attributor:
    """Owner memory plus the per-tick attribution of flow deltas to local ends."""

    def __init__(self, memory_ticks: int = MEMORY_TICKS) -> None:
        self.memory_ticks = memory_ticks
        self._memory: dict[EndKey, tuple[ProcKey, int]] = {}
        self.cache = FlowOwners()

    def __len__(self) -> int:
        return len(self._memory)

    def remember(self, end: EndKey, owner: ProcKey, tick: int) -> None:
        """Record an owner learnt elsewhere (events, eBPF) before the flow is polled."""
        self._memory[end] = (owner, tick)
        self.cache.learnt(end)
        if len(self._memory) > MEMORY_MAX:
            self._trim()

    def refresh(self, usages: Iterable[EndUsage], tick: int) -> None:
        """Mark the owners of ends still in use as seen now, so memory does not expire them."""
        memory = self._memory
        for u in usages:
            if u.end is not None and u.owner is not None:
                memory[u.end] = (u.owner, tick)

    def owner_of(self, end: EndKey) -> ProcKey | None:
        known = self._memory.get(end)
        return known[0] if known else None

    def match(
        self,
        deltas: Sequence[FlowDelta],
        sockets: SocketLookup,
        local_addresses: Collection[str],
    ) -> tuple[list[_Match], set[int], set[int]]:
        """Find each delta's local ends and their sockets.

        Returns the matches, the socket inodes whose owners are needed, and those sockets' uids.
        """
        matches: list[_Match] = []
        inodes: set[int] = set()
        uids: set[int] = set()
        for delta in deltas:
            e = delta.entry
            proto = e.proto
            found = False
            for initiator, t in ((True, e.orig), (False, e.reply)):
                local, lport, remote, rport = t.src, t.sport, t.dst, t.dport
                sock = sockets.find(proto, local, lport, remote, rport)
                if sock is None and local not in local_addresses and not is_loopback(local):
                    continue
                found = True
                match = _Match(delta, EndKey(proto, local, lport, remote, rport), initiator, sock)
                matches.append(match)
                if sock is not None and sock.inode:
                    inodes.add(sock.inode)
                    uids.add(sock.uid)
                elif not initiator and proto == "tcp" and match.end not in self._memory:
                    match.listener = sockets.listener(proto, local, lport)
                    if match.listener is not None:
                        inodes.add(match.listener.inode)
                        uids.add(match.listener.uid)
            if not found:
                matches.append(_Match(delta, None, True, None))
        return matches, inodes, uids

    def attribute(
        self, matches: Sequence[_Match], owners: Mapping[int, ProcKey], tick: int
    ) -> list[EndUsage]:
        """Turn matches into per-end usage; updates and expires the owner memory."""
        memory = self._memory
        out: list[EndUsage] = []
        for m in matches:
            d = m.delta
            if m.end is None:
                out.append(EndUsage(d.entry, None, None, d.d_orig, d.d_reply, False, d.open))
                continue
            owner: ProcKey | None = None
            if m.socket is not None and m.socket.inode:
                owner = owners.get(m.socket.inode)
            if owner is not None:
                memory[m.end] = (owner, tick)
                m.firm = True
            else:
                known = memory.get(m.end)
                if known is None and memory:
                    end = m.end  # an unconnected socket seen by eBPF is remembered by port
                    known = memory.get(EndKey(end.proto, end.local, end.lport, "", 0))
                    if known is None:
                        known = memory.get(EndKey(end.proto, "", end.lport, "", 0))
                if known is None and m.listener is not None:
                    listener_owner = owners.get(m.listener.inode)
                    if listener_owner is not None:
                        known = (listener_owner, tick)
                if known is not None:
                    owner = known[0]
                    memory[m.end] = (owner, tick)
            # the initiator sent the original direction; the responder received it
            d_in, d_out = (d.d_reply, d.d_orig) if m.initiator else (d.d_orig, d.d_reply)
            loop = is_loopback(m.end.local) or m.end.local == m.end.remote
            out.append(EndUsage(d.entry, m.end, owner, d_in, d_out, loop, d.open))
        if tick % 64 == 0:
            self._expire(tick)
        return out

    def _expire(self, tick: int) -> None:
        self.refresh(self.cache.usages(), tick)  # ends of cached open flows are in use
        limit = tick - self.memory_ticks
        stale = [k for k, (_, t) in self._memory.items() if t < limit]
        for k in stale:
            del self._memory[k]

    def _trim(self) -> None:
        """Forget the least recently seen quarter of the remembered ends."""
        by_age = sorted(self._memory.items(), key=lambda item: item[1][1])
        for k, _ in by_age[: len(by_age) // 4]:
            del self._memory[k]


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
    reused: list[EndUsage]  # this tick's usages of flows whose owners were reused
    closed: list[EndUsage]  # previous usages that end (flows gone, or looked up again)
    replaced: list[tuple[EndUsage, EndUsage]]  # (previous, reused) usage of the same end


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
            [FlowKey], ConntrackEntry | None], tick: int) -> TickPlan:
        """Sort this tick's flows into lookups and reuses; collect the usages that end."""
        plan = TickPlan([], [], [], [])
        flows = self._flows
        for key in gone:
            cached = self._drop(key)
            if cached is not None:
                plan.closed.extend(cached.usages)
        planned: set[FlowKey] = set()
        tries: dict[FlowKey, int] = {}
        due = self._due
        for delta in changed:
            key = delta.entry.key
            planned.add(key)
            cached = flows.get(key)
            if cached is None:
                plan.lookup.append(delta)
                continue
            if cached.firm and key not in due and not _reset(cached, delta):
                reused = _reuse(cached, delta)
                plan.reused.extend(reused)
                plan.replaced.extend(zip(cached.usages, reused, strict=True))
                if delta.open:  # same ends and owners: the indexes by owner and port hold
                    flows[key] = _Cached(reused, cached.sides, True, False)
                else:
                    self._drop(key)
                continue
            plan.closed.extend(cached.usages)
            self._drop(key)
            plan.lookup.append(delta)
        retry = list(self._due)
        if self._unowned and tick % RETRY_TICKS == 0:
            retry.extend(self._unowned)
        self._due = set()
        for key in retry:
            if key in planned or key not in flows:
                continue
            entry = entry_of(key)
            if entry is None:
                continue
            planned.add(key)
            cached = self._drop(key)
            if cached is not None:
                plan.closed.extend(cached.usages)
                tries[key] = cached.attempts + 1
            plan.lookup.append(FlowDelta(entry, 0, 0))
        self._tries = tries
        return plan

    def store(self, matches: Sequence[_Match], usages: Sequence[EndUsage]) -> None:
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


def _reset(cached: _Cached, delta: FlowDelta) -> bool:
    """The tuple names a new flow (counters dropped, new conntrack id): new sockets too."""
    old, new = cached.usages[0].entry, delta.entry
    return (old.ct_id != new.ct_id or (new.orig_bytes or 0) < (old.orig_bytes or 0)
            or (new.reply_bytes or 0) < (old.reply_bytes or 0))


def _reuse(cached: _Cached, delta: FlowDelta) -> tuple[EndUsage, ...]:
    """The cached ends and owners with this delta's bytes."""
    d = delta
    out = []
    for u, initiator in zip(cached.usages, cached.sides, strict=True):
        if u.end is None:
            out.append(EndUsage(d.entry, None, None, d.d_orig, d.d_reply, False, d.open))
        else:
            d_in, d_out = (d.d_reply, d.d_orig) if initiator else (d.d_orig, d.d_reply)
            out.append(EndUsage(d.entry, u.end, u.owner, d_in, d_out, u.loopback, d.open))
    return tuple(out)
