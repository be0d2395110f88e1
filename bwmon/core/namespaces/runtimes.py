"""Container names from what runtimes leave readable on disk and in /proc (no runtime API).

- Docker: `<docker_root>/containers/<id>/config.v2.json` ("Name").
- Podman and CRI-O: the container's `conmon` (an ancestor process) carries `-n NAME` on its
  command line; CRI-O's and dockershim's names are `k8s_<container>_<pod>_<namespace>_<uid>_<n>`.
- containerd (Kubernetes): the task bundle's `config.json` under `<containerd_state>` holds the
  CRI annotations (pod name and namespace, container name).
- systemd-nspawn and LXC name the machine in the cgroup path itself.

Every reader returns None when it cannot tell (file absent, unreadable without root, odd
content); the caller then names the container by runtime and short id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bwmon.core.namespaces.cgroups import Placement

DOCKER_ROOT = Path("/var/lib/docker")
CONTAINERD_STATE = Path("/run/containerd/io.containerd.runtime.v2.task")
CONMON_DEPTH = 4  # ancestors looked at for a conmon
_K8S_ANNOTATIONS = (
    ("io.kubernetes.cri.sandbox-namespace", "io.kubernetes.cri.sandbox-name",
     "io.kubernetes.cri.container-name"),
    ("io.kubernetes.pod.namespace", "io.kubernetes.pod.name", "io.kubernetes.container.name"),
)


def _json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return None


def docker_name(docker_root: Path, cid: str) -> str | None:
    data = _json(docker_root / "containers" / cid / "config.v2.json")
    name = data.get("Name") if isinstance(data, dict) else None
    return name.lstrip("/") or None if isinstance(name, str) else None


def k8s_name(namespace: str, pod: str, container: str) -> str:
    """How a Kubernetes container is shown: namespace/pod/container."""
    return "/".join(p for p in (namespace, pod, container) if p)


def split_k8s(name: str) -> str:
    """`k8s_<container>_<pod>_<namespace>_<uid>_<attempt>` (CRI-O, dockershim) as
    namespace/pod/container; any other name unchanged."""
    parts = name.split("_")
    if len(parts) >= 5 and parts[0] == "k8s":
        return k8s_name(parts[3], parts[2], parts[1])
    return name


def containerd_name(state: Path, cid: str) -> str | None:
    try:
        bundles = [d / cid / "config.json" for d in state.iterdir()]
    except OSError:
        return None
    for path in bundles:
        data = _json(path)
        if not isinstance(data, dict):
            continue
        notes = data.get("annotations")
        if not isinstance(notes, dict):
            continue
        for keys in _K8S_ANNOTATIONS:
            values = [notes.get(k) for k in keys]
            if values[1] and all(isinstance(v, str) for v in values if v is not None):
                return k8s_name(*(v or "" for v in values))
    return None


def _status_ppid(proc_root: Path, pid: int) -> int | None:
    try:
        with open(proc_root / str(pid) / "status", "rb") as f:
            for line in f.read().splitlines():
                if line.startswith(b"PPid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def conmon_name(proc_root: Path, pid: int) -> str | None:
    """The `-n NAME` of the conmon above `pid` (Podman, CRI-O), if one is within reach."""
    current: int | None = pid
    for _ in range(CONMON_DEPTH):
        current = _status_ppid(proc_root, current) if current else None
        if not current or current <= 1:
            return None
        try:
            with open(proc_root / str(current) / "cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            return None
        if not argv or Path(argv[0]).name != "conmon":
            continue
        for flag in ("-n", "--name"):
            if flag in argv[:-1]:
                return split_k8s(argv[argv.index(flag) + 1])
        return None
    return None


class RuntimeNames:
    """Container names by (runtime, id), cached: a name never changes while its id lives."""

    def __init__(self, proc_root: Path = Path("/proc"), docker_root: Path = DOCKER_ROOT,
                 containerd_state: Path = CONTAINERD_STATE) -> None:
        self.proc_root = proc_root
        self.docker_root = docker_root
        self.containerd_state = containerd_state
        self._cache: dict[tuple[str, str], str] = {}

    def name(self, placement: Placement, pid: int) -> str:
        """The container's name; `<runtime>:<short id>` when no metadata says it."""
        key = (placement.runtime, placement.container_id)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        found = self._lookup(placement, pid)
        if found is None:
            short = placement.container_id[:12] or placement.pod_uid[:8]
            return f"{placement.runtime}:{short}"  # not cached: metadata may appear later
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _lookup(self, p: Placement, pid: int) -> str | None:
        readers: dict[str, Callable[[], str | None]] = {
            "docker": lambda: docker_name(self.docker_root, p.container_id)
            or conmon_name(self.proc_root, pid),
            "podman": lambda: conmon_name(self.proc_root, pid),
            "cri-o": lambda: conmon_name(self.proc_root, pid),
            "containerd": lambda: containerd_name(self.containerd_state, p.container_id),
            "kubernetes": lambda: containerd_name(self.containerd_state, p.container_id)
            or conmon_name(self.proc_root, pid),
            "nspawn": lambda: p.container_id,
            "lxc": lambda: p.container_id,
        }
        reader = readers.get(p.runtime)
        return reader() if reader is not None else None
