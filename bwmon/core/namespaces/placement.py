"""Which container, namespace and systemd unit a process is in, and what a namespace is called.

A process's container comes from its cgroup path (namespaces.cgroups) named through the
runtime's metadata (namespaces.runtimes). A process in another network namespace that no
runtime claims is shown by that namespace's name: its `ip netns` (bind mount) name, else
`netns:<inode>`. Processes in bwmon's own namespace and in no container have container "".
"""

from __future__ import annotations

import os
from pathlib import Path

from bwmon.core.namespaces.cgroups import Placement, parse_cgroup
from bwmon.core.namespaces.netns import NamespaceScan, NetNamespace
from bwmon.core.namespaces.runtimes import RuntimeNames


def read_placement(proc_root: Path, pid: int | str) -> Placement:
    try:
        with open(proc_root / str(pid) / "cgroup", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return Placement()
    return parse_cgroup(text)


class Placer:
    """Names processes and namespaces; `scan` is the namespace scan kept by the caller."""

    def __init__(self, scan: NamespaceScan, runtimes: RuntimeNames | None = None) -> None:
        self.scan = scan
        self.proc_root = scan.proc_root
        self.runtimes = runtimes or RuntimeNames(scan.proc_root)

    def __call__(self, pid: int) -> tuple[str, str]:
        """(container, unit) of a process."""
        placement = read_placement(self.proc_root, pid)
        if placement.in_container:
            return self.runtimes.name(placement, pid), placement.unit
        inode = self._netns(pid)
        if inode is None or inode == self.scan.own:
            return "", placement.unit
        ns = self.scan.namespaces.get(inode)
        return self._plain_name(inode, ns), placement.unit

    def _netns(self, pid: int) -> int | None:
        """The process's namespace now (one stat; the scan's memory of it may predate a setns,
        as `ip netns exec` does after its fork, or name an earlier process of that pid), else
        where the scan last saw it."""
        try:
            return os.stat(self.proc_root / str(pid) / "ns" / "net").st_ino
        except OSError:
            return self.scan.namespace_of(pid)

    @staticmethod
    def _plain_name(inode: int, ns: NetNamespace | None) -> str:
        if ns is not None and ns.mount_names:
            return ns.mount_names[0]
        return f"netns:{inode}"

    def namespace_name(self, ns: NetNamespace) -> str:
        """What a namespace is called: its container's name (through a process inside), its
        bind mount's name, else netns:<inode>; bwmon's own namespace is "host"."""
        if ns.inode == self.scan.own:
            return "host"
        for pid in sorted(self.scan.members(ns.inode))[:8]:
            placement = read_placement(self.proc_root, pid)
            if placement.in_container:
                return self.runtimes.name(placement, pid)
        return self._plain_name(ns.inode, ns)
