"""The table at 80 columns with containers and units, in a real tmux pane: found trying
bwmon-tui at 80x24 with one process in a Docker-shaped cgroup and one in a systemd service.

The Container/unit column appeared and pushed Proc and Conn off the screen (the table scrolled
sideways), cut every app name to 12 columns ("(unattribut…", "docker:4f1c…"), and only
repeated the names of rows that were named by their container or unit. In the process view,
names were cut before their pid ("traffic.py [1…"), so rows could not be told apart."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TRAFFIC
from tests.helpers.cgroups import Cgroup
from tests.helpers.netns import NetNS
from tests.helpers.terminal import REPO, Tmux
from tests.tui.test_ssh_e2e import tui_command

pytestmark = pytest.mark.privileged
PORT = 6023


def test_80_columns_keep_every_column_and_each_process_pid(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux (Debian: tmux)")
    config = tmp_path / "bwmon.toml"
    config.write_text('[general]\nevents = false\nebpf = "off"\n')
    cid = secrets.token_hex(32)
    unit = f"nightly-backup-{secrets.token_hex(3)}.service"
    with NetNS(acct=False, track=False) as ns, \
            Cgroup(f"/system.slice/docker-{cid}.scope") as box, \
            Cgroup(f"/system.slice/{unit}") as service:
        sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", str(PORT)],
                        stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        clients = []
        for tag, group in (("boxed", box), ("backup", service), ("plain", None)):
            client = ns.popen([sys.executable, TRAFFIC, "client", "--tag", tag, "--host",
                               "127.0.0.1", "--port", str(PORT), "--send", "60000000",
                               "--rate", "200000"], stdout=subprocess.DEVNULL)
            if group is not None:
                group.add(client.pid)
            clients.append(client)
        command = (f"ip netns exec {ns.name} env PYTHONPATH={REPO} {tui_command()} "
                   f"--config {config}")
        with Tmux(f"bwmon-narrow-{os.getpid()}", command, (80, 24),
                  env={"TERM": "xterm-256color"}) as tmux:
            screen = tmux.wait(lambda s: f"docker:{cid[:4]}" in s and "nightly" in s, 60)
            heading = next(line for line in screen.splitlines() if "In/s" in line)
            assert "Proc" in heading and "Conn" in heading, screen
            # a row named by its container or unit does not repeat it in another column
            assert screen.count(f"docker:{cid[:8]}") == 1, screen
            tmux.keys("p")
            pids = [str(c.pid) for c in clients]
            screen = tmux.wait(lambda s: "Process" in s and sum(p in s for p in pids) >= 3, 20)
            table = screen.split("────")[0]
            for pid in pids:
                assert f"[{pid}]" in table, screen
