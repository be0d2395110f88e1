"""Conn and Proc count what is open and alive (issue 23, item 7). bwmon-tui in a real tmux
measures real clients in a private network namespace: one made many short connections and
exited (its connections wait in TIME_WAIT, its process is gone), one holds connections open.
The first row shows 0 connections and 0 processes, the second as many connections as `ss`
lists established for its process, and 1 process."""

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


def row(screen: str, name: str) -> list[str] | None:
    for line in screen.splitlines()[3:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 7 and cells[0] == name:
            return cells
    return None


def test_conn_and_proc_leave_out_time_wait_and_exited_processes(tmp_path: Path) -> None:
    if shutil.which("tmux") is None or shutil.which("ss") is None:
        pytest.fail("needs tmux and ss (Debian: tmux iproute2)", pytrace=False)
    config = tmp_path / "bwmon.toml"
    config.write_text('[general]\ninterval = 0.5\n'
                      '[[groups]]\nname = "shortgen"\npatterns = ["--tag shortgen"]\n'
                      '[[groups]]\nname = "holdgen"\npatterns = ["--tag holdgen"]\n')
    with NetNS() as ns:
        sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", "5001"],
                        stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        command = (f"ip netns exec {ns.name} env -u COLUMNS -u LINES TERM=xterm-256color "
                   f"PYTHONPATH={REPO} {sys.executable} -m bwmon.tui.main --config {config}")
        with Tmux(f"bwmon-counts-{os.getpid()}", command, (120, 40)) as tmux:
            tmux.wait(lambda s: "App" in s and "Conn" in s, timeout=60)
            hold = ns.popen([sys.executable, TRAFFIC, "client", "--tag", "holdgen",
                             "--host", "127.0.0.1", "--port", "5001", "--send", "1000",
                             "--recv", "1000", "--count", "3", "--parallel", "--hold", "60"],
                            stdout=subprocess.DEVNULL)
            short = ns.popen([sys.executable, TRAFFIC, "client", "--tag", "shortgen",
                              "--host", "127.0.0.1", "--port", "5001", "--send", "1000",
                              "--recv", "1000", "--count", "40", "--hold", "0.05"],
                             stdout=subprocess.DEVNULL)
            short.wait(30)
            client = [p for p in ns.pids() if str(hold.pid) in
                      ns.run("ps", "-o", "ppid=", "-p", str(p), check=False).stdout.split()
                      or p == hold.pid]
            time.sleep(2)
            listed = ns.run("ss", "-Htnp", "state", "established").stdout
            held = sum(1 for line in listed.splitlines()
                       if any(f"pid={p}," in line for p in client)
                       and ":5001 " in line.split()[3] + " ")  # the client's side: remote 5001
            waiting = ns.run("ss", "-Htn", "state", "time-wait").stdout.count("\n")
            assert held >= 1 and waiting >= 10, (listed, waiting)
            screen = tmux.wait(lambda s: row(s, "shortgen") is not None
                               and row(s, "holdgen") is not None, timeout=20)
            time.sleep(1.5)
            screen = tmux.screen()
            short_row, hold_row = row(screen, "shortgen"), row(screen, "holdgen")
            assert short_row is not None and hold_row is not None, screen
            assert short_row[5:7] == ["0", "0"], (
                f"shortgen exited, {waiting} sockets in TIME_WAIT, none established, but its "
                f"row counts Proc {short_row[5]}, Conn {short_row[6]}:\n{screen}")
            assert hold_row[5:7] == ["1", str(held)], (hold_row, held, screen)
