"""An alert shows at 80×24 (issue 23, item 4): bwmon-tui in a real tmux (TERM=xterm-256color)
measures real traffic in a private network namespace, an alert rule fires for it, and the header
names the alert although the alert log pane is hidden at that width; the footer fits 80 columns,
so `? Help` and `l Log` (the log's key there) can be found."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TRAFFIC
from tests.helpers.netns import NetNS
from tests.helpers.terminal import REPO, Tmux

pytestmark = pytest.mark.privileged


def test_an_active_alert_shows_in_the_header_at_80x24(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("needs tmux (Debian: tmux)", pytrace=False)
    config = tmp_path / "bwmon.toml"
    config.write_text(
        '[general]\ninterval = 0.5\n'
        '[[groups]]\nname = "alertgen"\npatterns = ["--tag alertgen"]\n'
        '[[alerts]]\nname = "budget"\nmatch = "alertgen"\nin_threshold = 1.0\nwindow = 1.0\n')
    with NetNS() as ns:
        sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", "5001"],
                        stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        ns.popen([sys.executable, TRAFFIC, "client", "--tag", "alertgen", "--host", "127.0.0.1",
                  "--port", "5001", "--send", "200000", "--recv", "200000", "--count", "2000",
                  "--hold", "0.1"], stdout=subprocess.DEVNULL)
        command = (f"ip netns exec {ns.name} env -u COLUMNS -u LINES TERM=xterm-256color "
                   f"PYTHONPATH={REPO} {sys.executable} -m bwmon.tui.main --config {config}")
        with Tmux(f"bwmon-alert-{os.getpid()}", command, (80, 24)) as tmux:
            tmux.wait(lambda s: "alertgen" in s, timeout=60)
            try:
                screen = tmux.wait(lambda s: "ALERT alertgen in" in s, timeout=20)
            except AssertionError as exc:
                raise AssertionError(f"no alert on the screen at 80×24: {exc}") from None
            rows = screen.splitlines()
            assert "ALERT alertgen in > 1.00 KiB/s" in rows[1], rows[:2]
            footer = rows[-1].rstrip()
            assert len(footer) <= 80 and footer.split()[-2:] == ["l", "Log"], footer
            assert "? Help" in footer and "g Groups" in footer, footer
