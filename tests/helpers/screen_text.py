"""What a Textual app under Pilot shows, as plain text lines: the whole screen, or a widget's
region of it (what a user reads there, borders and scroll bars excluded)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from textual.geometry import Region
from textual.widget import Widget


def screen_lines(app: Any) -> list[str]:
    """Every row of the screen as the terminal would show it, modal screens included."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True,
                      force_terminal=True, color_system=None, legacy_windows=False)
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens))
    lines = console.export_text().split("\n")[:height]
    return [line.ljust(width) for line in lines]


def region_lines(app: Any, region: Region) -> list[str]:
    return [line[region.x:region.right] for line in
            screen_lines(app)[region.y:region.bottom]]


def widget_lines(app: Any, widget: Widget) -> list[str]:
    """The rows of `widget`'s content region (inside its border and padding) that show: the
    part a scrolling container around it does not hide."""
    clip = widget.screen.find_widget(widget).clip
    return region_lines(app, widget.content_region.intersection(clip))
