"""`?` lists every key and closes again without quitting; resizing keeps sort and selection."""

from __future__ import annotations

from textual.widgets import Static

from bwmon.tui.app import BwmonApp
from bwmon.tui.help_screen import HelpScreen


async def test_help_lists_keys_and_q_closes_only_the_help(app: BwmonApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text", Static).render())
        for key in ("1 … 7", "Ctrl+S", "apply the doctor's fixes", "quit"):
            assert key in text
        await pilot.press("q")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
        assert app.is_running


async def test_resize_keeps_sort_and_selection_and_drops_trend_when_narrow(
    app: BwmonApp,
) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.table.show_trend
        await pilot.press("3", "down", "down")  # sort by Out/s, pick the third row
        chosen = app.table.selected_key
        order = app.table.row_keys_in_order()
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not app.table.show_trend
        assert "trend" not in [c.key.value for c in app.table.ordered_columns]
        assert app.table.selected_key == chosen
        assert app.table.row_keys_in_order() == order
        assert not app.query_one("#log").display  # detail and log share the bottom: l
        await pilot.press("l")
        assert app.query_one("#log").display and not app.query_one("#detail").display
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert app.table.show_trend and app.table.selected_key == chosen
