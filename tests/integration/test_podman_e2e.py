"""End to end with a real container runtime: Podman running an image imported from a busybox
rootfs tarball built by the test (no registry is reachable).

Podman runs inside a network namespace of the test's (`nsenter --net=`), with private storage
under the test's temporary directory, so its bridge, firewall rules and forwarding stay there;
bwmon runs in another namespace, told to measure the namespaces whose names carry the test's
prefix. The container, started after bwmon, must be measured within two ticks and named by its
Podman name; what its process sends to a server in Podman's namespace must be attributed to
that container and process (at least 99 % of the bytes the container's own conntrack table
counted); once the container is removed nothing of it may stay past the row linger.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from bwmon.core.sources.conntrack_parse import parse_conntrack
from tests.helpers.monitor import Monitor
from tests.helpers.netns import NetNS, link, sh
from tests.integration.test_namespaces_engine import INTERVAL, LINGER, _names

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

BUSYBOX = shutil.which("busybox")
PORT = 7400
CHUNKS, CHUNK = 8, 400_000  # sent in chunks half a tick apart: the flow lives several ticks


def _image(tmp: Path) -> Path:
    """A rootfs tarball: a static busybox and its applets as relative symlinks."""
    assert BUSYBOX is not None
    root = tmp / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    tarball = tmp / "rootfs.tar"
    sh("tar", "-C", str(root), "-cf", str(tarball), ".")
    return tarball


class Podman:
    """podman with private storage, run inside a test namespace."""

    def __init__(self, ns: NetNS) -> None:
        self.ns = ns
        # podman takes a runroot of 50 characters at most: not under pytest's tmp_path
        self.tmp = tmp = Path(tempfile.mkdtemp(prefix="bwpd", dir="/tmp"))
        self.base = ["nsenter", f"--net=/run/netns/{ns.name}", "podman",
                     "--root", str(tmp / "root"), "--runroot", str(tmp / "runroot"),
                     "--runtime", "runc", "--cgroup-manager", "cgroupfs"]

    def __call__(self, *argv: str) -> str:
        done = subprocess.run([*self.base, *argv], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (argv, done.stderr[-2000:])
        return done.stdout.strip()

    def cleanup(self) -> None:
        subprocess.run([*self.base, "rm", "-a", "-f", "-t", "0"], capture_output=True,
                       timeout=120)
        subprocess.run([*self.base, "rmi", "-a", "-f"], capture_output=True, timeout=120)
        subprocess.run(["umount", "-R", str(self.tmp / "root" / "overlay")],
                       capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _in_container(pid: int, *argv: str) -> None:
    sh("nsenter", f"--net=/proc/{pid}/ns/net", *argv)


def test_podman_container_traffic_is_its_own(tmp_path: Path) -> None:
    if shutil.which("podman") is None or BUSYBOX is None:
        pytest.fail("podman and busybox-static are test packages (./dev installs them)")
    prefix = f"bwpd{os.getpid()}"
    config = tmp_path / "bwmon.toml"
    config.write_text(
        f'[general]\nrow_linger = {LINGER}\nevents = false\nebpf = "off"\n\n'
        f'[namespaces]\nscope = "all"\ninclude = ["^{prefix}-"]\n')
    tarball = _image(tmp_path)
    name = f"{prefix}-web"
    with NetNS(prefix="bwnh") as home, NetNS(prefix=prefix) as outer:
        podman = Podman(outer)
        bwmon = Monitor(home, config)
        try:
            podman("import", str(tarball), "localhost/bwmon-bb")
            bwmon.wait_for("two ticks", lambda s: s["seq"] >= 2)
            sink = outer.popen(["socat", "-u", f"TCP-LISTEN:{PORT},reuseaddr,fork",
                                "OPEN:/dev/null"])
            before = bwmon.ticks[-1]["seq"]
            script = ("while [ ! -e /go ]; do sleep 0.1; done; "
                      f"for i in $(seq {CHUNKS}); do head -c {CHUNK} /dev/zero; "
                      f"sleep {INTERVAL / 2}; done | nc 10.88.0.1 {PORT}; sleep 30")
            podman("run", "-d", "--name", name, "--ulimit", "nofile=1024:1024",
                   "--ulimit", "nproc=1024:1024", "localhost/bwmon-bb",
                   "/bin/busybox", "sh", "-c", script)
            seen = bwmon.wait_for("the container", lambda s: name in _names(s))
            assert seen["seq"] - before <= 2, (before, seen["seq"])
            pid = int(podman("inspect", "-f", "{{.State.Pid}}", name))
            # the kernel tracks and counts a namespace's flows only with a conntrack rule and
            # accounting there (the manual says so): set inside the container's namespace
            _in_container(pid, "sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1")
            _in_container(pid, "iptables", "-A", "OUTPUT", "-m", "conntrack", "--ctstate",
                          "NEW,ESTABLISHED", "-j", "ACCEPT")
            podman("exec", name, "/bin/busybox", "touch", "/go")
            deadline = time.monotonic() + 30
            truth: list[Any] = []
            while time.monotonic() < deadline:
                text = sh("nsenter", f"--net=/proc/{pid}/ns/net", "cat",
                          "/proc/net/nf_conntrack").stdout
                truth = [e for e in parse_conntrack(text) if e.orig.dport == PORT]
                if truth and truth[0].state not in ("ESTABLISHED", None):
                    break
                time.sleep(0.2)
            sent = sum(e.orig_bytes or 0 for e in truth)
            assert sent > CHUNKS * CHUNK, truth

            def counted(s: dict[str, Any]) -> bool:
                mine = [p for p in s["processes"] if p["container"] == name]
                return sum(p["total_out"] for p in mine) >= 0.99 * sent
            snap = bwmon.wait_for("the container's bytes", counted)
            mine = [p for p in snap["processes"] if p["container"] == name]
            assert sum(p["total_out"] for p in mine) == pytest.approx(sent, rel=0.01)
            assert {p["name"] for p in mine} == {"nc"}, mine
            row = next(a for a in snap["apps"] if a["name"] == name)  # group_by: container
            assert row["total_out"] >= 0.99 * sent

            gone_at = bwmon.ticks[-1]["seq"]
            podman("rm", "-f", "-t", "0", name)
            gone = bwmon.wait_for("the container gone", lambda s: name not in _names(s))
            assert gone["seq"] - gone_at <= 3
            bwmon.wait_for("its rows gone", lambda s: not any(
                a["name"] == name or name in a["containers"] for a in s["apps"]),
                timeout=LINGER + 10)
            sink.kill()
            sink.wait()
        finally:
            bwmon.stop()
            podman.cleanup()
    for table in ("filter", "nat"):
        rules = sh("iptables", "-t", table, "-S").stdout
        assert "CNI-" not in rules and "NETAVARK" not in rules, "podman touched the host"
    assert sys.platform == "linux"


def test_podman_container_behind_nat_counts_once_for_its_process(tmp_path: Path) -> None:
    """The container tracks nothing (no rule in it, as usual): its connection to a server in
    another namespace, masqueraded by Podman's network, is seen only by Podman's namespace,
    as a flow with no local end there. It must go to the container's process, and count once
    in the host total (within 1 % of Podman's namespace's table)."""
    if shutil.which("podman") is None or BUSYBOX is None:
        pytest.fail("podman and busybox-static are test packages (./dev installs them)")
    prefix = f"bwpn{os.getpid()}"
    config = tmp_path / "bwmon.toml"
    config.write_text(
        '[general]\nevents = false\nebpf = "off"\n\n'
        f'[namespaces]\nscope = "all"\ninclude = ["^{prefix}-"]\n')
    tarball = _image(tmp_path)
    name = f"{prefix}-app"
    with NetNS(prefix="bwnh") as home, NetNS(prefix=prefix) as outer, \
            NetNS(prefix=prefix) as server:
        link(outer, server, 0)  # 10.231.0.1 (Podman's namespace) - 10.231.0.2 (the server)
        podman = Podman(outer)
        sink = server.popen(["socat", "-u", f"TCP-LISTEN:{PORT + 1},reuseaddr,fork",
                             "OPEN:/dev/null"])
        bwmon = Monitor(home, config)
        try:
            podman("import", str(tarball), "localhost/bwmon-bb")
            bwmon.wait_for("two ticks", lambda s: s["seq"] >= 2)
            script = (f"for i in $(seq {CHUNKS}); do head -c {CHUNK} /dev/zero; "
                      f"sleep {INTERVAL / 2}; done | nc 10.231.0.2 {PORT + 1}; sleep 30")
            podman("run", "-d", "--name", name, "--ulimit", "nofile=1024:1024",
                   "--ulimit", "nproc=1024:1024", "localhost/bwmon-bb",
                   "/bin/busybox", "sh", "-c", script)
            truth: list[Any] = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                truth = [e for e in parse_conntrack(outer.conntrack_text())
                         if e.orig.dport == PORT + 1]
                if truth and truth[0].state not in ("ESTABLISHED", None):
                    break
                time.sleep(0.2)
            assert truth and truth[0].reply.dst == "10.231.0.1", truth  # masqueraded
            sent = sum(e.orig_bytes or 0 for e in truth)
            total = sent + sum(e.reply_bytes or 0 for e in truth)
            assert sent > CHUNKS * CHUNK

            def counted(s: dict[str, Any]) -> bool:
                mine = [p for p in s["processes"] if p["container"] == name]
                return sum(p["total_out"] for p in mine) >= 0.99 * sent
            bwmon.wait_for("the container's bytes", counted)
            time.sleep(3 * INTERVAL)
            snap = bwmon.ticks[-1]
        finally:
            bwmon.stop()
            podman.cleanup()
            sink.kill()
            sink.wait()
    mine = [p for p in snap["processes"] if p["container"] == name]
    assert {p["name"] for p in mine} == {"nc"}, mine
    assert sum(p["total_out"] for p in mine) == pytest.approx(sent, rel=0.01)
    host = snap["host"]["total_in"] + snap["host"]["total_out"]
    assert host == pytest.approx(total, rel=0.01), (host, total, snap["apps"])
    forwarded = snap["forwarded"]
    assert forwarded is None or forwarded["total_in"] + forwarded["total_out"] < 0.01 * total
