"""The findings panel shows every fix (issue 23, item 9): bwmon-tui in a real tmux at 120×40
(TERM=xterm-256color) in a private network namespace where conntrack counts nothing (no
accounting, no tracking rule). Each fix the doctor gives there, and the line that says how to
apply them, is on the screen whole."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import pytest

from tests.helpers.netns import NetNS
from tests.helpers.terminal import REPO, Tmux

pytestmark = pytest.mark.privileged


def test_every_fix_of_the_findings_panel_shows_at_120x40() -> None:
    if shutil.which("tmux") is None:
        pytest.fail("needs tmux (Debian: tmux)", pytrace=False)
    with NetNS(acct=False, track=False) as ns:
        doctor = ns.run(sys.executable, "-m", "bwmon", "doctor", "--json", check=False,
                        env=dict(os.environ, PYTHONPATH=str(REPO)))
        fixes = [f["fix"] for f in json.loads(doctor.stdout)["findings"]
                 if not f["ok"] and f["fix"]]
        assert len(fixes) >= 3, doctor.stdout  # accounting, IPv4 and IPv6 tracking
        # nothing measured: no socket counters and no eBPF byte sums either
        command = (f"ip netns exec {ns.name} env -u COLUMNS -u LINES TERM=xterm-256color "
                   f"BWMON_GENERAL__SOCKET_COUNTERS=false BWMON_GENERAL__EBPF=off "
                   f"PYTHONPATH={REPO} {sys.executable} -m bwmon.tui.main")
        with Tmux(f"bwmon-findings-{os.getpid()}", command, (120, 40)) as tmux:
            tmux.wait(lambda s: "Nothing can be measured" in s, timeout=60)
            time.sleep(1.0)
            screen = tmux.screen()
    lines = [line.lstrip("█ ").rstrip() for line in screen.splitlines()]
    text = " ".join(lines)
    missing = [fix for fix in fixes if f"fix: {fix}" not in text]
    assert not missing, f"fixes cut off: {missing}\n{screen}"
    assert any(line.startswith(("Press f", "Run the commands above")) for line in lines), screen
