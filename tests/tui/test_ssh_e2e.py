"""End to end over SSH: bwmon-tui in tmux, through a real SSH session to sshd on loopback (key
auth, all set up here), measuring real traffic in a private network namespace. The generator's
app row shows a non-zero rate, a key re-sorts, q quits, and nothing is left running remotely."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import TRAFFIC
from tests.helpers.netns import NetNS
from tests.helpers.terminal import REPO, Tmux

pytestmark = pytest.mark.privileged
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def need_tools() -> None:
    missing = [t for t in ("tmux", "ssh", "ssh-keygen") if shutil.which(t) is None]
    if not os.path.exists(SSHD):
        missing.append("sshd")
    if missing:
        message = f"needs {', '.join(missing)} (Debian: tmux openssh-server openssh-client)"
        pytest.skip(message)


def tui_command() -> str:
    """The installed bwmon-tui of this interpreter's environment, else the module."""
    script = Path(sys.executable).with_name("bwmon-tui")
    if script.exists():
        return f"{sys.executable} {script}"
    return f"{sys.executable} -m bwmon.tui.main"


def tui_in(ns: NetNS, config: Path) -> str:
    """The shell command that starts bwmon-tui with `config` inside the namespace `ns`."""
    return f"ip netns exec {ns.name} env PYTHONPATH={REPO} {tui_command()} --config {config}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """sshd on 127.0.0.1:PORT accepting only a key generated here; yields (port, client key)."""
    need_tools()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    host_key, client_key = tmp_path / "host_key", tmp_path / "client_key"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
    authorized = tmp_path / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    config = tmp_path / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nPidFile {tmp_path / 'sshd.pid'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PrintMotd no\nPrintLastLog no\nAcceptEnv LANG LC_*\n"
    )
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                            stderr=open(tmp_path / "sshd.log", "w"))  # noqa: SIM115
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield port, client_key
    finally:
        proc.terminate()
        proc.wait(10)


def app_row(screen: str, name: str) -> list[str] | None:
    """The cells of `name`'s row in the app table as shown on screen."""
    for line in screen.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0] == name:
            return cells
    return None


def remote_tui(config: Path) -> list[int]:
    """PIDs of the bwmon-tui started over SSH (not the tmux or ssh processes naming it)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd and os.path.basename(cmd[0]).startswith("python") and str(config) in cmd:
            found.append(proc.pid)
    return found


def busy(cells: list[str] | None) -> bool:
    return cells is not None and len(cells) > 2 and cells[1] not in ("0 B", "")


def test_bwmon_tui_over_ssh_in_tmux(sshd: tuple[int, Path], tmp_path: Path) -> None:
    port, key = sshd
    config = tmp_path / "bwmon.toml"
    config.write_text('[[groups]]\nname = "e2egen"\npatterns = ["--tag e2egen"]\n')
    with NetNS() as ns:
        sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", "5001"],
                        stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        ns.popen([sys.executable, TRAFFIC, "client", "--tag", "e2egen", "--host", "127.0.0.1",
                  "--port", "5001", "--send", "200000", "--recv", "200000", "--count", "2000",
                  "--hold", "0.2"], stdout=subprocess.DEVNULL)
        # (the login's HOME is root's: the history store goes under the test's directory)
        remote = (f"ip netns exec {ns.name} env PYTHONPATH={REPO} "
                  f"XDG_STATE_HOME={tmp_path / 'state'} {tui_command()} --config {config}")
        ssh = (f"ssh -tt -p {port} -i {key} -o StrictHostKeyChecking=no "
               f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@127.0.0.1 '{remote}'")
        tmux = Tmux(f"bwmon-e2e-{os.getpid()}", ssh, (120, 40))
        try:
            screen = tmux.wait(lambda s: busy(app_row(s, "e2egen")), timeout=60)
            cells = app_row(screen, "e2egen")
            assert cells is not None and re.match(r"[\d.]+ (B|KiB|MiB|GiB)$", cells[1])
            assert "In/s ▼" in screen
            tmux.keys("1")  # sort by name, A first
            screen = tmux.wait(lambda s: "App ▲" in s, timeout=20)
            rate = re.compile(r"[\d.]+ (B|KiB|MiB|GiB)$")
            names = [c[0] for line in screen.splitlines()[3:]
                     if (c := re.split(r"\s{2,}", line.strip())) and len(c) >= 7
                     and rate.match(c[1])]  # table rows only, not the footer
            plain = [n for n in names if not n.startswith("(")]
            assert plain == sorted(plain, key=str.lower) and "e2egen" in plain
            assert len(remote_tui(config)) == 1  # so the check below can fail
            tmux.keys("q")
            deadline = time.monotonic() + 20
            while not tmux.pane_dead() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert tmux.pane_dead(), "the SSH session did not end after q"
            time.sleep(0.5)
            assert remote_tui(config) == [], "bwmon-tui still running after the session ended"
        finally:
            tmux.kill()
        # the link drops (terminal and ssh client gone): the remote side must not linger
        tmux = Tmux(f"bwmon-e2e-{os.getpid()}-2", ssh, (80, 24))
        try:
            tmux.wait(lambda s: app_row(s, "e2egen") is not None, timeout=60)
            assert len(remote_tui(config)) == 1
        finally:
            tmux.kill()
        deadline = time.monotonic() + 15
        while remote_tui(config) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert remote_tui(config) == [], "bwmon-tui kept running after the SSH session dropped"
