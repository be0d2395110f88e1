"""bwmon-tui starts without the group editor and tomlkit (~0.8 MiB); `g` loads them and opens
a working editor. Run in a fresh interpreter: this test process has long imported both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import asyncio, json, sys
from bwmon.tui.main import BwmonApp, build_parser  # the entry point's imports
from bwmon.cli.options import settings_and_path_from_args
from bwmon.tui.controller import RecordingController
from bwmon.tui.demo import demo_feed, demo_processes

LAZY = ("tomlkit", "bwmon.tui.group_editor", "bwmon.tui.groups_file")

def loaded():
    return sorted(m for m in LAZY if m in sys.modules)

async def until(pilot, ok):
    for _ in range(100):  # a loaded machine may need a few frames
        await pilot.pause(0.05)
        if ok():
            return

async def main():
    settings, path = settings_and_path_from_args(build_parser().parse_args([]))
    # made-up rows from a fixed feed (the --demo runner races the test's teardown)
    app = BwmonApp(demo_feed(20, 8), RecordingController(settings, demo_processes(8)),
                   config_path=path, is_root=False)
    out = {}
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        out["at_start"] = loaded()
        await pilot.press("g")
        await until(pilot, lambda: type(app.screen).__name__ == "GroupEditor")
        out["after_g"] = loaded()
        out["screen"] = type(app.screen).__name__
        await pilot.press("ctrl+n")   # a new group, named by the editor
        await pilot.pause()
        await pilot.press("ctrl+s")   # save: written to the file and applied
        await until(pilot, lambda: type(app.screen).__name__ != "GroupEditor")
        out["back"] = type(app.screen).__name__
        out["groups"] = [g.name for g in app.groups]
    print(json.dumps(out))

asyncio.run(main())
"""


def test_editor_and_tomlkit_load_on_g_only(tmp_path: Path) -> None:
    config = tmp_path / "bwmon.toml"
    config.write_text('# keep me\n[general]\ninterval = 1.0\n')
    env = {"PYTHONPATH": str(REPO), "TZ": "UTC", "PATH": "/usr/bin:/bin",
           "BWMON_CONFIG": str(config), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["at_start"] == []
    assert out["after_g"] == ["bwmon.tui.group_editor", "bwmon.tui.groups_file", "tomlkit"]
    assert out["screen"] == "GroupEditor"
    assert out["back"] != "GroupEditor"
    assert len(out["groups"]) == 1
    saved = config.read_text()
    assert saved.startswith("# keep me") and "[[groups]]" in saved
