"""The table's steady sort order: rows whose per-second figures jitter keep their places; a
clearly bigger row rises at once; a lead that holds two ticks wins; and whatever the history,
no row is ever below one it clearly beats."""

from __future__ import annotations

import random

from bwmon.tui.steady_order import MARGIN, MEAN_MARGIN, beats, steady_order


def order(now: dict[str, float], previous: list[str], before: dict[str, float] | None = None,
          descending: bool = True) -> list[str]:
    return steady_order(list(now), lambda n: n, now.__getitem__, previous, before or {},
                        descending)


def test_first_order_is_exact_with_ties_by_name() -> None:
    assert order({"b": 5.0, "a": 5.0, "c": 9.0}, []) == ["c", "a", "b"]
    assert order({"b": 5.0, "a": 5.0, "c": 9.0}, [], descending=False) == ["a", "b", "c"]


def test_figures_that_take_turns_leave_the_rows_in_place() -> None:
    """Two apps moving the same traffic, one ahead on even seconds, the other on odd ones:
    an exact sort swaps them every tick; here they stay."""
    shown = ["alpha", "beta"]
    figures = {"alpha": 1000.0, "beta": 1000.0}
    for tick in range(8):
        before = figures
        figures = {"alpha": 900.0, "beta": 1200.0} if tick % 2 else {
            "alpha": 1200.0, "beta": 900.0}
        shown = order(figures, shown, before)
        assert shown == ["alpha", "beta"]


def test_a_clearly_bigger_row_rises_at_once() -> None:
    assert order({"a": 100.0, "b": 100.0 * (1 + MARGIN) + 1}, ["a", "b"],
                 {"a": 100.0, "b": 1.0}) == ["b", "a"]
    # ascending: clearly smaller rises
    assert order({"a": 100.0 * (1 + MARGIN) + 1, "b": 100.0}, ["a", "b"],
                 {"a": 1.0, "b": 100.0}, descending=False) == ["b", "a"]


def test_a_small_lead_wins_when_it_holds_for_two_ticks() -> None:
    shown = order({"a": 1000.0, "b": 1100.0}, ["a", "b"], {"a": 1000.0, "b": 1000.0})
    assert shown == ["a", "b"]  # one tick ahead: not yet
    assert order({"a": 1000.0, "b": 1100.0}, shown, {"a": 1000.0, "b": 1100.0}) == ["b", "a"]


def test_new_rows_take_their_exact_place() -> None:
    assert order({"a": 10.0, "b": 5.0, "new": 50.0}, ["a", "b"]) == ["new", "a", "b"]
    assert order({"a": 10.0, "b": 5.0, "new": 1.0}, ["a", "b"]) == ["a", "b", "new"]


def test_no_row_is_ever_below_one_it_beats() -> None:
    """Random figures and histories: every pair in the result is allowed by `beats`."""
    rng = random.Random(4)
    names = [f"app-{i}" for i in range(30)]
    shown: list[str] = []
    before: dict[str, float] = {}
    for _ in range(200):
        now = {n: rng.choice([0.0, rng.uniform(0, 2000), rng.uniform(900, 1100)])
               for n in names if rng.random() < 0.9}
        descending = rng.random() < 0.8
        shown_now = order(now, shown, before, descending)
        assert sorted(shown_now) == sorted(now)
        for i, upper in enumerate(shown_now):
            for lower in shown_now[i + 1:]:
                assert not beats(now[lower], now[upper], before.get(lower),
                                 before.get(upper), descending), (upper, lower)
        shown, before = shown_now, now


def test_five_second_means_keep_jittering_rows_still_where_single_seconds_cannot() -> None:
    """Twelve apps moving the same traffic, each second off by up to ±35 % at random. The
    single-second rule (a lead on two ticks in a row wins) still moves most rows every
    update; ordering by 5-second means with the MEAN_MARGIN dead band moves few."""
    rng = random.Random(3)
    names = [f"app-{i:02d}" for i in range(12)]
    history: dict[str, list[float]] = {n: [] for n in names}
    by_second: list[str] = []
    by_mean: list[str] = []
    before: dict[str, float] = {}
    moved = {"second": 0, "mean": 0}
    for tick in range(36):
        now = {n: 100_000.0 * rng.uniform(0.65, 1.35) for n in names}
        for n in names:
            history[n].append(now[n])
        means = {n: sum(history[n][-5:]) / len(history[n][-5:]) for n in names}
        second = order(now, by_second, before)
        mean = steady_order(names, lambda n: n, means.__getitem__, by_mean, {}, True,
                            MEAN_MARGIN)
        if tick >= 6:
            moved["second"] += sum(a != b for a, b in zip(by_second, second, strict=True))
            moved["mean"] += sum(a != b for a, b in zip(by_mean, mean, strict=True))
        by_second, by_mean, before = second, mean, now
    assert moved["second"] > 30 * 8, moved  # most of the 12 rows, every update
    assert moved["mean"] < moved["second"] / 2, moved
