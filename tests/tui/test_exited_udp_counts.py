"""Proc and Conn leave out a UDP program once it has exited, in a real tmux pane: found trying
bwmon-tui in a stock namespace with eBPF, where a loop of short UDP clients showed
`python … Proc 15 Conn 45` while none of them ran (issue 23, item 7, again: the eBPF byte
sums keep an idle UDP socket "open" for 30 s, since UDP has no close to see, and its owner
with it, exited or not)."""

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
from tests.helpers.generators import sink
from tests.helpers.netns import NetNS
from tests.helpers.terminal import Tmux
from tests.integration.test_short_processes import need_ebpf
from tests.tui.test_ssh_e2e import tui_in

pytestmark = pytest.mark.privileged
PORT = 6031


def counts(screen: str, name: str) -> tuple[int, int] | None:
    """(Proc, Conn) of the row called `name`, as the screen shows them."""
    for line in screen.splitlines():
        if line.split()[:1] == [name]:
            figures = re.findall(r"\s(\d+)\s+(\d+)(?=\s|$)", line)
            return (int(figures[-1][0]), int(figures[-1][1])) if figures else None
    return None


def test_an_exited_udp_client_counts_no_process_and_no_connection(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux (Debian: tmux)")
    need_ebpf()
    config = tmp_path / "bwmon.toml"
    config.write_text('[general]\nevents = false\nebpf = "on"\n\n[[groups]]\n'
                      'name = "udp-gen"\npatterns = ["--tag udp-gen "]\n')
    with NetNS(acct=False, track=False) as ns:
        sink(ns, PORT)
        command = tui_in(ns, config)
        with Tmux(f"bwmon-udp-exit-{os.getpid()}", command, (120, 40),
                  env={"TERM": "xterm-256color"}) as tmux:
            tmux.wait(lambda s: "In/s" in s, 30)
            # three UDP exchanges over three seconds (long enough for its command line to be
            # read), then the client exits
            client = ns.popen([sys.executable, TRAFFIC, "client", "--tag", "udp-gen",
                               "--proto", "udp", "--host", "127.0.0.1", "--port", str(PORT),
                               "--send", "20000", "--recv", "1000", "--count", "3",
                               "--hold", "1"], stdout=subprocess.DEVNULL)
            running = tmux.wait(lambda s: (counts(s, "udp-gen") or (0, 0))[0] == 1, 20)
            assert client.wait(timeout=20) == 0
            exited = time.monotonic()
            screen = tmux.wait(lambda s: counts(s, "udp-gen") is not None, 5)
            deadline = exited + 8  # a few ticks, far below the 30 s an idle socket stays
            while time.monotonic() < deadline and counts(screen, "udp-gen") != (0, 0):
                time.sleep(0.5)
                screen = tmux.screen()
            assert counts(screen, "udp-gen") == (0, 0), f"{running}\n---\n{screen}"
