"""Regenerate the TUI screenshots in docs/screenshots/ (SVG, via Textual) from the fixed demo
data, so they repeat exactly:  python3 docs/make_screenshots.py
With --check, draw them into a temporary folder and exit 1 if any differs from the committed
one (the test suite runs this, so the manual's pictures stay current)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ["TZ"] = "UTC"
time.tzset()

from bwmon.core.config.settings import GroupSettings, Settings  # noqa: E402
from bwmon.core.feed import ManualFeed  # noqa: E402
from bwmon.core.model import AppRow, RowKind, Unit  # noqa: E402
from bwmon.tui.app import BwmonApp  # noqa: E402
from bwmon.tui.controller import RecordingController  # noqa: E402
from bwmon.tui.demo import NO_CONNTRACK, demo_feed, demo_processes, demo_snapshot  # noqa: E402

OUT = REPO / "docs" / "screenshots"
CONFIG = Path("/home/alice/.config/bwmon/bwmon.toml")  # shown in the editor; never written

Steps = Callable[[Any], Awaitable[None]]


def demo_app(feed: ManualFeed | None = None, *, root: bool = False) -> BwmonApp:
    settings = Settings(groups=[
        GroupSettings(name="browsers", patterns=["firefox", "chrom(e|ium)"]),
        GroupSettings(name="transfer", patterns=["rsync", "curl"]),
    ])
    return BwmonApp(feed or demo_feed(30, 12), RecordingController(settings,
                                                                   demo_processes(12)),
                    config_path=CONFIG, is_root=root)


def broken_feed() -> ManualFeed:
    pipe = AppRow("web-pipe", RowKind.PIPE, Unit.PAYLOAD, 2048.0, 512.0, 40960, 10240, 2)
    feed = ManualFeed()
    feed.push(dataclasses.replace(demo_snapshot(3, 0, findings=NO_CONNTRACK), apps=(pipe,)))
    return feed


# Textual's SVG names a web font on a CDN after the local one; the manual fetches nothing from
# outside, so only the local font (then the browser's monospace) remains.
_REMOTE_FONT = re.compile(r',\s*url\("https?://[^"]*"\) format\("[^"]*"\)')


async def shoot(name: str, app: BwmonApp, size: tuple[int, int], steps: Steps) -> None:
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await steps(pilot)
        await pilot.pause()
        path = OUT / f"{name}.svg"
        app.save_screenshot(str(path))
    path.write_text(_REMOTE_FONT.sub("", path.read_text()))
    print(f"wrote {OUT / name}.svg")


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)

    async def select(pilot: Any) -> None:
        await pilot.press("down", "down")

    async def editor(pilot: Any) -> None:
        await pilot.press("g")
        await pilot.pause()
        await pilot.press("ctrl+e", *"fire(fox")

    async def filtering(pilot: Any) -> None:
        await pilot.press("slash", *"fire|ssh|chrom")

    async def helping(pilot: Any) -> None:
        await pilot.press("question_mark")

    async def nothing(pilot: Any) -> None:
        return None

    await shoot("main-120x40", demo_app(), (120, 40), select)
    await shoot("main-80x24", demo_app(), (80, 24), select)
    await shoot("filter", demo_app(), (100, 30), filtering)
    await shoot("group-editor", demo_app(), (100, 30), editor)
    await shoot("help", demo_app(), (100, 30), helping)
    await shoot("nothing-measurable", demo_app(broken_feed(), root=True), (100, 30), nothing)


def check() -> int:
    """Draw into a temporary folder; 1 if any picture differs from docs/screenshots/."""
    import tempfile

    global OUT
    committed = OUT
    with tempfile.TemporaryDirectory() as tmp:
        OUT = Path(tmp)
        asyncio.run(main())
        stale = [p.name for p in sorted(OUT.glob("*.svg"))
                 if not (committed / p.name).exists()
                 or (committed / p.name).read_bytes() != p.read_bytes()]
    for name in stale:
        print(f"docs/screenshots/{name} is not current: run python3 docs/make_screenshots.py",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        raise SystemExit(check())
    asyncio.run(main())
