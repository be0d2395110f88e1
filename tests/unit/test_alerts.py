"""Alert evaluation on synthetic timelines: averaging, crossing, hysteresis, cooldown, matching."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

import pytest

from bwmon.core.alerts.rules import (
    DIRECTIONS,
    AlertEvent,
    AlertState,
    Window,
    _Sample,
    evaluate,
    window_average,
)
from bwmon.core.config.settings import AlertSettings
from bwmon.core.model import AppRow, Snapshot
from tests.helpers.factories import app_row, process_info, snapshot

KIB = 1024.0
T0 = 1_700_000_000.0


def row(name: str, rate_in: float = 0.0, rate_out: float = 0.0, *cmdlines: str) -> AppRow:
    procs = [process_info(name, cmd, pid=100 + i) for i, cmd in enumerate(cmdlines)]
    return app_row(name, rate_in, rate_out, processes=procs)


def snap(seq: int, time: float, elapsed: float, *rows: AppRow) -> Snapshot:
    return snapshot(seq, rows, time=time, elapsed=elapsed)


def rule(**kw: object) -> AlertSettings:
    base: dict[str, object] = {"name": "r", "match": "app", "in_threshold": 100, "window": 1,
                               "hysteresis": 0.1, "cooldown": 300}
    base.update(kw)
    return AlertSettings.model_validate(base)


def run(
    rules: Sequence[AlertSettings], timeline: Iterable[tuple[float, Sequence[AppRow]]],
    *, start: float = T0,
) -> list[tuple[int, AlertEvent]]:
    """Feed (elapsed, rows) ticks (after a baseline tick) and return (tick index, event) pairs."""
    state = AlertState()
    state, events = evaluate(rules, state, snap(0, start, 0.0))
    assert events == []
    out: list[tuple[int, AlertEvent]] = []
    now = start
    for i, (elapsed, rows) in enumerate(timeline, start=1):
        now += elapsed
        state, events = evaluate(rules, state, snap(i, now, elapsed, *rows))
        out.extend((i, e) for e in events)
    return out


def kinds(events: list[tuple[int, AlertEvent]]) -> list[tuple[int, str, str]]:
    return [(i, e.kind, e.direction) for i, e in events]


def test_fires_once_when_crossing_above_and_reports_the_average_in_bytes() -> None:
    ticks = [(1.0, [row("app", 50 * KIB)])] * 3 + [(1.0, [row("app", 200 * KIB)])] * 4
    events = run([rule()], ticks)
    assert kinds(events) == [(4, "fired", "in")]
    event = events[0][1]
    assert event.threshold == 100 * KIB
    assert event.average == pytest.approx(200 * KIB)
    assert (event.rule, event.app, event.window) == ("r", "app", 1.0)
    assert event.time == T0 + 4


def test_window_average_weights_each_rate_by_the_time_it_covers() -> None:
    r = rule(in_threshold=150, window=2)
    # 0.5 s at 400 KiB/s then 1.5 s idle: 100 KiB/s over the 2 s window. An unweighted mean of
    # the two ticks (200) would fire.
    assert run([r], [(0.5, [row("app", 400 * KIB)]), (1.5, [row("app", 0)])]) == []
    # 0.5 s idle then 1.5 s at 240 KiB/s: 180 KiB/s over the window. An unweighted mean (120)
    # would not fire.
    events = run([r], [(0.5, [row("app", 0)]), (1.5, [row("app", 240 * KIB)])])
    assert kinds(events) == [(2, "fired", "in")]
    assert events[0][1].average == pytest.approx(180 * KIB)


def test_window_spreads_a_short_burst_over_the_whole_window() -> None:
    # A 1-second burst at 5x the limit, 10-second window: the average is half the limit.
    r = rule(window=10)
    ticks = [(1.0, [row("app", 500 * KIB)])] + [(1.0, [row("app", 0)])] * 12
    assert run([r], ticks) == []
    # Sustained, it crosses once the window's average does: after 3 ticks at 5x → 150 % > 100 %.
    sustained = [(1.0, [row("app", 500 * KIB)])] * 5
    assert kinds(run([r], sustained)) == [(3, "fired", "in")]


def test_window_average_counts_only_the_part_of_an_old_tick_inside_the_window() -> None:
    samples = [_Sample(4.0, 1000.0, 0.0), _Sample(1.0, 0.0, 0.0)]
    assert window_average(samples, 2.0, "in") == pytest.approx(500.0)
    assert window_average(samples, 5.0, "in") == pytest.approx(800.0)


def test_running_window_agrees_with_the_definition_over_irregular_ticks() -> None:
    rng = random.Random(6)
    window = Window()
    history: list[_Sample] = []
    for i in range(2000):
        length = 5.0 if i < 1000 else 2.5  # the rule's window shrinks half way
        sample = _Sample(rng.uniform(0.05, 3.0), rng.uniform(0, 1e6), rng.choice((0.0, 5e4)))
        window = window.add(sample, length)
        history.append(sample)
        for d in DIRECTIONS:
            expected = window_average(history, length, d)
            assert window.average(length, d) == pytest.approx(expected, rel=1e-9, abs=1e-3)
    assert len(window.samples) <= 2.5 / 0.05 + 1  # memory stays bounded by the window


def test_hysteresis_keeps_a_rate_hovering_at_the_threshold_from_flapping() -> None:
    # Rates alternate just above and just below the limit (±5 %), hysteresis 10 %.
    wobble = [(1.0, [row("app", (105 if i % 2 == 0 else 95) * KIB)]) for i in range(10)]
    assert kinds(run([rule()], wobble)) == [(1, "fired", "in")]
    # Without hysteresis the same wobble flaps: every crossing is reported.
    flaps = run([rule(hysteresis=0)], wobble)
    assert len(flaps) == 10


def test_back_to_normal_once_below_the_hysteresis_band() -> None:
    ticks = [(1.0, [row("app", 200 * KIB)]), (1.0, [row("app", 95 * KIB)]),
             (1.0, [row("app", 89 * KIB)]), (1.0, [row("app", 10 * KIB)])]
    events = run([rule()], ticks)
    assert kinds(events) == [(1, "fired", "in"), (3, "cleared", "in")]
    assert events[1][1].average == pytest.approx(89 * KIB)


def test_repeats_after_the_cooldown_while_still_above() -> None:
    ticks = [(1.0, [row("app", 200 * KIB)])] * 12
    events = run([rule(cooldown=5)], ticks)
    assert kinds(events) == [(1, "fired", "in"), (6, "repeat", "in"), (11, "repeat", "in")]


def test_no_repeat_inside_the_hysteresis_band_and_none_with_cooldown_zero() -> None:
    band = [(1.0, [row("app", 200 * KIB)])] + [(1.0, [row("app", 95 * KIB)])] * 10
    assert kinds(run([rule(cooldown=2)], band)) == [(1, "fired", "in")]
    above = [(1.0, [row("app", 200 * KIB)])] * 10
    assert kinds(run([rule(cooldown=0)], above)) == [(1, "fired", "in")]


def test_fires_again_after_clearing() -> None:
    ticks = [(1.0, [row("app", r * KIB)]) for r in (200, 10, 200)]
    assert kinds(run([rule()], ticks)) == [(1, "fired", "in"), (2, "cleared", "in"),
                                           (3, "fired", "in")]


def test_in_and_out_are_independent() -> None:
    r = rule(in_threshold=100, out_threshold=50)
    ticks = [
        (1.0, [row("app", 10 * KIB, 60 * KIB)]),  # out over
        (1.0, [row("app", 150 * KIB, 60 * KIB)]),  # in over too
        (1.0, [row("app", 150 * KIB, 10 * KIB)]),  # out back
        (1.0, [row("app", 10 * KIB, 10 * KIB)]),  # in back
    ]
    assert kinds(run([r], ticks)) == [(1, "fired", "out"), (2, "fired", "in"),
                                      (3, "cleared", "out"), (4, "cleared", "in")]


def test_a_direction_without_threshold_never_alerts() -> None:
    r = rule(in_threshold=0, out_threshold=None)
    assert run([r], [(1.0, [row("app", 1e12, 1e12)])] * 3) == []


def test_regex_matches_apps_that_appear_later_by_name_or_command_line() -> None:
    r = rule(match=r"wget|curl")
    ticks = [
        (1.0, [row("firefox", 500 * KIB)]),
        (1.0, [row("firefox", 500 * KIB), row("wget", 500 * KIB)]),
        (1.0, [row("firefox", 500 * KIB), row("wget", 500 * KIB),
               row("downloads", 500 * KIB, 0.0, "/usr/bin/curl -O http://x/big")]),
    ]
    events = run([r], ticks)
    assert [(i, e.app, e.kind) for i, e in events] == [(2, "wget", "fired"),
                                                       (3, "downloads", "fired")]


def test_each_matching_app_is_tracked_on_its_own() -> None:
    r = rule(match="^app")
    ticks = [(1.0, [row("app-a", 200 * KIB), row("app-b", 50 * KIB)])] * 2
    events = run([r], ticks)
    assert [(i, e.app) for i, e in events] == [(1, "app-a")]


def test_vanished_app_drops_its_state_and_clears_its_alert() -> None:
    ticks = [(1.0, [row("app", 2000 * KIB)]), (1.0, []), (1.0, [row("app", 200 * KIB)])]
    events = run([rule(window=10)], ticks)
    # Fired on the burst, cleared when the app vanished, and on return it starts from an empty
    # window: 200 KiB/s for 1 s over a 10 s window is only 20 KiB/s — no alert.
    assert [(i, e.kind, e.average) for i, e in events] == [
        (1, "fired", pytest.approx(200 * KIB)), (2, "cleared", 0.0)]


def test_state_does_not_grow_with_apps_that_came_and_went() -> None:
    state = AlertState()
    r = [rule(match=".")]
    for i in range(200):
        state, _ = evaluate(r, state, snap(i, T0 + i, 1.0, row(f"app{i}", 10.0)))
    assert len(state.pairs) == 1


def test_rules_changed_at_run_time_apply_to_the_next_snapshot() -> None:
    state = AlertState()
    rows = [row("app", 200 * KIB)]
    state, events = evaluate([rule(in_threshold=500)], state, snap(1, T0 + 1, 1.0, *rows))
    assert events == []
    state, events = evaluate([rule(in_threshold=100)], state, snap(2, T0 + 2, 1.0, *rows))
    assert [e.kind for e in events] == ["fired"]
    state, events = evaluate([], state, snap(3, T0 + 3, 1.0, *rows))
    assert events == [] and not state.pairs


def test_events_carry_the_command_to_run_fire_and_clear() -> None:
    r = rule(command=["notify-send", "{app}"], clear_command=["logger", "ok"], timeout=7)
    events = run([r], [(1.0, [row("app", 200 * KIB)]), (1.0, [row("app", 0)])])
    assert [(e.kind, e.command, e.timeout) for _, e in events] == [
        ("fired", ("notify-send", "{app}"), 7.0), ("cleared", ("logger", "ok"), 7.0)]


def test_rules_with_the_same_name_keep_separate_state() -> None:
    a = rule(name="same", match="a", in_threshold=100)
    b = rule(name="same", match="b", in_threshold=100)
    events = run([a, b], [(1.0, [row("a", 200 * KIB), row("b", 200 * KIB)])] * 2)
    assert sorted(e.app for _, e in events) == ["a", "b"]


def test_an_alert_follows_its_processes_to_a_new_row_and_does_not_fire_again() -> None:
    """Regrouped (Snapshot.regrouped): web-1 and web-2 become web. Their active alerts go on
    as web's, with their averages: no fired for web, no cleared for web-1 or web-2; without
    the moves the same ticks fire for web (what the carry-over prevents)."""
    from dataclasses import replace

    rules = [rule(match="web", window=2)]
    for moved in (True, False):
        state, _ = evaluate(rules, AlertState(), snap(0, T0, 0.0))
        state, events = evaluate(rules, state, snap(1, T0 + 1, 1.0, row("web-1", 300 * KIB),
                                                    row("web-2", 300 * KIB)))
        assert [(e.app, e.kind) for e in events] == [("web-1", "fired"), ("web-2", "fired")]
        regrouped = snap(2, T0 + 2, 1.0, row("web", 600 * KIB))
        if moved:
            regrouped = replace(regrouped, regrouped=(("web-1", (("web", 1.0),)),
                                                      ("web-2", (("web", 1.0),))))
        state, events = evaluate(rules, state, regrouped)
        if moved:
            assert events == []
            assert state.active() == [("r", "web", "in")]
            assert state.pairs[("r", "web")].window.average(2, "in") == 600 * KIB
        else:
            assert sorted((e.app, e.kind) for e in events) == [
                ("web", "fired"), ("web-1", "cleared"), ("web-2", "cleared")]
