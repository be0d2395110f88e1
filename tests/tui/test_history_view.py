"""h: the history view reads the store and shows each app's bytes over 1 h … 30 d, every app
or the selected one; Esc goes back to the live table, unchanged; the key is in the footer."""

from __future__ import annotations

import time
from pathlib import Path

from bwmon.core.config.settings import HistorySettings
from bwmon.core.feed import ManualFeed
from bwmon.core.store.retention import Retention
from bwmon.core.store.tally import AppKey, MinuteBytes
from bwmon.core.store.writer import StoreWriter
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import RecordingController
from bwmon.tui.history_screen import HistoryScreen
from tests.helpers.screen_text import screen_lines

DAY = 86400


def make_store(path: Path, now: int) -> None:
    """firefox: 1 MiB a day for 20 days (the last one 2 h before this hour began); ssh: 5 KiB
    3 days ago."""
    w = StoreWriter(path, Retention())
    w.open()
    hour = now // 3600 * 3600
    w.write([MinuteBytes(hour - 7200 - d * DAY, AppKey("firefox", "ip"), 1 << 20, 1 << 10)
             for d in range(20)]
            + [MinuteBytes((now - 3 * DAY) // 60 * 60, AppKey("ssh", "ip"), 5 << 10, 0)])
    w.close()


async def wait_loaded(pilot, screen: HistoryScreen, before: object) -> None:  # type: ignore[no-untyped-def]
    for _ in range(100):
        await pilot.pause(0.02)
        if screen.answer is not before or screen.error:
            return
    raise AssertionError("the history view never loaded")


async def open_history(pilot, app: BwmonApp, on: str | None = None) -> HistoryScreen:  # type: ignore[no-untyped-def]
    """Press h (with the cursor on the app `on` first, if given); the view, once loaded."""
    await pilot.pause()
    if on is not None:
        app.table.move_cursor(row=app.table.row_keys_in_order().index(on))
        await pilot.pause()
    await pilot.press("h")
    screen = app.screen
    assert isinstance(screen, HistoryScreen)
    await wait_loaded(pilot, screen, None)
    return screen


async def test_history_view_ranges_and_the_selected_app(
        tmp_path: Path, feed: ManualFeed, controller: RecordingController) -> None:
    now = int(time.time())
    store = tmp_path / "h.sqlite"
    make_store(store, now)
    controller.settings.history = HistorySettings(path=store)
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        rows = app.table.row_keys_in_order()
        assert "h History" in screen_lines(app)[-1]
        await pilot.press("h")
        screen = app.screen
        assert isinstance(screen, HistoryScreen)
        await wait_loaded(pilot, screen, None)
        text = "\n".join(screen_lines(app))
        assert "last 24h" in text and "firefox" in text and "1.00 MiB" in text
        assert "ssh" not in text  # 3 days ago: not in the last 24 h
        assert "does not record history" in text  # a ManualFeed has no recorder
        before = screen.answer
        await pilot.press("4")
        await wait_loaded(pilot, screen, before)
        text = "\n".join(screen_lines(app))
        assert "last 30d" in text and "20.0 MiB" in text and "5.00 KiB" in text
        assert screen.answer is not None and screen.answer.table == "days"
        before = screen.answer
        await pilot.press("1")
        await wait_loaded(pilot, screen, before)
        assert "Nothing recorded in this range yet." in "\n".join(screen_lines(app))
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is not screen and app.table.row_keys_in_order() == rows


async def test_history_view_of_the_selected_app_lists_its_periods(
        tmp_path: Path, feed: ManualFeed, controller: RecordingController) -> None:
    now = int(time.time())
    store = tmp_path / "h.sqlite"
    make_store(store, now)
    controller.settings.history = HistorySettings(path=store)
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_history(pilot, app, on="firefox")
        before = screen.answer
        await pilot.press("3", "s")
        for _ in range(100):
            await pilot.pause(0.02)
            if screen.one_app and screen.answer is not before and screen.answer.series:
                break
        text = "\n".join(screen_lines(app))
        assert "firefox: " in text and "one bar per hour" in text
        assert text.count("1.00 MiB") == 7  # one line per hour that moved bytes, 7 days


async def test_history_view_says_when_history_is_off(
        feed: ManualFeed, controller: RecordingController) -> None:
    controller.settings.history = HistorySettings(enabled=False)
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_history(pilot, app)
        assert "history is off" in "\n".join(screen_lines(app))


async def test_history_view_by_container_and_unit(
        tmp_path: Path, feed: ManualFeed, controller: RecordingController) -> None:
    """b: the rows become containers, then systemd units (of every app, or with s of the
    selected one); bytes without one are their own row."""
    now = int(time.time())
    store = tmp_path / "h.sqlite"
    make_store(store, now)  # firefox and ssh: no container or unit
    w = StoreWriter(store, Retention())
    w.open()
    minute = (now - 3600) // 60 * 60
    w.write([MinuteBytes(minute, AppKey("firefox", "ip", "web-a"), 3 << 20, 0),
             MinuteBytes(minute, AppKey("nginx", "ip", "web-b"), 7 << 20, 0),
             MinuteBytes(minute, AppKey("nginx", "ip", None, "nginx.service"), 2 << 20, 0)])
    w.close()
    controller.settings.history = HistorySettings(path=store)
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_history(pilot, app, on="firefox")
        assert "b By app/container/unit" in screen_lines(app)[-1]
        shown: list[dict[str, str]] = []
        for keys in (("b",), ("b",), ("b", "b", "s")):
            before = screen.answer
            await pilot.press(*keys)
            await wait_loaded(pilot, screen, before)
            await pilot.pause(0.1)
            shown.append({line.strip().split("  ")[0]: line for line in screen_lines(app)
                          if "MiB" in line})
        assert set(shown[0]) >= {"web-b", "web-a", "(no container)"}
        assert "7.00 MiB" in shown[0]["web-b"] and "3.00 MiB" in shown[0]["web-a"]
        assert "3.00 MiB" in shown[0]["(no container)"]  # nginx.service 2 + firefox 1
        assert set(shown[1]) >= {"(no unit)", "nginx.service"}
        assert "2.00 MiB" in shown[1]["nginx.service"]
        assert set(shown[2]) == {"web-a", "(no container)"}  # firefox's containers
        text = "\n".join(screen_lines(app))
        assert "by container" in text and "firefox: " in text
