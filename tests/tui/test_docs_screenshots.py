"""The manual's TUI pictures are current: regenerating them from the demo data gives the
committed files byte for byte (run `python3 docs/make_screenshots.py` after a visible change)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_screenshots_in_the_manual_are_current() -> None:
    done = subprocess.run([sys.executable, str(REPO / "docs" / "make_screenshots.py"), "--check"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("wrote") == 6
