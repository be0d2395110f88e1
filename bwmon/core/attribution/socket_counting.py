"""One network namespace's socket byte counts as rows' usages: owners found, each flow once.

The engine has one for bwmon's own namespace, each namespace meter one for its namespace. It
takes the per-socket deltas of a tick (attribution.socket_flows) and finds each socket's owner:
the source's own (eBPF), the watch's (a cheap dump between ticks that names the owners of
sockets too short-lived for a tick, `watch`), the socket's inode through /proc/PID/fd, else
the owner memory conntrack and discovery feed. Bytes are merged with conntrack's per end
(attribution.byte_merge): where that namespace's conntrack counts the flow with accounting on,
its IP bytes win. Bytes of a socket whose owner is unknown wait a few ticks when conntrack or
an eBPF sighting may still name it, then go to `(unattributed)`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping

from bwmon.core.attribution.byte_merge import ByteMerge
from bwmon.core.attribution.ends import EndKey, EndUsage
from bwmon.core.attribution.socket_flows import SocketDelta, SocketState, usage_of
from bwmon.core.model import ProcKey

# A socket whose owner is unknown is looked up by inode again after this many ticks.
SOCKET_RETRY_TICKS = 5
# When the watch found the owner of none of the last WATCH_RECORD // 2 (or more) sockets seen
# only closed (all were too short for it, e.g. 1 ms requests), it looks WATCH_BACKOFF times
# less often, until it finds one again.
WATCH_RECORD = 40
WATCH_BACKOFF = 10
WATCH_KEEP = 200  # watches an owner found for a socket no longer listed is kept
# Bytes of a socket with no known owner wait this many ticks (at most PENDING_MAX sockets) for
# conntrack to count its flow with an owner (events, or a lookup made while it was open), or
# for its eBPF sighting.
PENDING_TICKS = 3
PENDING_MAX = 20_000

Owners = Callable[[set[int], set[int] | None], Awaitable[Mapping[int, ProcKey]]]
Usages = tuple[list[EndUsage], list[EndUsage], list[tuple[EndUsage, EndUsage]]]


class SocketCounting:
    """Owners and one-count-per-flow for one namespace's socket deltas."""

    def __init__(self, merge: ByteMerge, shares: dict[str, int]) -> None:
        self.merge = merge
        self.shares = shares  # bytes counted per byte source (shared by all namespaces)
        self.cookie_owner: dict[int, tuple[ProcKey, int]] = {}  # cookie -> (owner, watch)
        self.watch_record: deque[bool] = deque(maxlen=WATCH_RECORD)  # found the closing's owner
        # socket bytes of unknown owner held while conntrack may count them with an owner
        self.pending: dict[EndKey, tuple[SocketState, int, int, int, bool]] = {}
        self._known: dict[int, tuple[int, bytes]] = {}
        self._watches = 0

    def backing_off(self) -> bool:
        """Every closing the watch was for lived too short for it: look less often."""
        record = self.watch_record
        return len(record) >= WATCH_RECORD // 2 and not any(record)

    async def watch(self, now: dict[int, tuple[int, bytes]], owners: Owners,
                    remember: Callable[[EndKey, ProcKey], None]) -> None:
        """One look at the namespace's connected sockets (sock_diag.dump_tcp_inodes): owners
        of the new ones, by cookie; conntrack's view of the same flow learns them too."""
        from bwmon.core.sources.sock_diag import end_of

        self._watches += 1
        new = {c: i for c, i in now.items() if c not in self._known}
        self._known = now
        if new:
            found = await owners({inode for inode, _ in new.values()}, None)
            for cookie, (inode, head) in new.items():
                owner = found.get(inode)
                if owner is not None:
                    self.cookie_owner[cookie] = (owner, self._watches)
                    remember(EndKey("tcp", *end_of(head)), owner)
        if self._watches % WATCH_KEEP == 0:
            self.cookie_owner = {c: v for c, v in self.cookie_owner.items()
                                 if c in now or self._watches - v[1] < WATCH_KEEP}

    async def usages(self, deltas: Iterable[SocketDelta], tick: int, *, owners: Owners,
                     memory: Callable[[EndKey], ProcKey | None],
                     remember: Callable[[EndKey, ProcKey], None],
                     ct_counts: bool, ct_tracks: bool,
                     sighted: Callable[[ProcKey, str, int], None] | None = None,
                     sightings: bool = False) -> Usages:
        """The sockets' deltas as end usages: new ones, previous ones that end, and pairs of
        (previous, new) usages of sockets whose counters moved (accounting's cheap case).
        `ct_counts`: the namespace's conntrack counts bytes; `ct_tracks`: it tracks flows.
        `sighted` learns what the kernel said of an owner a source names (eBPF: its comm), for
        when it has exited; `sightings`: eBPF sightings reach owner memory (from the discovery
        worker, a few ms after a socket's first send), so an ownerless socket waits for its."""
        deltas = list(deltas)
        inodes: set[int] = set()
        uids: set[int] = set()
        for d in deltas:
            st = d.state
            sample = st.sample
            if sighted is not None and sample.comm and sample.owner is not None:
                sighted(sample.owner, sample.comm, sample.uid)
            if st.owner is None:
                watched = self.cookie_owner.get(sample.cookie)
                if sample.owner is not None:
                    st.owner = sample.owner
                elif watched is not None:
                    st.owner = watched[0]
                elif sample.inode and tick - st.tried >= SOCKET_RETRY_TICKS:
                    st.tried = tick
                    inodes.add(sample.inode)
                    uids.add(sample.uid)
        found = await owners(inodes, uids) if inodes else {}
        added: list[EndUsage] = []
        closed: list[EndUsage] = []
        replaced: list[tuple[EndUsage, EndUsage]] = []
        merge = self.merge.socket
        pending_ok = self.merge.protos
        shares = self.shares
        pending = self.pending
        cookie_owner = self.cookie_owner

        def emit(st: SocketState, d_in: int, d_out: int, is_open: bool,
                 owner: ProcKey | None) -> None:
            # where conntrack tracks flows, its entries are the open connections rows count
            # and list: a socket's usage then only adds bytes (else each would count twice)
            is_open = is_open and not ct_tracks
            if not is_open and st.usage is None and not (d_in or d_out):
                return
            u = usage_of(st, SocketDelta(st, d_in, d_out, is_open), owner)
            merge(u, tick)
            if u.d_in or u.d_out:
                orig = st.entry.orig
                if not u.loopback or (st.end.local == orig.src and st.end.lport == orig.sport):
                    shares[u.source.value] = shares.get(u.source.value, 0) + u.d_in + u.d_out
            old = st.usage
            if old is None:
                added.append(u)
            elif old.owner == owner and is_open:
                replaced.append((old, u))
            else:
                closed.append(old)
                added.append(u)
            st.usage = u if is_open else None

        for d in deltas:
            st = d.state
            if st.owner is None and st.sample.inode:
                st.owner = found.get(st.sample.inode)
                if st.owner is not None:
                    remember(st.end, st.owner)
            if ct_counts and not st.end.remote and (d.d_in or d.d_out):
                # an unconnected socket (a UDP server): its bytes are those of many flows,
                # which conntrack counts one by one: not merged per end, so not counted twice
                d.d_in = d.d_out = 0
            if not d.open and st.tried < 0 and (d.d_in or d.d_out):
                # seen only closed (never at a tick with its inode): the watch's to find
                self.watch_record.append(st.sample.cookie in cookie_owner)
            owner = st.owner if st.owner is not None else memory(st.end)
            if (owner is None and (d.d_in or d.d_out) and st.end.proto in pending_ok
                    and (ct_counts or sightings or (d.open and not st.sample.inode))):
                # its owner may still be learnt: a socket in a listener's accept queue (inode
                # 0) once accepted; with conntrack counting too, conntrack's own lookup (events,
                # made while the socket was open); with eBPF, its sighting on the way from the
                # discovery worker. Wait a few ticks before (unattributed).
                was = pending.get(st.end)
                pending[st.end] = ((st, was[1] + d.d_in, was[2] + d.d_out, was[3], d.open)
                                   if was is not None else (st, d.d_in, d.d_out, tick, d.open))
                continue
            was = pending.pop(st.end, None) if pending else None
            if was is not None and was[0] is st:  # bytes held before, now with an owner
                emit(st, d.d_in + was[1], d.d_out + was[2], d.open, owner)
            else:
                emit(st, d.d_in, d.d_out, d.open, owner)
        for end, (st, d_in, d_out, first, is_open) in list(pending.items()):
            if st.owner is None and (watched := cookie_owner.get(st.sample.cookie)):
                st.owner = watched[0]
            owner = st.owner if st.owner is not None else memory(end)
            if ct_counts and self.merge.conntrack_counted(end):  # conntrack counts it
                del pending[end]
                if not is_open and st.usage is not None:
                    closed.append(st.usage)
                    st.usage = None
                # with its own owner lookup; the held bytes still go through the merge: where
                # conntrack began counting the flow late (tracking switched on mid-way), what
                # its socket counted beyond conntrack's figure is counted once, not lost
                extra = usage_of(st, SocketDelta(st, d_in, d_out, False), owner)
                merge(extra, tick)
                if extra.d_in or extra.d_out:
                    shares[extra.source.value] = (shares.get(extra.source.value, 0)
                                                  + extra.d_in + extra.d_out)
                    added.append(extra)
            elif (owner is not None or tick - first >= PENDING_TICKS
                  or len(pending) > PENDING_MAX):
                del pending[end]
                emit(st, d_in, d_out, is_open, owner)
        return added, closed, replaced
