"""Per-socket byte deltas from successive reads of a per-socket byte source, as end usages.

A pure step, like attribution.flows for conntrack: it keeps each socket's counters (by cookie)
and turns every read (a full view plus the final counters of closed sockets, see
bwmon.core.sources.byte_source) into deltas. Deltas are never negative; the first read is a
baseline unless `lookback`; sockets first seen later count in full (they began after bwmon
started), and so do sockets seen only closed (a 1 ms connection). A socket that leaves the
listing without a close is kept VANISHED_TICKS ticks, so a destroy broadcast handled late adds
only what it moved since; a closed cookie listed again (a dump taken before the close was
handled) is ignored for TOMBSTONE_TICKS ticks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from bwmon.core.attribution.ends import EndKey, EndUsage, is_loopback
from bwmon.core.model import ByteSource, ConntrackEntry, ProcKey, SocketBytes, Tuple5

TOMBSTONE_TICKS = 5
VANISHED_TICKS = 5
PROTONUM = {"tcp": 6, "udp": 17}
TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING"}


@dataclass(slots=True)
class SocketUsage(EndUsage):
    """An end usage measured by a socket's own counters: payload bytes, not IP packets."""

    payload: ClassVar[bool] = True
    source: ByteSource = ByteSource.TCP_INFO
    uid: int = -1


@dataclass(slots=True)
class SocketState:
    """What is kept of one socket between reads: its counters and where they are counted."""

    sample: SocketBytes  # the latest read of it
    bytes_in: int  # counters already counted (or the baseline)
    bytes_out: int
    end: EndKey
    entry: ConntrackEntry  # a flow record standing for the socket (for rows and the host total)
    owner: ProcKey | None = None
    tried: int = -1_000_000  # tick of the last owner lookup by inode
    usage: SocketUsage | None = None  # the open usage counted in the rows


@dataclass(slots=True)
class SocketDelta:
    """Bytes a socket moved since the previous read; `open` False once it closed or left."""

    state: SocketState
    d_in: int
    d_out: int
    open: bool


def _state(s: SocketBytes, base_in: int, base_out: int) -> SocketState:
    end = EndKey(s.proto, s.local, s.lport, s.remote, s.rport)
    # The record's original direction runs from the end that most likely opened the flow:
    # the one with the higher port (a client's ephemeral port; a server listens on a lower
    # one), ties by address. One of a loopback flow's two sockets counts it in the host total
    # (accounting counts the end equal to orig.src), so that end's in and out are the host's,
    # as conntrack's initiator's are; the smaller end made an upload read as download.
    a, b = (s.local, s.lport), (s.remote, s.rport)
    src, dst = (a, b) if (a[1], a[0]) >= (b[1], b[0]) else (b, a)
    entry = ConntrackEntry(
        s.family, s.proto, PROTONUM.get(s.proto, 0), Tuple5(src[0], dst[0], src[1], dst[1]),
        Tuple5(dst[0], src[0], dst[1], src[1]),
        state=TCP_STATES.get(s.state) if s.proto == "tcp" else None)
    return SocketState(s, base_in, base_out, end, entry, s.owner)


class SocketFlows:
    """Turns the reads of one per-socket byte source into per-socket deltas."""

    def __init__(self, *, lookback: bool) -> None:
        self.lookback = lookback
        self._socks: dict[int, SocketState] = {}
        self._tombstones: dict[int, int] = {}  # cookie -> tick it closed
        self._vanished: dict[int, tuple[SocketState, int]] = {}
        self._reads = 0

    def __len__(self) -> int:
        return len(self._socks)

    def states(self) -> list[SocketState]:
        """The sockets listed at the last read (and those a dump missed for a while)."""
        return [*self._socks.values(), *(v[0] for v in self._vanished.values())]

    def read(self, samples: Sequence[SocketBytes], tick: int) -> list[SocketDelta]:
        """Deltas of one read: sockets whose counters moved, new ones, and those that ended."""
        count_new = self.lookback or self._reads > 0
        self._reads += 1
        socks, stones = self._socks, self._tombstones
        out: list[SocketDelta] = []
        closed: list[SocketBytes] = []
        listed: set[int] = set()
        for s in samples:
            if s.closed:
                closed.append(s)
                continue
            cookie = s.cookie
            listed.add(cookie)
            old = socks.get(cookie)
            if old is not None and old.sample is s:
                continue  # the source handed back last read's record: nothing moved
            if cookie in stones:
                listed.discard(cookie)
                continue  # listed by a dump taken before its close was handled
            if old is None and cookie in self._vanished:  # a dump missed it for a while
                old = socks[cookie] = self._vanished.pop(cookie)[0]
            if old is None:
                st = socks[cookie] = _state(s, s.bytes_in, s.bytes_out)
                if count_new:  # opened since the previous read: all of it is new
                    out.append(SocketDelta(st, s.bytes_in, s.bytes_out, True))
                else:  # the first read is a baseline
                    out.append(SocketDelta(st, 0, 0, True))
                continue
            if s.bytes_in == old.bytes_in and s.bytes_out == old.bytes_out:
                if s.inode != old.sample.inode:
                    old.sample = s
                continue
            d_in, d_out = s.bytes_in - old.bytes_in, s.bytes_out - old.bytes_out
            old.bytes_in, old.bytes_out = max(s.bytes_in, old.bytes_in), max(s.bytes_out,
                                                                            old.bytes_out)
            old.sample = s
            out.append(SocketDelta(old, max(d_in, 0), max(d_out, 0), True))
        ended = {s.cookie for s in closed}
        for cookie in socks.keys() - listed - ended:
            st = socks.pop(cookie)
            self._vanished[cookie] = (st, tick)
            out.append(SocketDelta(st, 0, 0, False))
        for s in closed:
            out.extend(self._close(s, tick, count_new))
        self._expire(tick)
        return out

    def _close(self, s: SocketBytes, tick: int, count_new: bool) -> list[SocketDelta]:
        cookie = s.cookie
        if cookie in self._tombstones:
            return []
        self._tombstones[cookie] = tick
        st = self._socks.pop(cookie, None)
        if st is None:
            vanished = self._vanished.pop(cookie, None)
            if vanished is not None:
                st = vanished[0]
            elif count_new:
                st = _state(s, 0, 0)  # opened and closed between two reads
            else:
                return []  # closed before the first read: its bytes are from before bwmon
        d_in, d_out = max(s.bytes_in - st.bytes_in, 0), max(s.bytes_out - st.bytes_out, 0)
        st.bytes_in, st.bytes_out = max(s.bytes_in, st.bytes_in), max(s.bytes_out, st.bytes_out)
        if st.owner is None:
            st.owner = s.owner
        st.sample = s
        return [SocketDelta(st, d_in, d_out, False)]

    def _expire(self, tick: int) -> None:
        if self._tombstones:
            self._tombstones = {c: t for c, t in self._tombstones.items()
                                if tick - t < TOMBSTONE_TICKS}
        if self._vanished:
            self._vanished = {c: v for c, v in self._vanished.items()
                              if tick - v[1] < VANISHED_TICKS}


def usage_of(st: SocketState, d: SocketDelta, owner: ProcKey | None) -> SocketUsage:
    """The end usage of one socket delta (payload bytes, the socket's own direction)."""
    end = st.end
    loop = is_loopback(end.local) or end.local == end.remote
    return SocketUsage(st.entry, end, owner, d.d_in, d.d_out, loop, d.open,
                       source=st.sample.source, uid=st.sample.uid)
