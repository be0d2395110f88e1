"""Filter (valid and invalid regex), the view toggles, pause, and the alert log."""

from __future__ import annotations

import dataclasses

from textual.widgets import Input, Static

from bwmon.core.feed import ManualFeed
from bwmon.core.model import Level, LogEvent
from bwmon.tui.alert_log import AlertLog
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import RecordingController
from bwmon.tui.demo import T0, demo_snapshot
from bwmon.tui.totals_header import TotalsHeader
from tests.helpers.screen_text import screen_lines


def header(app: BwmonApp) -> str:
    return str(app.query_one(TotalsHeader).render())


async def test_filter_valid_then_invalid_then_cleared(
    app: BwmonApp, controller: RecordingController
) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        everything = app.table.row_keys_in_order()
        await pilot.press("slash", *"fire|ssh")
        await pilot.pause()
        assert app.table.row_keys_in_order() == ["firefox", "ssh", "(unattributed)"]
        assert "filter /fire|ssh/ hides 8" in header(app)
        filtered = app.table.row_keys_in_order()
        await pilot.press("(")  # "fire|ssh(" does not compile
        await pilot.pause()
        field = app.query_one("#filter", Input)
        assert field.has_class("-invalid")
        message = str(app.query_one("#filter-error", Static).render())
        assert "invalid regex" in message
        assert app.table.row_keys_in_order() == filtered  # unchanged, no crash
        await pilot.press("backspace")
        assert not field.has_class("-invalid")
        await pilot.press("escape")
        await pilot.pause()
        assert app.table.row_keys_in_order() == everything
        assert "filter /" not in header(app)
        assert not [c for c in controller.calls if c[0] == "set_filters"]  # display only


async def test_filter_matches_command_lines(app: BwmonApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("slash", *"profile p2", "enter")
        await pilot.pause()
        # only apps with three processes have a "--profile p2" command line
        shown = [n for n in app.table.row_keys_in_order() if not n.startswith("(")]
        snap = app.shown
        assert snap is not None
        assert shown and all(len(snap.app(n).processes) == 3 for n in shown)  # type: ignore[union-attr]
        assert app.focused is app.table


async def test_toggles_change_view_and_tell_the_core(
    app: BwmonApp, controller: RecordingController
) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "bandwidth" in header(app)
        assert [c.key.value for c in app.table.ordered_columns][1] == "rate_in"
        await pilot.press("t")
        await pilot.pause()
        assert "traffic" in header(app)
        columns = [c.key.value for c in app.table.ordered_columns]
        assert columns[1:3] == ["total_in", "total_out"]
        assert app.table.sort_column == "total"  # the in + out rate sort moved to its totals
        await pilot.press("p")
        await pilot.pause()
        assert "processes" in header(app)
        assert controller.last("set_process_view") is True
        assert "firefox [1000]" in app.table.row_keys_in_order()
        # the rows are processes, and the heading says so (issue 23, item 10: it said "App")
        assert screen_lines(app)[2].split()[0] == "Process"
        await pilot.press("p")
        await pilot.pause()
        assert "firefox" in app.table.row_keys_in_order()
        assert screen_lines(app)[2].split()[0] == "App"
        await pilot.press("a")
        assert "auto-group off" in header(app)
        assert controller.last("set_auto_group") is False


async def test_pause_freezes_the_table_until_resumed(app: BwmonApp, feed: ManualFeed) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("space")
        frozen = app.table.get_cell("firefox", "total_in").plain
        feed.push(demo_snapshot(40, 10))
        await pilot.pause()
        assert "PAUSED" in header(app)
        assert "PAUSED" in screen_lines(app)[1]  # on screen at 80 columns, not cut off
        assert app.table.get_cell("firefox", "total_in").plain == frozen
        await pilot.press("space")
        await pilot.pause()
        assert app.table.get_cell("firefox", "total_in").plain != frozen
        assert "PAUSED" not in header(app)


async def test_alert_log_receives_events_once_and_is_bounded(feed: ManualFeed) -> None:
    from bwmon.core.config.settings import Settings

    ctl = RecordingController(Settings.model_validate({"tui": {"log_lines": 10}}))
    app = BwmonApp(feed, ctl, is_root=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        log = app.query_one(AlertLog)
        assert any("firefox above 300 kB/s" in line for line in log.entries)
        feed.log.add(T0 + 60, Level.ERROR, "pipe:web", "pipe down: connection refused")
        snap = demo_snapshot(31, 10)
        feed.push(snap)
        feed.push(dataclasses.replace(snap, seq=32))  # same events offered again
        await pilot.pause()
        assert [line for line in log.entries if "pipe down" in line] == [
            "00:01:00 ERR  pipe:web: pipe down: connection refused"]
        for i in range(30):
            feed.log.append(LogEvent(T0 + 100 + i, Level.WARNING, "alert", f"event {i}"))
        feed.push(dataclasses.replace(snap, seq=33))
        await pilot.pause()
        assert len(log.entries) == 10
        assert log.entries[-1].endswith("alert: event 29")
