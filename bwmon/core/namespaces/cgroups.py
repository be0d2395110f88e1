"""What a process's cgroup path says about it: its container (runtime, id, names) and unit.

Pure: the text of /proc/PID/cgroup in, a `Placement` out. The shapes recognised are those the
runtimes create under systemd or their own cgroupfs drivers, cgroup v1 or v2:

- Docker: `.../docker-<id>.scope` (systemd) or `/docker/<id>` (cgroupfs);
- Podman: `.../libpod-<id>.scope`, `/libpod_parent/libpod-<id>`, `/machine.slice/libpod-<id>`;
- Kubernetes (containerd, CRI-O, dockershim): `kubepods…pod<uid>…/cri-containerd-<id>.scope`,
  `crio-<id>.scope`, `docker-<id>.scope`, or `/kubepods/<qos>/pod<uid>/<id>`;
- systemd-nspawn: `/machine.slice/systemd-nspawn@<name>.service` or `machine-<name>.scope`;
- LXC / LXD: `/lxc.payload.<name>`, `/lxc.payload/<name>`, `/lxc/<name>`.

The unit is the outermost `*.service` (`nginx.service`, `user@1000.service`), else a scope
that is no container's (`session-3.scope`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ID = r"[0-9a-f]{12,64}"
# (runtime, pattern over one path component, group holding the id or name)
_CONTAINER_SCOPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("docker", re.compile(rf"^docker-({_ID})\.scope$")),
    ("podman", re.compile(rf"^libpod-({_ID})(?:\.scope)?$")),
    ("containerd", re.compile(rf"^cri-containerd-({_ID})\.scope$")),
    ("cri-o", re.compile(rf"^crio-({_ID})\.scope$")),
    ("nspawn", re.compile(r"^systemd-nspawn@(.+)\.service$")),
    ("nspawn", re.compile(r"^machine-(.+)\.scope$")),
    ("lxc", re.compile(r"^lxc\.payload\.(.+)$")),
)
_BARE_ID = re.compile(rf"^{_ID}$")
_POD = re.compile(r"^(?:kubepods-(?:[a-z]+-)?)?pod([0-9a-f_-]{8,})(?:\.slice)?$")


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a process runs, as far as its cgroup says. Empty strings: nothing known."""

    runtime: str = ""  # docker, podman, containerd, cri-o, nspawn, lxc, kubernetes
    container_id: str = ""  # the runtime's id (hex), or the machine's name for nspawn/LXC
    pod_uid: str = ""  # Kubernetes pod UID (dashes), when the path holds one
    unit: str = ""  # the systemd unit: nginx.service, user@1000.service, session-3.scope

    @property
    def in_container(self) -> bool:
        return bool(self.runtime)


def cgroup_paths(text: str) -> list[str]:
    """The paths of /proc/PID/cgroup, unified (v2) and named systemd hierarchy first."""
    first: list[str] = []
    rest: list[str] = []
    for line in text.splitlines():
        _, sep, tail = line.partition(":")
        controllers, sep2, path = tail.partition(":")
        if not (sep and sep2):
            continue
        if controllers in ("", "name=systemd"):
            first.append(path)
        else:
            rest.append(path)
    return first + rest


def _container(parts: list[str]) -> tuple[str, str, str]:
    """(runtime, id or name, pod uid) from one path's components; empty when none."""
    pod = ""
    in_kube = False
    for i, part in enumerate(parts):
        if part.startswith("kubepods"):
            in_kube = True
        pm = _POD.match(part)
        if in_kube and pm:
            pod = pm.group(1).replace("_", "-")
            continue
        for runtime, pattern in _CONTAINER_SCOPES:
            m = pattern.match(part)
            if m:
                if runtime == "podman" and part.startswith("libpod-conmon-"):
                    break
                return runtime, m.group(1), pod
        if part in ("lxc", "lxc.payload") and i + 1 < len(parts):
            return "lxc", parts[i + 1], pod
        if part == "docker" and i + 1 < len(parts) and _BARE_ID.match(parts[i + 1]):
            return "docker", parts[i + 1], pod
        if pod and _BARE_ID.match(part):  # /kubepods/<qos>/pod<uid>/<id> (cgroupfs driver)
            return "kubernetes", part, pod
    return "", "", pod


def _unit(parts: list[str]) -> str:
    for part in parts:
        if part.endswith(".service") and not part.startswith("systemd-nspawn@"):
            return part
    for part in reversed(parts):
        if (part.endswith(".scope") and not part.startswith("libpod-conmon-")
                and not any(p.match(part) for _, p in _CONTAINER_SCOPES)):
            return part
    return ""


def parse_cgroup(text: str) -> Placement:
    """The placement a /proc/PID/cgroup text describes (see the module's docstring)."""
    runtime = cid = pod = unit = ""
    for path in cgroup_paths(text):
        parts = [p for p in path.split("/") if p]
        if not runtime:
            runtime, cid, found_pod = _container(parts)
            pod = pod or found_pod
        if not unit:
            unit = _unit(parts)
        if runtime and unit:
            break
    if pod and not runtime:
        runtime = "kubernetes"
    return Placement(runtime, cid, pod, unit)
