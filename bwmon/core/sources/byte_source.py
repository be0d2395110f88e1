"""The interface of a per-socket byte source: how socket counters reach the engine.

A per-socket byte source measures bytes where no conntrack accounting does (a stock server: no
conntrack rule, `nf_conntrack_acct=0`). bwmon has one (TCP's tcp_info through sock_diag,
`sources.tcp_counters`); the eBPF byte sums per socket (UDP and the rest) plug in the same way:

    engine.add_socket_source(source)      # before Engine.run()

Each tick the engine awaits `source.read()` once, beside the conntrack read, and expects:

- every socket the source measures now, with its cumulative counters since the socket was
  created (`SocketBytes`, closed=False): a full view, not a diff. A socket of `protos`
  that was listed before and is neither listed again nor reported closed is taken as gone,
  with the counters last read (its bytes since that read are lost: report closes);
- the final counters of every socket that closed since the previous read (closed=True), if
  the source learns them (sock_diag's destroy broadcast; an eBPF map entry kept until read).
  A socket may appear first, and only, closed: a 1 ms connection is counted in full;
- or None when the source cannot read this tick (the reason is in `status()`).

Everything else is the engine's: deltas per socket (a new cookie is a new socket, a counter
never goes backwards), the first tick as a baseline unless `general.lookback`, owners
(`owner` if the source knows it, else the inode through /proc/PID/fd, else the owner memory
that eBPF sightings and conntrack events feed, else `(unattributed)` with the socket's uid),
and one count per flow: where conntrack counts a flow with accounting on, its IP bytes win and
the socket's payload bytes only fill in the rates between two conntrack reads.

A source answers for the network namespace it was opened in: open its kernel handles (netlink
sockets, BPF maps) in the namespace to measure, e.g. from a thread that `setns()`-ed there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bwmon.core.model import SocketBytes, SourceStatus


class SocketByteSource(Protocol):
    """A source of per-socket cumulative byte counters (see the module docstring)."""

    @property
    def protos(self) -> frozenset[str]:
        """The protocols it measures ("tcp", "udp", ...): the header says which are measured."""
        ...

    async def read(self) -> Sequence[SocketBytes] | None:
        """Every socket measured now, and final counters of those closed since the last read."""
        ...

    def status(self) -> SourceStatus:
        """Whether it measures now, and what (shown with the other sources)."""
        ...

    async def close(self) -> None:
        """Release kernel handles (netlink sockets, maps, probes); called once at the end."""
        ...
