"""The first screen a new user sees (issue 23, item 8), with bwmon-tui in a real tmux at 80×24
(TERM=xterm-256color) measuring real processes in a private network namespace:

- lookback counts what connections still open at start had already moved, but not the bytes of
  connections closed before bwmon started (their processes may be long gone): those used to sit
  in `(unattributed)`, or on a server's row, at the top of the first screen;
- the header says in words whether bwmon measures (no `sources 2/2`, no `owners: poll+…`);
- when the log suggests a fix (here: conntrack events, 2 in a new namespace), `f` offers that
  very fix instead of saying there is nothing to fix.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TRAFFIC
from tests.helpers.netns import NetNS
from tests.helpers.terminal import REPO, Tmux

pytestmark = pytest.mark.privileged
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
OLD = 4_000_000  # bytes each finished connection sent before bwmon started


def rows(screen: str) -> dict[str, list[str]]:
    found = {}
    for line in screen.splitlines()[3:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 7 and re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB)", cells[3]):
            found[cells[0]] = cells
    return found


def size(cell: str) -> float:
    number, unit = cell.split()
    return float(number) * UNITS[unit]


def test_first_screen_lookback_words_and_fixes(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("needs tmux (Debian: tmux)", pytrace=False)
    config = tmp_path / "bwmon.toml"
    config.write_text('[general]\ninterval = 0.5\nlookback = true\n'
                      '[[groups]]\nname = "holdgen"\npatterns = ["--tag holdgen"]\n')
    problems: list[str] = []
    with NetNS(events=2) as ns:  # the kernel's default ("auto"): the doctor suggests 1
        sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", "5001"],
                        stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        ns.run(sys.executable, TRAFFIC, "client", "--tag", "gone", "--host", "127.0.0.1",
               "--port", "5001", "--send", str(OLD), "--recv", "1000", "--count", "4",
               timeout=60)  # over and exited before bwmon starts: TIME_WAIT in conntrack
        ns.popen([sys.executable, TRAFFIC, "client", "--tag", "holdgen", "--host", "127.0.0.1",
                  "--port", "5001", "--send", str(OLD // 2), "--recv", "1000", "--count", "1",
                  "--hold", "120"], stdout=subprocess.DEVNULL)
        time.sleep(1.0)  # holdgen's bytes are moved: only looking back can count them
        command = (f"ip netns exec {ns.name} env -u COLUMNS -u LINES TERM=xterm-256color "
                   f"PYTHONPATH={REPO} {sys.executable} -m bwmon.tui.main --config {config}")
        with Tmux(f"bwmon-first-{os.getpid()}", command, (80, 24)) as tmux:
            screen = tmux.wait(lambda s: "holdgen" in rows(s), timeout=60)
            time.sleep(1.5)
            screen = tmux.screen()
            shown = rows(screen)
            if size(shown["holdgen"][4]) < OLD // 2:
                problems.append(f"lookback lost an open connection's bytes: {shown['holdgen']}")
            old = {n: c[3:5] for n, c in shown.items() if n != "holdgen"
                   and max(size(c[3]), size(c[4])) >= OLD}
            if old:
                problems.append(f"bytes of connections closed before start are counted: {old}")
            head = "\n".join(screen.splitlines()[:2])
            if re.search(r"sources \d+/\d+|owners:", head) or "measuring" not in head:
                problems.append(f"jargon in the header: {head}")
            tmux.keys("l")  # the alert log (80 columns: it shares its place with the details)
            screen = tmux.wait(lambda s: "nf_conntrack_events" in s, timeout=20)
            suggested = "sysctl -w net.netfilter.nf_conntrack_events=1"
            assert "fix:" in screen and suggested in screen.replace("\n", ""), screen
            tmux.keys("f")
            try:  # the panel f opens: the fix offered, or "Nothing to fix"
                screen = tmux.wait(lambda s: suggested in s
                                   or "Nothing to fix" in s, timeout=10)
            except AssertionError:
                screen = tmux.screen()
            if suggested not in screen or "Nothing to fix" in screen:
                problems.append(f"the log suggests a fix, f does not offer it:\n{screen}")
            tmux.keys("n")  # run nothing
            time.sleep(0.5)
        events = ns.run("sysctl", "-n", "net.netfilter.nf_conntrack_events").stdout.strip()
        assert events == "2"  # n changed nothing
    assert not problems, "\n".join(problems)
