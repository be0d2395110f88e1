"""Containers and units read from /proc/PID/cgroup texts as each runtime shapes them."""

from __future__ import annotations

import pytest

from bwmon.core.namespaces.cgroups import Placement, parse_cgroup
from bwmon.core.namespaces.runtimes import split_k8s

CID = "3f4e1a2b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"
POD = "0f3c2a1b-4d5e-6f70-8192-a3b4c5d6e7f8"


def v2(path: str) -> str:
    return f"0::{path}\n"


def v1(path: str, systemd: str | None = None) -> str:
    return "".join(f"{n}:{c}:{path}\n" for n, c in ((9, "pids"), (4, "memory"))) + (
        f"1:name=systemd:{systemd if systemd is not None else path}\n0::/\n")


@pytest.mark.parametrize(("text", "want"), [
    (v2(f"/system.slice/docker-{CID}.scope"), Placement("docker", CID)),
    (v1(f"/docker/{CID}"), Placement("docker", CID)),
    (v2(f"/machine.slice/libpod-{CID}.scope/container"), Placement("podman", CID)),
    (v1(f"/libpod_parent/libpod-{CID}"), Placement("podman", CID)),
    (v2(f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{CID}.scope"),
     Placement("podman", CID, "", "user@1000.service")),
    (v2("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
        f"{POD.replace('-', '_')}.slice/cri-containerd-{CID}.scope"),
     Placement("containerd", CID, POD)),
    (v2(f"/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice/crio-{CID}.scope"),
     Placement("cri-o", CID, POD)),
    (v1(f"/kubepods/besteffort/pod{POD}/{CID}"), Placement("kubernetes", CID, POD)),
    (v2("/machine.slice/systemd-nspawn@web.service/payload/system.slice/nginx.service"),
     Placement("nspawn", "web", "", "nginx.service")),
    (v2("/machine.slice/machine-db.scope"), Placement("nspawn", "db")),
    (v2("/lxc.payload.box1/init.scope"), Placement("lxc", "box1", "", "init.scope")),
    (v1("/lxc/old1"), Placement("lxc", "old1")),
    (v2("/system.slice/nginx.service"), Placement(unit="nginx.service")),
    (v2("/user.slice/user-1000.slice/user@1000.service/app.slice/x.service"),
     Placement(unit="user@1000.service")),
    (v2("/user.slice/user-1000.slice/session-3.scope"), Placement(unit="session-3.scope")),
    (v1("/", systemd="/system.slice/ssh.service"), Placement(unit="ssh.service")),
    (v2(f"/machine.slice/libpod-conmon-{CID}.scope"), Placement()),
    (v2("/"), Placement()),
    ("garbage without colons\n", Placement()),
])
def test_each_runtime_shape(text: str, want: Placement) -> None:
    assert parse_cgroup(text) == want


def test_kubernetes_names_from_conmon_style_names() -> None:
    assert split_k8s("k8s_web_frontend-7d9_shop_0f3c_0") == "shop/frontend-7d9/web"
    assert split_k8s("web") == "web"
