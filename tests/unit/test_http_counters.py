"""Monotonic per-name counters behind `/metrics`: resets, gaps, the label cap and expiry."""

from __future__ import annotations

from bwmon.http.counters import OTHER, MonotonicCounters


def values(c: MonotonicCounters) -> dict[str, tuple[int, int]]:
    return {name: (i, o) for name, i, o in c.items()}


def test_growing_totals_are_exported_as_is() -> None:
    c = MonotonicCounters()
    c.update(1.0, [("web", 100, 10)])
    c.update(2.0, [("web", 250, 30)])
    assert values(c) == {"web": (250, 30)}


def test_a_restart_from_zero_never_makes_the_counter_go_down() -> None:
    c = MonotonicCounters()
    c.update(1.0, [("pipe", 1000, 500)])
    c.update(2.0, [("pipe", 200, 50)])  # the child restarted and counts from 0 again
    c.update(3.0, [("pipe", 300, 80)])
    assert values(c) == {"pipe": (1300, 580)}


def test_a_row_that_vanishes_and_returns_is_not_counted_twice() -> None:
    c = MonotonicCounters()
    c.update(1.0, [("curl", 100, 1)])
    c.update(2.0, [])
    c.update(3.0, [("curl", 160, 2)])  # the engine kept its total while it was gone
    assert values(c) == {"curl": (160, 2)}


def test_names_beyond_the_cap_share_the_other_series() -> None:
    c = MonotonicCounters(cap=2)
    c.update(1.0, [("a", 10, 0), ("b", 20, 0), ("c", 30, 0), ("d", 40, 0)])
    c.update(2.0, [("a", 11, 0), ("b", 20, 0), ("c", 35, 0), ("d", 40, 0)])
    assert values(c) == {"a": (11, 0), "b": (20, 0), OTHER: (75, 0)}


def test_expired_names_free_their_place() -> None:
    c = MonotonicCounters(cap=1, expire=10.0)
    c.update(0.0, [("old", 5, 5)])
    c.update(20.0, [("new", 7, 0)])  # "old" unseen for 20 s > 10 s: its place goes to "new"
    c.update(21.0, [("new", 9, 0)])
    assert values(c) == {"new": (9, 0)}
