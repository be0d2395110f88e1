"""The trend column: every row on one scale, so a steady small app draws small bars next to a
busy one, and an app moving nothing draws nothing (issue 23, item 10: each row was scaled to
its own maximum, so every steady app showed ████████, and zero drew ▁)."""

from __future__ import annotations

import dataclasses

from bwmon.core.feed import ManualFeed
from bwmon.core.model import AppRow, RowKind, Unit
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import RecordingController
from bwmon.tui.demo import T0, demo_snapshot
from tests.helpers.screen_text import screen_lines

RATES = {"busy": 1 << 20, "steady": 16 << 10, "idle": 0}  # bytes/s, in + out alike


def push(feed: ManualFeed, t: int) -> None:
    rows = tuple(AppRow(name, RowKind.APP, Unit.IP, rate, rate, rate * t, rate * t, 1)
                 for name, rate in RATES.items())
    feed.push(dataclasses.replace(demo_snapshot(0, 0), seq=t, time=T0 + t, elapsed=1.0,
                                  apps=rows))


def steady_feed(seconds: int) -> ManualFeed:
    feed = ManualFeed()
    for t in range(seconds):
        push(feed, t)
    return feed


def trend_cells(app: BwmonApp, name: str) -> str:
    """The trend as drawn on screen: the last 8 columns before the table's right edge."""
    for line in screen_lines(app):
        if line.startswith(f" {name} "):
            cells = line.rstrip()
            table_right = app.table.region.right
            return line[table_right - 10:table_right - 2] if len(cells) > 80 else ""
    raise AssertionError(f"no row {name}")


async def test_rows_share_one_scale_and_zero_draws_nothing(
        controller: RecordingController) -> None:
    feed = steady_feed(60)
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        push(feed, 60)
        await pilot.pause()
        assert app.table.show_trend
        busy, steady, idle = (trend_cells(app, n) for n in RATES)
        assert busy.strip() and set(busy.strip()) == {"█"}, busy
        assert steady.strip() and set(steady.strip()) == {"▁"}, steady  # 1/64 of busy
        assert idle.strip() == "", idle


async def test_the_trend_shows_on_the_first_screen(controller: RecordingController) -> None:
    """It was computed only while the column showed, and the column appears once the table
    is laid out: the first screen (and the first after widening) had none until a tick."""
    app = BwmonApp(steady_feed(60), controller, is_root=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert set(trend_cells(app, "busy").strip()) == {"█"}
