"""A flow's local ends and the bytes each moved: the vocabulary of attribution.

An end is a flow seen from one local socket (proto, local address and port, remote address
and port). Kept apart from the attribution steps so the owner cache can use them too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, NamedTuple, Protocol

from bwmon.core.attribution.flows import FlowDelta
from bwmon.core.model import ConntrackEntry, ProcKey, SocketEntry


class ForeignEnds(Protocol):
    """Flow ends local to another measured network namespace (bwmon.core.namespaces.crossing):
    the engine's namespace sees a container's NAT'd or forwarded flow, or a flow to a process in
    another namespace."""

    def owns(self, address: str) -> bool:
        """Whether `address` is local to a measured namespace other than this one."""

    def tracks(self, entry: ConntrackEntry, initiator: bool) -> bool:
        """Whether the namespace of that end counts the same connection in its own table."""

    def find(self, proto: str, local: str, lport: int, remote: str,
             rport: int) -> SocketEntry | None:
        """That end's socket in its namespace (read this tick), if any."""


class SocketLookup(Protocol):
    """The socket table as attribution asks it (bwmon.core.sources.socket_table.SocketIndex)."""

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


@dataclass(slots=True)
class EndUsage:
    """Bytes one local end (or a forwarded flow) moved this tick, and who owns it.

    Not frozen for one reason: the owner cache updates a steady flow's usages in place
    (entry and bytes; see FlowOwners.plan) instead of making new ones every tick.
    `payload` says what the bytes are: conntrack's whole IP packets here, a socket's payload
    in attribution.socket_flows.SocketUsage.
    """

    payload: ClassVar[bool] = False

    entry: ConntrackEntry
    end: EndKey | None  # None: forwarded (no local end)
    owner: ProcKey | None  # None: unattributed (or forwarded)
    d_in: int
    d_out: int
    loopback: bool  # local traffic: both ends local (here, or in another measured namespace)
    open: bool
    # a flow with no local end here that another measured namespace counts with its own end
    # (a container's NAT'd flow the container tracks): counted in no row and not in the host
    elsewhere: bool = False


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
class Match:
    """A flow delta's local end and the socket found for it (one lookup's result)."""

    delta: FlowDelta
    end: EndKey | None
    initiator: bool
    socket: SocketEntry | None
    listener: SocketEntry | None = None  # for a TCP end not accepted yet
    firm: bool = False  # the owner came from the socket itself (not memory or the listener)
    local_pair: bool = False  # both ends are local to measured namespaces (local traffic)
    elsewhere: bool = False  # no end here; another namespace counts the flow
