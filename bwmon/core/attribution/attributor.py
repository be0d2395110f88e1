"""Which local socket, and so which process, each flow's bytes belong to.

A flow has up to two local ends: its initiator (the original tuple's source) and its responder
(the reply tuple's source). A loopback flow has both; a flow routed through this host has none
and goes to `(forwarded)`. Each end's owner comes from the socket table and the fd scan, and is
remembered (owner memory) so a flow whose socket closed (TIME_WAIT, inode 0) stays with the last
process that owned it. No I/O here: socket lookups and inode owners are passed in. The ends
themselves are in attribution.ends, the per-flow owner cache in attribution.owner_cache.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from bwmon.core.attribution.ends import EndKey as EndKey
from bwmon.core.attribution.ends import EndUsage as EndUsage
from bwmon.core.attribution.ends import ForeignEnds, Match
from bwmon.core.attribution.ends import SocketLookup as SocketLookup
from bwmon.core.attribution.ends import is_loopback as is_loopback
from bwmon.core.attribution.flows import FlowDelta
from bwmon.core.attribution.owner_cache import RETRY_TICKS as RETRY_TICKS
from bwmon.core.attribution.owner_cache import FlowOwners
from bwmon.core.model import ProcKey

# An end whose owner was not seen for this many ticks is forgotten (bounded memory). Ends of
# flows still in the table (TIME_WAIT included) are refreshed from the flow cache at every
# sweep, so an end is kept at least MEMORY_TICKS - SWEEP_TICKS ticks after its flow left the
# table: 44 ticks where a DESTROY handled late needs it for VANISHED_TICKS (10), and an owner
# learnt from events or eBPF for the one tick until the flow is polled.
MEMORY_TICKS = 60
SWEEP_TICKS = 16  # ticks between two sweeps (refresh from the cache, then expire)
# An end without remote (an unconnected socket seen once by eBPF) stands for its port and is
# not refreshed by flows: it keeps the longer horizon it always had.
PORT_MEMORY_TICKS = 300
# At most this many remembered ends: a storm of short connections (events and eBPF report every
# one) then forgets its oldest ends first instead of growing without bound.
MEMORY_MAX = 200_000


class Attributor:
    """Owner memory plus the per-tick attribution of flow deltas to local ends."""

    def __init__(self, memory_ticks: int = MEMORY_TICKS,
                 port_memory_ticks: int = PORT_MEMORY_TICKS) -> None:
        self.memory_ticks = memory_ticks
        self.port_memory_ticks = port_memory_ticks
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
        foreign: ForeignEnds | None = None,
    ) -> tuple[list[Match], set[int], set[int]]:
        """Find each delta's local ends and their sockets.

        With `foreign`, an end local to another measured namespace is that namespace's: skipped
        when it counts the connection itself (a flow left with no end here is `elsewhere`),
        else matched to its socket there (a container's NAT'd flow gets its process). A flow
        whose two ends are local to measured namespaces is local traffic (`local_pair`).
        Returns the matches, the socket inodes whose owners are needed, and those sockets' uids.
        """
        matches: list[Match] = []
        inodes: set[int] = set()
        uids: set[int] = set()
        for delta in deltas:
            e = delta.entry
            proto = e.proto
            found = False
            elsewhere = False
            local_ends = 0
            first = len(matches)
            for initiator, t in ((True, e.orig), (False, e.reply)):
                local, lport, remote, rport = t.src, t.sport, t.dst, t.dport
                sock = sockets.find(proto, local, lport, remote, rport)
                if sock is None and local not in local_addresses and not is_loopback(local):
                    if foreign is None or not foreign.owns(local):
                        continue
                    local_ends += 1
                    if foreign.tracks(e, initiator):
                        elsewhere = True
                        continue
                    sock = foreign.find(proto, local, lport, remote, rport)
                else:
                    local_ends += 1
                found = True
                match = Match(delta, EndKey(proto, local, lport, remote, rport), initiator, sock)
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
                matches.append(Match(delta, None, True, None, elsewhere=elsewhere))
            elif foreign is not None and local_ends == 2:
                for m in matches[first:]:
                    m.local_pair = True
        return matches, inodes, uids

    def attribute(
        self, matches: Sequence[Match], owners: Mapping[int, ProcKey], tick: int
    ) -> list[EndUsage]:
        """Turn matches into per-end usage; updates and expires the owner memory."""
        memory = self._memory
        out: list[EndUsage] = []
        for m in matches:
            d = m.delta
            if m.end is None:
                out.append(EndUsage(d.entry, None, None, d.d_orig, d.d_reply, False, d.open,
                                    m.elsewhere))
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
            loop = is_loopback(m.end.local) or m.end.local == m.end.remote or m.local_pair
            out.append(EndUsage(d.entry, m.end, owner, d_in, d_out, loop, d.open))
        if tick % SWEEP_TICKS == 0:
            self._expire(tick)
        return out

    def _expire(self, tick: int) -> None:
        self.refresh(self.cache.usages(), tick)  # ends of cached open flows are in use
        limit, port_limit = tick - self.memory_ticks, tick - self.port_memory_ticks
        stale = [k for k, (_, t) in self._memory.items()
                 if t < limit and (k.remote or t < port_limit)]
        for k in stale:
            del self._memory[k]

    def _trim(self) -> None:
        """Forget the least recently seen quarter of the remembered ends."""
        by_age = sorted(self._memory.items(), key=lambda item: item[1][1])
        for k, _ in by_age[: len(by_age) // 4]:
            del self._memory[k]
