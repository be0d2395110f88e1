"""The detail pane's title names the unit of the selected row's bytes: IP, payload, or both.
User trial (issue 20): after `f` turned accounting on mid-run, an app whose open connection
stayed on its socket counters (payload) while new ones came from conntrack (IP) was "mixed" in
the JSON, but the pane said "(IP bytes)"."""

from __future__ import annotations

from bwmon.core.feed import ManualFeed
from bwmon.core.model import Unit
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import RecordingController
from tests.helpers.factories import app_row, snapshot
from tests.helpers.screen_text import widget_lines


async def test_the_title_says_each_rows_unit(controller: RecordingController) -> None:
    feed = ManualFeed()
    feed.push(snapshot(0, [app_row("mix", 3000, 3000, unit=Unit.MIXED),
                           app_row("ip", 2000, 2000, unit=Unit.IP),
                           app_row("socket", 1000, 1000, unit=Unit.PAYLOAD)]))
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        titles = []
        for _ in range(3):
            row = app.table.shown_row(app.table.selected_key or "")
            assert row is not None
            title = " ".join(widget_lines(app, app.query_one("#detail-title")))
            titles.append((row.name, title))
            await pilot.press("down")
            await pilot.pause()
    said = {name: title for name, title in titles}
    assert set(said) == {"mix", "ip", "socket"}
    assert "(mixed: IP and payload bytes)" in said["mix"], said
    assert "(IP bytes)" in said["ip"] and "(payload bytes)" in said["socket"], said
