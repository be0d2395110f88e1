"""Per-socket deltas (attribution.socket_flows) and one count per end (attribution.byte_merge)."""

from __future__ import annotations

from bwmon.core.attribution.byte_merge import MERGE_SECONDS, SWEEP_TICKS, ByteMerge
from bwmon.core.attribution.ends import EndKey, EndUsage
from bwmon.core.attribution.socket_flows import SocketDelta, SocketFlows, SocketUsage, usage_of
from bwmon.core.model import ByteSource, ConntrackEntry, SocketBytes, Tuple5


def sock(cookie: int, b_in: int, b_out: int, *, closed: bool = False, lport: int = 40000,
         inode: int = 7) -> SocketBytes:
    return SocketBytes(ByteSource.TCP_INFO, "tcp", 4, "10.0.0.1", lport, "10.0.0.2", 443,
                       cookie, 0 if closed else inode, 1000, b_in, b_out, 1, closed)


def sums(deltas: list[SocketDelta]) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    for d in deltas:
        c = d.state.sample.cookie
        was = out.get(c, (0, 0))
        out[c] = (was[0] + d.d_in, was[1] + d.d_out)
    return out


def test_first_read_is_a_baseline_without_lookback_and_counts_with_it() -> None:
    for lookback, want in ((False, (0, 0)), (True, (500, 70))):
        flows = SocketFlows(lookback=lookback)
        assert sums(flows.read([sock(1, 500, 70)], 1)) == {1: want}
        assert sums(flows.read([sock(1, 600, 75)], 2)) == {1: (100, 5)}


def test_a_socket_listed_then_closed_adds_only_its_tail() -> None:
    flows = SocketFlows(lookback=False)
    flows.read([], 1)
    assert sums(flows.read([sock(1, 16384, 65553)], 2)) == {1: (16384, 65553)}
    # the destroy broadcast's final counters: only what moved since the listing
    assert sums(flows.read([sock(1, 16385, 65554, closed=True)], 3)) == {1: (1, 1)}


def test_a_connection_seen_only_closed_counts_in_full_but_not_before_the_first_read() -> None:
    flows = SocketFlows(lookback=False)
    assert flows.read([sock(1, 10, 20, closed=True)], 1) == []  # from before bwmon
    assert sums(flows.read([sock(2, 300, 400, closed=True)], 2)) == {2: (300, 400)}


def test_a_stale_listing_after_the_close_and_a_late_close_count_nothing_twice() -> None:
    flows = SocketFlows(lookback=False)
    flows.read([], 1)
    flows.read([sock(1, 100, 100)], 2)
    # closed and, in the same read, listed by a dump taken just before
    assert sums(flows.read([sock(1, 150, 150), sock(1, 200, 200, closed=True)], 3)) == {
        1: (100, 100)}
    assert flows.read([sock(1, 150, 150)], 4) == []  # a later stale listing: ignored
    # a socket that left the listing, then its destroy broadcast handled late
    flows.read([sock(2, 10, 10)], 5)
    gone = flows.read([], 6)
    assert [(d.d_in, d.d_out, d.open) for d in gone] == [(0, 0, False)]
    assert sums(flows.read([sock(2, 30, 40, closed=True)], 7)) == {2: (20, 30)}


def test_a_socket_a_dump_missed_once_resumes_from_its_counters() -> None:
    flows = SocketFlows(lookback=False)
    flows.read([], 1)
    flows.read([sock(1, 100, 100)], 2)
    flows.read([], 3)
    assert sums(flows.read([sock(1, 130, 100)], 4)) == {1: (30, 0)}


def test_counters_never_give_a_negative_delta() -> None:
    flows = SocketFlows(lookback=True)
    flows.read([sock(1, 100, 100)], 1)
    assert sums(flows.read([sock(1, 90, 120)], 2)) == {1: (0, 20)}


def ct_usage(end: EndKey, d_in: int, d_out: int) -> EndUsage:
    entry = ConntrackEntry(4, "tcp", 6, Tuple5(end.local, end.remote, end.lport, end.rport),
                           Tuple5(end.remote, end.local, end.rport, end.lport), 1, 1, 1, 1)
    return EndUsage(entry, end, None, d_in, d_out, False, True)


def test_merge_counts_the_larger_of_conntrack_and_socket_per_end() -> None:
    flows = SocketFlows(lookback=False)
    flows.read([], 1)
    merge = ByteMerge(frozenset({"tcp"}))
    counted = 0
    # a flow seen by both: socket payload 1000/tick, conntrack IP bytes 1040/tick read late
    d = flows.read([sock(1, 1000, 0)], 2)[0]
    u = usage_of(d.state, d, None)
    merge.socket(u, 2)
    counted += u.d_in
    c = ct_usage(d.state.end, 1040, 0)
    merge.conntrack([c], 2)
    counted += c.d_in
    assert counted == 1040  # conntrack's IP bytes win, nothing twice
    d = flows.read([sock(1, 3000, 0)], 3)[0]  # conntrack not read this tick: socket fills in
    u = usage_of(d.state, d, None)
    merge.socket(u, 3)
    counted += u.d_in
    assert counted == 3000
    c = ct_usage(d.state.end, 2080, 0)  # the table read again: the rest of its IP bytes
    merge.conntrack([c], 4)
    counted += c.d_in
    assert counted == 3120


def test_merge_passes_ends_no_socket_source_measures() -> None:
    merge = ByteMerge(frozenset({"tcp"}))
    udp = EndKey("udp", "10.0.0.1", 5353, "10.0.0.2", 53)
    u = ct_usage(udp, 128, 0)
    merge.conntrack([u], 1)
    assert (u.d_in, len(merge)) == (128, 0)


def test_conntrack_bytes_of_another_namespaces_end_merge_with_that_namespaces_sockets() -> None:
    """The host's table counts a container's masqueraded flow (IP bytes) while the container's
    own socket counts it too (payload): merged in the container's ByteMerge, once."""
    host, box = ByteMerge(frozenset({"tcp"})), ByteMerge(frozenset({"tcp"}))
    end = EndKey("tcp", "10.88.0.2", 40000, "192.0.2.7", 443)
    s = SocketUsage(ct_usage(end, 0, 0).entry, end, None, 0, 1000, False, True)
    box.socket(s, 1)
    c = ct_usage(end, 0, 1040)
    host.conntrack([c], 1, {"10.88.0.2": box})
    assert (s.d_out + c.d_out, len(host), len(box)) == (1040, 0, 1)
    mine = ct_usage(EndKey("tcp", "10.0.0.1", 40001, "192.0.2.7", 443), 0, 500)
    host.conntrack([mine], 2, {"10.88.0.2": box})  # the host's own ends stay its own
    assert (mine.d_out, len(host)) == (500, 1)


def test_merge_forgets_an_end_idle_for_its_horizon_in_seconds_whatever_the_tick() -> None:
    """Ends are kept MERGE_SECONDS after they last moved, at 0.1 s ticks as at 5 s ones: the
    horizon must outlast the conntrack read spacing (seconds), not a count of ticks."""
    for interval in (0.1, 1.0, 5.0):
        merge = ByteMerge(frozenset({"tcp"}))
        idle = EndKey("tcp", "10.0.0.1", 40000, "10.0.0.2", 443)
        busy = EndKey("tcp", "10.0.0.1", 40001, "10.0.0.2", 443)
        merge.conntrack([ct_usage(idle, 100, 0)], 1)
        ticks = int(2 * MERGE_SECONDS / interval)
        kept_until = 0.0
        for tick in range(1, ticks + 1):
            now = tick * interval
            merge.conntrack([ct_usage(busy, 10, 0)], tick)
            merge.sweep(tick, now)
            if merge.conntrack_counted(idle):
                kept_until = now
        assert merge.conntrack_counted(busy)
        # forgotten between MERGE_SECONDS and one sweep period (SWEEP_TICKS ticks) later
        assert MERGE_SECONDS <= kept_until <= MERGE_SECONDS + (SWEEP_TICKS + 1) * interval, \
            (interval, kept_until)
        # a late conntrack delta of the forgotten end counts from nothing again: never negative
        late = ct_usage(idle, 40, 0)
        merge.conntrack([late], ticks + 1)
        assert late.d_in == 40
