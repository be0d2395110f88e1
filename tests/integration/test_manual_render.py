"""The manual renders in headless Chromium with no console errors, every section reachable.

Internal links, pictures and outside fetches are checked in tests/unit/test_manual.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MANUAL = REPO / "docs" / "manual.html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.skip("needs the chromium package (./dev test installs it)")
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr",
         "--v=0", "--window-size=1100,900", "--virtual-time-budget=3000", *args,
         MANUAL.as_uri()],
        capture_output=True, text=True, timeout=120,
    )


def test_manual_renders_without_console_errors(tmp_path: Path) -> None:
    done = _chromium(tmp_path, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines()
               if "CONSOLE" in line or "Uncaught" in line or "Failed to load" in line
               or "ERR_FILE_NOT_FOUND" in line]
    assert not console, console
    dom = done.stdout
    # every section made it into the rendered page, with its table of contents entry
    ids = re.findall(r'<section id="([^"]+)"', MANUAL.read_text())
    assert len(ids) >= 15
    for section in ids:
        assert f'id="{section}"' in dom and f'href="#{section}"' in dom


def test_manual_screenshot_is_not_blank(tmp_path: Path) -> None:
    shot = tmp_path / "manual.png"
    done = _chromium(tmp_path, f"--screenshot={shot}")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # text and tables, not an empty page
