"""Finding and naming network namespaces and containers on the real kernel.

Namespaces made by the test (`ip netns add`, `unshare --net`) must be found by the scan, named,
and dropped once gone; processes moved into real cgroups shaped like each runtime's must be
named by that runtime's metadata (kept in the test's temporary directories) or the cgroup path.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bwmon.core.namespaces.netns import NamespaceScan
from bwmon.core.namespaces.placement import Placer
from bwmon.core.namespaces.runtimes import RuntimeNames
from tests.helpers.cgroups import Cgroup
from tests.helpers.netns import NetNS

pytestmark = [pytest.mark.privileged]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def _child_of(parent: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kids = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            kids = []
        if kids:
            return int(kids[0])
        time.sleep(0.01)
    raise AssertionError(f"process {parent} started no child")


def test_scan_finds_follows_and_forgets(procs: list[subprocess.Popen[bytes]]) -> None:
    scan = NamespaceScan(Path("/proc"), mount_dirs=[Path("/run/netns")])
    placer = Placer(scan)
    scan.scan()
    with NetNS(track=False) as mounted:
        change = scan.scan()
        inode = os.stat(f"/run/netns/{mounted.name}").st_ino
        assert inode in change.added
        ns = scan.namespaces[inode]
        assert ns.pid is None and ns.mount_names == (mounted.name,)
        assert placer.namespace_name(ns) == mounted.name

        unshared = subprocess.Popen(["unshare", "--net", "sleep", "60"])
        procs.append(unshared)
        sleeper = unshared.pid  # unshare (without --fork) enters the namespace, execs sleep
        deadline = time.monotonic() + 5
        own = scan.own
        while time.monotonic() < deadline:
            other = os.stat(f"/proc/{sleeper}/ns/net").st_ino
            if other != own and Path(f"/proc/{sleeper}/comm").read_text().strip() == "sleep":
                break
            time.sleep(0.01)
        change = scan.scan()
        assert other in change.added
        assert scan.namespaces[other].pid == sleeper
        assert placer.namespace_name(scan.namespaces[other]) == f"netns:{other}"
        assert placer(sleeper) == (f"netns:{other}", "")

        inside = mounted.popen(["sleep", "60"])
        procs.append(inside)
        time.sleep(0.2)
        scan.scan()
        assert scan.namespaces[inode].processes == 1
        assert scan.namespaces[inode].pid is not None
        assert placer(scan.namespaces[inode].pid)[0] == mounted.name

        unshared.kill()
        unshared.wait()
        for _ in range(50):
            if not Path(f"/proc/{sleeper}").exists():
                break
            time.sleep(0.02)
        change = scan.scan()
        assert other in change.removed and other not in scan.namespaces
    inside.wait()
    change = scan.scan()
    assert inode in change.removed and inode not in scan.namespaces


CID = "{:064x}"


def _runtime_shapes(tmp: Path) -> list[tuple[str, str, str, str]]:
    """(cgroup path, container id, expected container, expected unit) per runtime."""
    ids = [secrets.token_hex(32) for _ in range(6)]
    tag = secrets.token_hex(3)
    docker_root = tmp / "docker"
    (docker_root / "containers" / ids[0]).mkdir(parents=True)
    (docker_root / "containers" / ids[0] / "config.v2.json").write_text(
        json.dumps({"Name": f"/web-{tag}"}))
    bundle = tmp / "containerd" / "k8s.io" / ids[2]
    bundle.mkdir(parents=True)
    bundle.joinpath("config.json").write_text(json.dumps({"annotations": {
        "io.kubernetes.cri.sandbox-namespace": "shop",
        "io.kubernetes.cri.sandbox-name": f"front-{tag}",
        "io.kubernetes.cri.container-name": "nginx"}}))
    pod = "pod" + secrets.token_hex(4) + "_1234_5678_9abc_" + secrets.token_hex(6)
    return [
        (f"/system.slice/docker-{ids[0]}.scope", ids[0], f"web-{tag}", ""),
        (f"/docker/{ids[1]}", ids[1], f"docker:{ids[1][:12]}", ""),
        (f"/kubepods.slice/kubepods-{pod}.slice/cri-containerd-{ids[2]}.scope", ids[2],
         f"shop/front-{tag}/nginx", ""),
        (f"/machine.slice/systemd-nspawn@box{tag}.service/payload", "", f"box{tag}", ""),
        (f"/lxc.payload.lx{tag}", "", f"lx{tag}", ""),
        (f"/system.slice/bwtest{tag}.service", "", "", f"bwtest{tag}.service"),
    ]


def test_each_runtime_cgroup_names_its_process(tmp_path: Path,
                                                procs: list[subprocess.Popen[bytes]]) -> None:
    scan = NamespaceScan(Path("/proc"), mount_dirs=[])
    runtimes = RuntimeNames(Path("/proc"), docker_root=tmp_path / "docker",
                            containerd_state=tmp_path / "containerd")
    placer = Placer(scan, runtimes)
    for path, _cid, container, unit in _runtime_shapes(tmp_path):
        sleeper = subprocess.Popen(["sleep", "60"])
        procs.append(sleeper)
        with Cgroup(path) as group:
            group.add(sleeper.pid)
            assert placer(sleeper.pid) == (container, unit), path
            sleeper.kill()
            sleeper.wait()


def test_podman_style_container_named_by_its_conmon(procs: list[subprocess.Popen[bytes]]) -> None:
    """Podman (and CRI-O) keep the name on conmon's command line, the container's parent."""
    cid = secrets.token_hex(32)
    name = f"db-{secrets.token_hex(3)}"
    conmon = subprocess.Popen(["bash", "-c", f"exec -a conmon bash -c 'sleep 60 & wait' "
                               f"conmon -c {cid} -n {name}"])
    procs.append(conmon)
    child = _child_of(conmon.pid)
    placer = Placer(NamespaceScan(Path("/proc"), mount_dirs=[]))
    with Cgroup(f"/libpod_parent/libpod-{cid}") as group:
        group.add(child)
        assert placer(child) == (name, "")
        conmon.kill()
