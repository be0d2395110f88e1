"""The detail pane's rate graphs: one bar per slice of the clock, so between two ticks inside
one slice only the newest bar changes, and a completed slice moves the graph one bar left."""

from __future__ import annotations

import dataclasses
import math

from bwmon.core.feed import ManualFeed
from bwmon.core.model import Snapshot
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import RecordingController
from bwmon.tui.demo import demo_snapshot
from bwmon.tui.detail_pane import RateGraph
from bwmon.tui.format import bars, clock_buckets, human_rate
from tests.helpers.screen_text import screen_lines

RATES = [4000.0, 1000.0, 3000.0, 500.0, 2500.0, 1500.0, 3500.0, 800.0]


def snapshot(base: Snapshot, t: float, rate: float) -> Snapshot:
    row = dataclasses.replace(base.apps[0], name="alpha", rate_in=rate, rate_out=rate / 2)
    return dataclasses.replace(base, time=t, apps=(row,))


async def test_older_bars_stay_put_inside_a_bucket_and_shift_when_it_completes(
        controller: RecordingController) -> None:
    base = demo_snapshot(5, 1)
    feed = ManualFeed()
    feed.push(snapshot(base, 1_000_000.0, RATES[0]))
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        graph = app.query_one("#spark-in-120", RateGraph)
        size = graph.window / graph.size.width  # seconds per bar
        assert size > 1  # several ticks per bar: the case this is about
        start = (math.floor(1_000_000.0 / size) + 1) * size  # a bucket boundary
        same = shifted = 0
        before, t_before = graph.drawn, 1_000_000.0
        for n in range(int(9 * size) + 1):  # some 9 slices, of several ticks each
            t = start + n  # one tick a second
            feed.push(snapshot(base, t, RATES[n % len(RATES)]))
            await pilot.pause()
            after = graph.drawn
            if math.floor(t / size) == math.floor(t_before / size):
                assert after[:-1] == before[:-1], f"tick {n}: an older bar changed"
                same += 1
            else:  # a new bucket: everything one bar left, the new one at the right
                assert after[:-1] == before[1:], f"tick {n}: not shifted by one bar"
                assert after[-1] != " "
                shifted += 1
            before, t_before = after, t
        assert same >= 8 and shifted >= 8  # both cases really happened


def test_buckets_hold_the_peak_of_their_slice_of_the_clock() -> None:
    samples = [(100.0, 5.0), (101.0, 9.0), (102.0, 1.0), (103.5, 2.0), (104.0, 7.0)]
    # 3 bars of 2 s: [100, 102), [102, 104), [104, 106)
    assert clock_buckets(samples, 6, 3) == [9.0, 2.0, 7.0]
    # 4 bars: one slice before the first sample is empty, and shows blank
    assert clock_buckets(samples, 8, 4) == [None, 9.0, 2.0, 7.0]
    assert bars([None, 9.0, 2.0, 7.0])[0] == " " and bars([None, 9.0, 2.0, 7.0])[1] == "█"


async def test_each_graph_says_what_a_full_bar_is(app: BwmonApp) -> None:
    """Issue 23, item 10: the graphs had no scale. Each now ends with its peak: the rate a
    full bar stands for."""
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("down", "down")
        await pilot.pause()
        name = app.table.selected_key
        assert name is not None
        points = app.feed.history.points(name)
        lines = screen_lines(app)
        for direction, seconds in (("in", 120), ("out", 120), ("in", 600), ("out", 600)):
            graph = app.query_one(f"#spark-{direction}-{seconds}", RateGraph)
            recent = [getattr(p, f"rate_{direction}") for p in points
                      if p.time > points[-1].time - seconds]
            pane = app.query_one("#detail").region
            row = lines[graph.region.y][pane.x:pane.right]
            assert "█" in graph.drawn
            assert row[graph.region.right - pane.x:].strip() == f"max {human_rate(max(recent))}"


async def test_a_process_row_says_it_has_no_graph(app: BwmonApp, feed: ManualFeed) -> None:
    """Found trying bwmon-tui's process view (p) at 80x24: the selected process moved
    ~1 MiB/s and its four graphs stayed empty, with nothing saying why (only apps have a
    history). The pane must say so; the app view's graphs come back with p."""
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("p")
        await pilot.pause()
        assert app.table.name_label == "Process"
        text = "\n".join(screen_lines(app))
        assert "graphs are kept per app" in text, text
        await pilot.press("p")
        await pilot.pause()
        assert "graphs are kept per app" not in "\n".join(screen_lines(app))
        assert app.query_one("#spark-in-120", RateGraph).drawn.strip()
