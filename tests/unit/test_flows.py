"""Per-flow deltas: reset safety, lookback, DESTROY final counters without double counting."""

from __future__ import annotations

from bwmon.core.attribution.flows import FlowTracker
from bwmon.core.model import ConntrackEntry
from tests.helpers.factories import conntrack_entry


def entry(
    sport: int, orig: int | None, reply: int | None, ct_id: int | None = None
) -> ConntrackEntry:
    return conntrack_entry("10.0.0.1", sport, "10.0.0.2", 80, orig, reply, ct_id=ct_id)


def sums(deltas: list) -> tuple[int, int]:
    return sum(d.d_orig for d in deltas), sum(d.d_reply for d in deltas)


def test_deltas_between_reads() -> None:
    t = FlowTracker(lookback=True)
    assert sums(t.update([entry(1, 100, 50)], 1)) == (100, 50)
    assert sums(t.update([entry(1, 160, 80)], 2)) == (60, 30)
    assert sums(t.update([entry(1, 160, 80)], 3)) == (0, 0)


def test_no_lookback_takes_first_read_as_baseline_but_counts_later_flows_whole() -> None:
    t = FlowTracker(lookback=False)
    assert sums(t.update([entry(1, 1000, 500)], 1)) == (0, 0)
    assert sums(t.update([entry(1, 1100, 500), entry(2, 40, 60)], 2)) == (100 + 40, 60)


def test_counter_drop_means_new_flow_never_negative() -> None:
    t = FlowTracker(lookback=True)
    t.update([entry(1, 5000, 5000)], 1)
    d = t.update([entry(1, 300, 10)], 2)
    assert sums(d) == (300, 10)
    assert all(x.d_orig >= 0 and x.d_reply >= 0 for x in d)


def test_reappearing_tuple_after_vanishing_counts_from_zero() -> None:
    t = FlowTracker(lookback=True)
    t.update([entry(1, 5000, 5000)], 1)
    t.update([], 2)
    assert sums(t.update([entry(1, 700, 20)], 3)) == (700, 20)


def test_changed_conntrack_id_is_a_new_flow() -> None:
    t = FlowTracker(lookback=True)
    t.update([entry(1, 100, 100, ct_id=7)], 1)
    assert sums(t.update([entry(1, 150, 120, ct_id=8)], 2)) == (150, 120)


def test_flow_without_counters_counts_nothing_but_is_seen() -> None:
    t = FlowTracker(lookback=True)
    d = t.update([entry(1, None, None)], 1)
    assert len(d) == 1 and sums(d) == (0, 0)


def test_destroy_adds_bytes_moved_after_last_read() -> None:
    t = FlowTracker(lookback=True)
    t.update([entry(1, 100, 100)], 1)
    fin = t.finish([entry(1, 400, 900)], 2)
    assert sums(fin) == (300, 800) and not fin[0].open
    # the next read no longer has it: nothing more
    assert sums(t.update([], 2)) == (0, 0)


def test_stale_read_after_destroy_is_not_double_counted() -> None:
    t = FlowTracker(lookback=True)
    t.update([entry(1, 100, 100)], 1)
    # DESTROY handled first, then a read that was taken just before the flow ended
    fin = t.finish([entry(1, 400, 900)], 2)
    again = t.update([entry(1, 350, 800)], 2)
    assert sums(fin) + sums(again) == (300, 800, 0, 0)


def test_flow_living_between_two_reads_counts_through_destroy() -> None:
    t = FlowTracker(lookback=False)
    t.update([], 1)
    assert sums(t.finish([entry(9, 1234, 5678)], 2)) == (1234, 5678)
    # a duplicate DESTROY report is ignored
    assert sums(t.finish([entry(9, 1234, 5678)], 2)) == (0, 0)


def test_destroy_after_the_flow_left_the_table_adds_only_the_rest() -> None:
    # an expired UDP flow: the read that expires it no longer lists it, its DESTROY comes after
    t = FlowTracker(lookback=True)
    assert sums(t.update([entry(1, 100, 40)], 1)) == (100, 40)
    assert sums(t.update([], 2)) == (0, 0)
    assert sums(t.finish([entry(1, 130, 40)], 3)) == (30, 0)
    assert sums(t.finish([entry(1, 130, 40)], 3)) == (0, 0)  # reported twice: once


def test_vanished_tuple_reused_by_a_new_flow_counts_the_new_one_whole() -> None:
    t = FlowTracker(lookback=True)
    t.update([entry(1, 5000, 5000)], 1)
    t.update([], 2)
    assert sums(t.finish([entry(1, 70, 10)], 3)) == (70, 10)
