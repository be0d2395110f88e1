"""The alert log loses nothing: every line wraps to the pane, at any width and after a resize
(issue 23, item 3: RichLog wrapped at 78 columns in a ~57-column pane, which hid the rest)."""

from __future__ import annotations

import re

import pytest

from bwmon.core.model import Level, LogEvent
from bwmon.tui.alert_log import AlertLog
from bwmon.tui.app import BwmonApp
from bwmon.tui.demo import T0

LONG = (
    LogEvent(T0 + 5, Level.WARNING, "alert",
             "web-1 in above limit: 124 KiB/s > 100 KiB/s over 3 s [web-budget]"),
    LogEvent(T0 + 6, Level.INFO, "notify",
             "ran /usr/local/bin/page-the-admin --app web-1 --direction in --average 127232: "
             "exit 0"),
)


def visible(log: AlertLog) -> tuple[list[str], int]:
    """The log's lines as drawn, and the width the pane shows of them."""
    return [line.text for line in log.lines], log.scrollable_content_region.width


def assert_whole(log: AlertLog) -> None:
    lines, width = visible(log)
    too_wide = [line for line in lines if len(line.rstrip()) > width]
    assert not too_wide, f"cut at {width} columns: {too_wide}"
    shown = re.sub(r"\s+", " ", " ".join(lines))
    for event in LONG:
        assert re.sub(r"\s+", " ", event.message) in shown


@pytest.mark.parametrize("size, keys", [((120, 40), ()), ((80, 24), ("l",))])
async def test_long_log_lines_wrap_to_the_pane(
    app: BwmonApp, size: tuple[int, int], keys: tuple[str, ...]
) -> None:
    for event in LONG:
        app.feed.log.append(event)
    async with app.run_test(size=size) as pilot:
        await pilot.press(*keys)
        await pilot.pause()
        log = app.query_one(AlertLog)
        assert log.display
        assert_whole(log)


async def test_log_lines_wrap_again_after_a_resize(app: BwmonApp) -> None:
    for event in LONG:
        app.feed.log.append(event)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause()
        log = app.query_one(AlertLog)
        assert_whole(log)
        await pilot.resize_terminal(110, 40)
        await pilot.pause()
        assert_whole(log)
