"""`?` lists every key and closes again without quitting; resizing keeps sort and selection."""

from __future__ import annotations

import itertools

from textual.widgets import Static

from bwmon.tui.app import BwmonApp
from bwmon.tui.help_screen import EDITOR_KEYS, HISTORY_KEYS, MAIN_KEYS, HelpScreen
from tests.helpers.screen_text import widget_lines


async def test_help_lists_keys_and_q_closes_only_the_help(app: BwmonApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.resize_terminal(80, 70)  # tall: the whole page shows
        await pilot.pause()
        text = "\n".join(widget_lines(app, app.screen.query_one("#help-text", Static)))
        for key in ("1 … 7", "Ctrl+S", "apply the doctor's fixes", "quit", "history"):
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


def needless_breaks(lines: list[str], width: int, keys: set[str], indent: int) -> list[str]:
    """Lines broken although the next line's first word would have fitted after them: text
    wrapped twice (hard line breaks inside text the page wraps again). Key rows start a new
    line by design; their descriptions go on at `indent`."""
    found = []
    for line, after in itertools.pairwise(lines):
        head, rest = after[:indent].strip(), after.strip()
        if not line.strip() or not rest or head in keys or not after.startswith(" "):
            continue  # a new paragraph, heading or key row
        if len(line.rstrip()) + 1 + len(rest.split()[0]) <= width:
            found.append(f"{line.rstrip()!r} / {after.strip()!r}")
    return found


async def test_help_wraps_once_at_80_columns(app: BwmonApp) -> None:
    """Issue 23, item 10: at 80 columns the help's lines were broken by hand and wrapped
    again by the page, leaving stubs like "start)" and "passes the" on lines of their own,
    and descriptions running on under the keys."""
    async with app.run_test(size=(80, 70)) as pilot:  # tall: the whole page shows
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        text = app.screen.query_one("#help-text", Static)
        lines = widget_lines(app, text)
        width = text.content_region.width
        keys = {k for k, _ in (*MAIN_KEYS, *HISTORY_KEYS, *EDITOR_KEYS)}
        indent = 19  # descriptions start here: 2 spaces, the key in 16, one more
        assert not needless_breaks(lines, width, keys, indent)
        for line in lines:  # every line is a heading, key row, continuation or paragraph
            assert (not line.strip() or line[:indent].strip() in keys
                    or line.startswith((" " * indent, "  ", "Main", "History", "Group",
                                        "Esc"))), line
        shown = " ".join(" ".join(lines).split())
        assert "a row passes the one above when its mean is over 1.2 times as big" in shown
