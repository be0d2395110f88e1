"""The core never imports the UI: every bwmon.core module loads without textual, rich or
bwmon.tui ending up in sys.modules (checked in a fresh interpreter)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import bwmon.core

REPO = Path(__file__).resolve().parents[2]


def test_core_imports_no_ui() -> None:
    modules = [m.name for m in pkgutil.walk_packages(bwmon.core.__path__, "bwmon.core.")]
    assert len(modules) > 20
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')\n"
        "             or m.startswith('bwmon.tui'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=True)
    assert done.stdout.strip() == "", f"bwmon.core pulled in: {done.stdout.strip()}"


def test_headless_commands_import_no_ui() -> None:
    code = ("import sys, bwmon.cli\nbwmon.cli.build_parser()\n"
            "print(','.join(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, check=True)
    assert done.stdout.strip() == ""
