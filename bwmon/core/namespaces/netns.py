"""Finding every network namespace: the `/proc/*/ns/net` of each process, and the bind mounts
that keep a namespace alive without a process (`ip netns add` under /run/netns, Docker's under
/var/run/docker/netns).

A namespace is its nsfs inode. `NamespaceScan` is incremental: a process's namespace is read
once (one stat of its ns/net link) and checked again only every RECHECK scans, so a scan costs
a directory listing of /proc plus a stat per new process. Each namespace keeps one process
inside it as its way in (`/proc/PID/...`), replaced when that process exits; a namespace with no
process left is entered through its bind mount, and one with neither is gone.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Known processes' namespaces are stat'ed again every this many scans (a process may setns or
# unshare after it started).
RECHECK = 30
BIND_MOUNT_DIRS = (Path("/run/netns"), Path("/var/run/docker/netns"))


@dataclass(frozen=True, slots=True)
class NetNamespace:
    """One network namespace as found now."""

    inode: int
    pid: int | None  # a process inside it (its /proc/PID/net is the namespace's view)
    mount: Path | None  # a bind mount of it, if any (ip netns, Docker)
    processes: int  # how many processes are in it
    mount_names: tuple[str, ...] = ()  # the bind mounts' file names (ip netns names)

    @property
    def handle(self) -> str:
        """A path that opens the namespace (for setns or nsenter --net=)."""
        if self.pid is not None:
            return f"/proc/{self.pid}/ns/net"
        assert self.mount is not None
        return str(self.mount)


@dataclass(slots=True)
class _Pid:
    inode: int
    checked: int


@dataclass(slots=True)
class ScanChange:
    """What a scan found different from the one before."""

    added: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)


class NamespaceScan:
    """The namespaces of a procfs root and of bind-mount directories, followed scan by scan."""

    def __init__(self, proc_root: Path = Path("/proc"),
                 mount_dirs: Sequence[Path] = BIND_MOUNT_DIRS) -> None:
        self.proc_root = proc_root
        self.mount_dirs = tuple(mount_dirs)
        self._pids: dict[int, _Pid] = {}
        self.namespaces: dict[int, NetNamespace] = {}
        self._scans = 0
        self.own = self._inode(proc_root / "self" / "ns" / "net")

    @staticmethod
    def _inode(path: Path | str) -> int | None:
        try:
            return os.stat(path).st_ino
        except OSError:
            return None

    def _mounts(self) -> dict[int, list[Path]]:
        """Bind mounts by namespace inode. A plain file there that is not a mount point (a
        namespace deleted while its file stayed) has the inode of the directory's filesystem,
        not an nsfs one: kept apart by comparing device numbers with a known namespace's."""
        found: dict[int, list[Path]] = {}
        nsfs_dev = self._nsfs_dev()
        for directory in self.mount_dirs:
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                path = directory / name
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                if nsfs_dev is not None and st.st_dev != nsfs_dev:
                    continue  # not a mounted namespace (an empty placeholder file)
                found.setdefault(st.st_ino, []).append(path)
        return found

    def _nsfs_dev(self) -> int | None:
        try:
            return os.stat(self.proc_root / "self" / "ns" / "net").st_dev
        except OSError:
            return None

    def scan(self) -> ScanChange:
        """One pass: every process's namespace (new processes stat'ed), the bind mounts; returns
        the namespaces that appeared and vanished since the previous pass. Blocking: run it in
        a thread on a busy host."""
        self._scans += 1
        recheck = self._scans % RECHECK == 0
        try:
            pids = [int(n) for n in os.listdir(self.proc_root) if n.isdigit()]
        except OSError:
            pids = []
        root = str(self.proc_root)
        members: dict[int, list[int]] = {}
        known = self._pids
        alive: dict[int, _Pid] = {}
        for pid in pids:
            state = known.get(pid)
            if state is None or recheck:
                inode = self._inode(f"{root}/{pid}/ns/net")
                if inode is None:  # exited, or a kernel thread's unreadable link
                    continue
                state = _Pid(inode, self._scans)
            alive[pid] = state
            members.setdefault(state.inode, []).append(pid)
        self._pids = alive
        mounts = self._mounts()
        found: dict[int, NetNamespace] = {}
        for inode in members.keys() | mounts.keys():
            pids_in = members.get(inode, [])
            old = self.namespaces.get(inode)
            way_in = old.pid if old is not None and old.pid in alive else None
            if way_in is None and pids_in:
                way_in = min(pids_in)  # the oldest pid is the likeliest to live on
            paths = mounts.get(inode, [])
            found[inode] = NetNamespace(inode, way_in, paths[0] if paths else None, len(pids_in),
                                        tuple(p.name for p in paths))
        change = ScanChange(sorted(found.keys() - self.namespaces.keys()),
                            sorted(self.namespaces.keys() - found.keys()))
        self.namespaces = found
        return change

    def members(self, inode: int) -> list[int]:
        """Processes seen in a namespace at the last scan."""
        return [pid for pid, s in self._pids.items() if s.inode == inode]

    def namespace_of(self, pid: int) -> int | None:
        state = self._pids.get(pid)
        return state.inode if state is not None else None
