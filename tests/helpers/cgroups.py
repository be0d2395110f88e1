"""Real cgroups shaped like a container runtime's, made for a test and removed after it.

The path is created under the hierarchy this machine uses for naming processes: the unified
one on a cgroup v2 host, the named systemd hierarchy (or pids) on a v1 one. A process is moved
in by writing its pid to cgroup.procs; `remove` kills what is inside and removes the
directories this helper created (deepest first), never one that existed before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def hierarchy() -> Path:
    """The mount whose paths /proc/PID/cgroup lists first for naming (see namespaces.cgroups)."""
    if (ROOT / "cgroup.controllers").exists():
        return ROOT
    for name in ("systemd", "pids"):
        if (ROOT / name / "cgroup.procs").exists():
            return ROOT / name
    raise RuntimeError("no writable cgroup hierarchy found under /sys/fs/cgroup")


class Cgroup:
    def __init__(self, path: str) -> None:
        self.base = hierarchy()
        self.path = path
        self.made: list[Path] = []
        current = self.base
        for part in [p for p in path.split("/") if p]:
            current = current / part
            if not current.exists():
                current.mkdir()
                self.made.append(current)
        self.dir = current

    def add(self, pid: int) -> None:
        (self.dir / "cgroup.procs").write_text(f"{pid}\n")

    def remove(self) -> None:
        for directory in reversed(self.made):
            for _ in range(50):
                try:
                    pids = [int(p) for p in (directory / "cgroup.procs").read_text().split()]
                except OSError:
                    pids = []
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                try:
                    directory.rmdir()
                    break
                except OSError:
                    time.sleep(0.02)

    def __enter__(self) -> Cgroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
