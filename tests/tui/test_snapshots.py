"""Pictures of the main screen (80×24, 120×40, 16 colours) and the group editor, from fixed
demo data at fixed times. Update after a deliberate change: pytest --snapshot-update."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.color import ColorSystem
from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from textual.pilot import Pilot

from bwmon.core.config.settings import GroupSettings, Settings
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import RecordingController
from bwmon.tui.demo import demo_feed, demo_processes

NO_FILE = Path("/nonexistent/bwmon/bwmon.toml")  # fixed text in the editor's picture


def make_app() -> BwmonApp:
    settings = Settings(groups=[
        GroupSettings(name="browsers", patterns=["firefox", "chrom(e|ium)"]),
        GroupSettings(name="transfer", patterns=["rsync", "curl"]),
    ])
    controller = RecordingController(settings, demo_processes(10))
    return BwmonApp(demo_feed(30, 10), controller, config_path=NO_FILE, is_root=False)


async def select_third(pilot: Pilot[Any]) -> None:
    await pilot.pause()
    await pilot.press("down", "down")
    await pilot.pause()


def test_main_80x24(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=select_third)


def test_main_120x40(snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(120, 40), run_before=select_third)


class SixteenColours(BwmonApp):
    """Pictures what a 16-colour terminal shows (TEXTUAL_COLOR_SYSTEM=standard): Textual
    always exports truecolor, so every colour is downgraded the way the driver would."""

    def export_screenshot(self, *, title: str | None = None, simplify: bool = False) -> str:
        console = Console(width=self.size.width, height=self.size.height, file=io.StringIO(),
                          force_terminal=True, color_system="truecolor", record=True,
                          legacy_windows=False, safe_box=False)
        console.print(self.screen._compositor.render_update(
            full=True, screen_stack=self._background_screens, simplify=simplify))
        buffer = console._record_buffer
        buffer[:] = [Segment(s.text, _downgrade(s.style), s.control) for s in buffer]
        return console.export_svg(title=title or self.title)


def _downgrade(style: Style | None) -> Style | None:
    if style is None:
        return None
    color = style.color.downgrade(ColorSystem.STANDARD) if style.color else None
    bgcolor = style.bgcolor.downgrade(ColorSystem.STANDARD) if style.bgcolor else None
    return style + Style(color=color, bgcolor=bgcolor)


def test_main_16_colours(snap_compare: Any) -> None:
    base = make_app()
    app = SixteenColours(base.feed, base.controller, config_path=NO_FILE, is_root=False)
    assert snap_compare(app, terminal_size=(80, 24), run_before=select_third)


def test_group_editor(snap_compare: Any) -> None:
    async def open_editor(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        await pilot.press("g")
        await pilot.pause()
        await pilot.press("ctrl+e", *"fire(fox")  # an invalid regex, flagged in place
        await pilot.pause()

    assert snap_compare(make_app(), terminal_size=(100, 30), run_before=open_editor)
