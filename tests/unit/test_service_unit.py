"""contrib/bwmon.service: hardened (systemd's own exposure score), not restarted on a
configuration error, and shown in the manual exactly as shipped."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

UNIT = REPO / "contrib" / "bwmon.service"
SECTION = REPO / "docs" / "sections" / "service.html"
MAX_EXPOSURE = 3.0


def test_systemd_rates_the_unit_at_most_3() -> None:
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", str(UNIT)],
                          capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for bwmon\.service: (\d+\.\d+)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, done.stdout


def test_a_configuration_error_is_not_restarted(tmp_path: Path) -> None:
    """RestartPreventExitStatus=2 matches the status `bwmon serve` really exits with."""
    assert "RestartPreventExitStatus=2" in UNIT.read_text().splitlines()
    bad = tmp_path / "bwmon.toml"
    bad.write_text("[general]\ninterval = 'often'\n")
    done = subprocess.run([sys.executable, "-m", "bwmon", "serve", "--config", str(bad),
                           "--http", "127.0.0.1:9"], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode == 2 and "interval" in done.stderr, done.stderr


def test_the_manual_shows_the_unit_as_shipped() -> None:
    text = UNIT.read_text()
    shown = html.escape(text[text.index("[Unit]"):], quote=False)
    assert f"<pre>\n{shown}</pre>" in SECTION.read_text()
