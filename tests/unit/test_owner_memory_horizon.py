"""Owner memory's horizon: short enough to stay small under churn, long enough that a flow
whose socket closed keeps its owner while the table holds it and for a late DESTROY after."""

from __future__ import annotations

from bwmon.core.attribution.attributor import (
    MEMORY_TICKS,
    PORT_MEMORY_TICKS,
    SWEEP_TICKS,
    Attributor,
    EndKey,
)
from bwmon.core.attribution.flows import VANISHED_TICKS, FlowDelta
from bwmon.core.model import ProcKey
from tests.helpers.factories import conntrack_entry as flow
from tests.helpers.factories import socket_entry as sock
from tests.unit.test_attribution import LOCAL, FakeSockets

CLIENT = ProcKey(100, 1)
END = EndKey("tcp", "192.0.2.10", 40000, "198.51.100.7", 443)


def _sweep_to(attr: Attributor, start: int, stop: int) -> None:
    """Ticks without traffic from `start` to `stop` (owner memory is swept on its schedule)."""
    for tick in range(start, stop):
        attr.attribute([], {}, tick)


def test_a_closed_flow_keeps_its_owner_in_the_table_and_for_a_late_destroy() -> None:
    attr = Attributor()
    entry = flow("192.0.2.10", 40000, "198.51.100.7", 443, 100, 1000)
    matches, _, _ = attr.match([FlowDelta(entry, 100, 1000)],
                               FakeSockets([sock("192.0.2.10", 40000, "198.51.100.7", 443, 5)]),
                               LOCAL)
    attr.cache.store(matches, attr.attribute(matches, {5: CLIENT}, 1))
    # TIME_WAIT: the socket is gone, the flow stays in the table (and the cache) for 400 ticks
    _sweep_to(attr, 2, 400)
    assert attr.owner_of(END) == CLIENT
    # it leaves the table just before a sweep (its end last refreshed SWEEP_TICKS - 1 ago)
    left = 400 + SWEEP_TICKS - 1
    attr.cache.plan([], [entry.key], lambda key: None, left)
    _sweep_to(attr, left, left + VANISHED_TICKS)
    late = FlowDelta(flow("192.0.2.10", 40000, "198.51.100.7", 443, 150, 1500), 50, 500,
                     open=False)  # its DESTROY event, handled as late as the flow is known
    matches, _, _ = attr.match([late], FakeSockets(), LOCAL)
    usage = attr.attribute(matches, {}, left + VANISHED_TICKS)[0]
    assert usage.owner == CLIENT and usage.d_in == 500
    # and then it is forgotten: within a sweep of MEMORY_TICKS after that last use
    _sweep_to(attr, left + VANISHED_TICKS + 1, left + VANISHED_TICKS + MEMORY_TICKS
              + SWEEP_TICKS + 1)
    assert attr.owner_of(END) is None and len(attr) == 0


def test_remembered_ends_under_churn_stay_within_the_horizon() -> None:
    """eBPF reports 20 new ends a tick whose flows come and go: what is remembered follows
    the horizon, not the running time (the old 300-tick horizon kept five times as many)."""
    attr = Attributor()
    peak = 0
    for tick in range(1, 1000):
        for i in range(20):
            end = EndKey("tcp", "127.0.0.1", 10000 + (tick * 20 + i) % 50000, "127.0.0.1", 7001)
            attr.remember(end, CLIENT, tick)
        attr.attribute([], {}, tick)
        peak = max(peak, len(attr))
    assert peak <= 20 * (MEMORY_TICKS + SWEEP_TICKS + 1)
    assert peak < 20 * 300 // 2


def test_a_port_end_learnt_once_keeps_the_long_horizon() -> None:
    """An unconnected socket seen once by eBPF stands for its port; flows never refresh it."""
    attr = Attributor()
    port = EndKey("udp", "", 5353, "", 0)
    attr.remember(port, CLIENT, 1)
    _sweep_to(attr, 2, PORT_MEMORY_TICKS - SWEEP_TICKS)
    assert attr.owner_of(port) == CLIENT
    _sweep_to(attr, PORT_MEMORY_TICKS - SWEEP_TICKS, PORT_MEMORY_TICKS + 2 * SWEEP_TICKS)
    assert attr.owner_of(port) is None
