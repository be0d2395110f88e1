"""Flows that cross namespaces: one connection seen in several measured namespaces' tables.

A container's connection to the outside is in the container's table (if it tracks anything)
and, masqueraded, in the host's as a flow with no local end; a connection between a container
and a host process is in both tables with one local end each. Each connection must count once:

- an end local to another measured namespace belongs to that namespace. When that namespace
  tracks the connection itself (its table holds the same original tuple, or the reply tuple
  reversed: before SNAT, after DNAT), it counts it; here the flow is `elsewhere` if it has no
  other end. When it does not track it (a container without a conntrack rule, the usual
  case), the end is matched here to the socket in that namespace, so the bytes seen by the
  host go to the container's process;
- a flow whose two ends are local to measured namespaces is local traffic: the host total
  counts it once, from its initiator's side.

`Place` is one namespace's view (addresses, flow table, socket table fetched at most once a
tick); `Crossing` answers for one namespace about all the others (attribution.ends.ForeignEnds).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from bwmon.core.attribution.ends import SocketLookup
from bwmon.core.attribution.flows import FlowDelta, FlowTracker
from bwmon.core.model import ConntrackEntry, FlowKey, SocketEntry, Tuple5


class Place:
    """What the others need of one measured namespace."""

    def __init__(self, name: str, flows: FlowTracker,
                 addresses: Callable[[], frozenset[str]],
                 index: Callable[[], Awaitable[SocketLookup]] | None) -> None:
        self.name = name
        self.flows = flows
        self.addresses = addresses
        self._index = index
        self._tick = -1
        self.sockets: SocketLookup | None = None
        self._nat: set[FlowKey] | None = None  # reply tuples reversed, of NAT'd flows

    def new_tick(self) -> None:
        """Its table was read again: what was derived from the previous read is stale."""
        self._nat = None

    async def fetch(self, tick: int) -> None:
        """Its socket table, read once this tick (only when another namespace needs it)."""
        if self._tick != tick and self._index is not None:
            self._tick = tick
            self.sockets = await self._index()

    def tracks(self, entry: ConntrackEntry) -> bool:
        """Whether its table holds the connection `entry` (read elsewhere) is part of: by the
        same original tuple (no NAT between, or NAT here after the other read it), by the
        other's reversed reply (NAT there), or by this table's reversed reply (NAT here)."""
        e = entry
        keys = (FlowKey(e.family, e.protonum, e.zone, e.orig),
                FlowKey(e.family, e.protonum, e.zone, _back(e)))
        if any(self.flows.entry(k) is not None for k in keys):
            return True
        if self._nat is None:  # built once a tick, and only when asked
            self._nat = {FlowKey(x.family, x.protonum, x.zone, back)
                         for x in self.flows.entries() if (back := _back(x)) != x.orig}
        return any(k in self._nat for k in keys)


def _back(e: ConntrackEntry) -> Tuple5:
    """The reply tuple reversed: the original tuple as the reply's destination sent it."""
    return Tuple5(e.reply.dst, e.reply.src, e.reply.dport, e.reply.sport)


class Crossing:
    """The other measured namespaces, as one of them sees them (a ForeignEnds)."""

    def __init__(self, me: Place, by_address: dict[str, list[Place]]) -> None:
        self.me = me
        self._by_address = by_address

    def _places(self, address: str) -> Iterable[Place]:
        return (p for p in self._by_address.get(address, ()) if p is not self.me)

    def owns(self, address: str) -> bool:
        return any(True for _ in self._places(address))

    def tracks(self, entry: ConntrackEntry, initiator: bool) -> bool:
        address = entry.orig.src if initiator else entry.reply.src
        return any(p.tracks(entry) for p in self._places(address))

    def find(self, proto: str, local: str, lport: int, remote: str,
             rport: int) -> SocketEntry | None:
        for place in self._places(local):
            if place.sockets is not None:
                sock = place.sockets.find(proto, local, lport, remote, rport)
                if sock is not None:
                    return sock
        return None

    async def prepare(self, deltas: Sequence[FlowDelta], tick: int) -> None:
        """Read, once this tick, the socket tables of the namespaces these flows' foreign ends
        are in (none when no new flow crosses: the cost follows the traffic)."""
        wanted: dict[int, Place] = {}
        for d in deltas:
            for address in (d.entry.orig.src, d.entry.reply.src):
                for place in self._places(address):
                    wanted[id(place)] = place
        for place in wanted.values():
            await place.fetch(tick)


def by_address(places: Iterable[Place]) -> dict[str, list[Place]]:
    """Every measured namespace's non-loopback addresses, to the namespaces having each."""
    found: dict[str, list[Place]] = {}
    for place in places:
        for address in place.addresses():
            if not (address.startswith("127.") or address == "::1"):
                found.setdefault(address, []).append(place)
    return found
