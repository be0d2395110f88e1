"""When nothing can be measured: the reason and the fixing command are on screen; as root one
key offers to apply them, showing the exact commands first; nothing runs without a yes."""

from __future__ import annotations

import dataclasses

from textual.widgets import Static

from bwmon.core.feed import ManualFeed
from bwmon.core.model import RowKind
from bwmon.tui.alert_log import AlertLog
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import RecordingController
from bwmon.tui.demo import NO_CONNTRACK, demo_snapshot
from bwmon.tui.findings import ConfirmFixScreen, FindingsPanel
from tests.helpers.factories import app_row

FIX = "sysctl -w net.netfilter.nf_conntrack_acct=1"


def broken_feed() -> ManualFeed:
    """No conntrack, but a configured pipe still measures."""
    pipe = app_row("web-pipe", 2048.0, 512.0, 40960, 10240, kind=RowKind.PIPE, flows=2)
    snap = dataclasses.replace(demo_snapshot(3, 0, findings=NO_CONNTRACK), apps=(pipe,))
    feed = ManualFeed()
    feed.push(snap)
    return feed


async def test_findings_shown_with_pipes_still_listed() -> None:
    app = BwmonApp(broken_feed(), RecordingController(), is_root=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        panel = app.query_one(FindingsPanel)
        assert panel.display
        text = str(panel.render())
        assert "Nothing can be measured" in text
        assert "needs root" in text
        assert f"fix: {FIX}" in text
        assert "Run the commands above as root" in text
        assert app.table.row_keys_in_order() == ["web-pipe"]
        await pilot.press("f")  # not root: no dialog, nothing run
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmFixScreen)


async def test_as_root_f_shows_commands_and_runs_only_after_yes() -> None:
    controller = RecordingController()
    controller.fix_output = [f"{FIX}: ok"]
    app = BwmonApp(broken_feed(), controller, is_root=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "Press f to review and apply" in str(app.query_one(FindingsPanel).render())
        await pilot.press("f")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmFixScreen)
        assert str(app.screen.query_one("#confirm-cmds", Static).render()).strip() == f"$ {FIX}"
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmFixScreen)
        assert controller.calls == []
        await pilot.press("f")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert controller.calls == [("apply_fixes", list(NO_CONNTRACK))]
        assert any(line.endswith(f"doctor: {FIX}: ok") for line in app.query_one(AlertLog).entries)


async def test_panel_hides_once_measuring_works(feed: ManualFeed) -> None:
    app = BwmonApp(broken_feed(), RecordingController(), is_root=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.query_one(FindingsPanel).display
        app.feed.push(demo_snapshot(4, 5))  # type: ignore[attr-defined]
        await pilot.pause()
        assert not app.query_one(FindingsPanel).display


async def test_snapshot_arriving_while_quitting_is_dropped_quietly() -> None:
    """A snapshot can reach the app after its widgets were taken down at quit: dropped, no
    traceback; while running, a missing widget is still an error."""
    from textual.css.query import NoMatches

    from bwmon.tui.alert_log import AlertLog as Log
    from bwmon.tui.messages import SnapshotReady

    app = BwmonApp(broken_feed(), RecordingController(), is_root=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await app.query_one(Log).remove()
        snap = demo_snapshot(4, 0)
        try:
            app.on_snapshot_ready(SnapshotReady(snap))
        except NoMatches:
            pass
        else:
            raise AssertionError("a missing widget while running must not pass silently")
        app.exit()
        app.on_snapshot_ready(SnapshotReady(snap))  # quitting: no exception
