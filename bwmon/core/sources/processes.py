"""Socket → process mapping through /proc/PID/fd, and the facts shown about a process.

Scanning every process's fd directory costs tens of milliseconds on a busy host, so the table
is incremental: it remembers which process held which socket inode and rereads a process only
when its fd directory changed (inode, size = fd count since Linux 6.2, mtime), and only while a
wanted inode is still unknown. A process is a `ProcKey` (pid + start time), so a reused pid is
a different process. A socket held by several processes (after fork) belongs to the most
recently started holder seen; it stays there while that process lives.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import sys
from collections.abc import Callable, Collection, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bwmon.core.model import ProcessInfo, ProcKey
from bwmon.core.sanitize import decode_comm
from bwmon.core.sources.proc_text import command_line, parse_start, parse_uid

_SOCKET = "socket:["
# The walk runs on the event loop in slices (a worker thread costs more in hand-offs than the
# work itself on a loaded machine): this many stats, or fd directories read, per slice.
_SLICE = 128
_READ_SLICE = 16
MAX_INFO = 8192  # cached ProcessInfo entries at most (dead ones go first)
MAX_SIGHTED = 4096  # processes the kernel named (eBPF sightings) kept for when /proc is gone
# Inodes no process could be found for (kernel sockets, unreadable processes) are searched
# again only every this many calls, so they do not cost a /proc walk every tick.
UNFOUND_RETRY_CALLS = 10
HOT_PIDS = 8  # processes remembered as recent openers of sockets, looked at before the rest
_UNREAD = (0, 0, 0)  # signature of a pid seen but never read: it always counts as changed


@dataclass(frozen=True, slots=True)
class _PidState:
    """What one scan learnt about a pid: its fd directory's signature and socket inodes."""

    sig: tuple[int, int, int]  # (st_ino, st_size, st_mtime_ns) of /proc/PID/fd
    uid: int
    readable: bool
    start: int | None = None  # read only when it holds sockets
    inodes: frozenset[int] = frozenset()


@dataclass(slots=True)
class _ScanResult:
    gone: set[int] = field(default_factory=set)
    seen: dict[int, _PidState] = field(default_factory=dict)  # new states of the pids read
    read: set[int] = field(default_factory=set)  # pids whose fds were listed (or tried)
    infos: list[ProcessInfo] = field(default_factory=list)
    exhaustive: bool = False  # every readable process was read
    hot: list[int] = field(default_factory=list)  # pids that held a missing inode


class ProcessTable:
    """Incremental inode → process map and a cache of process facts, from one procfs root."""

    def __init__(self, proc_root: Path = Path("/proc")) -> None:
        self.proc_root = proc_root
        self._root = str(proc_root)
        self._pids: dict[int, _PidState] = {}
        self._owner: dict[int, ProcKey] = {}
        self._unfound: set[int] = set()  # inodes a complete scan could not place
        self._info: dict[ProcKey, ProcessInfo] = {}
        self._keep: frozenset[ProcKey] = frozenset()
        # key -> (comm, uid, container), oldest first
        self._sighted: dict[ProcKey, tuple[str, int, str]] = {}
        self._calls = 0
        self._hot: dict[int, None] = {}  # pids that recently opened wanted sockets, oldest first
        self._users: dict[int, str] = {}
        self._lock = asyncio.Lock()
        # pid -> (container, unit) when set (bwmon.core.namespaces.placement.Placer)
        self.placer: Callable[[int], tuple[str, str]] | None = None
        self.scans = 0  # scans performed (calls that listed /proc)
        self.dirs_read = 0  # fd directories listed, in total
        self.dirs_checked = 0  # fd directories stat'ed to see whether they changed

    # ---- socket owners -----------------------------------------------------------------------

    async def owners(self, inodes: set[int], uids: set[int] | None = None) -> dict[int, ProcKey]:
        """Owner of each socket inode that a visible process holds (inode 0 and unknowns omitted).

        No /proc walk at all when every inode has a known, living owner (or a complete walk
        found none: those are retried every UNFOUND_RETRY_CALLS calls). Otherwise processes
        whose fd directory changed are read first — those of `uids` (the sockets' uids) first,
        newest pid first — stopping as soon as every inode is placed.
        """
        wanted = {i for i in inodes if i}
        async with self._lock:
            self._unfound &= wanted
            self._calls += 1
            known = {i: self._owner[i] for i in wanted if i in self._owner}
            dead = await self._dead_owners(set(known.values()))
            for inode, key in list(known.items()):
                if key in dead:
                    del known[inode]
                    del self._owner[inode]
            missing = wanted - known.keys()
            retry = self._calls % UNFOUND_RETRY_CALLS == 0
            if not missing or (missing <= self._unfound and not retry):
                return known
            walk = self._walk(dict(self._pids), missing, set(self._unfound), uids,
                              list(reversed(self._hot)))
            while True:  # run the walk in slices, letting the event loop in between
                try:
                    next(walk)
                except StopIteration as stop:
                    scan: _ScanResult = stop.value
                    break
                await asyncio.sleep(0)
            self._apply(scan)
            for inode in missing:
                owner = self._owner.get(inode)
                if owner is not None:
                    known[inode] = owner
                elif scan.exhaustive:
                    self._unfound.add(inode)
            return known

    async def _dead_owners(self, keys: set[ProcKey]) -> set[ProcKey]:
        dead: set[ProcKey] = set()
        for n, key in enumerate(keys, start=1):
            if not self.alive(key):
                dead.add(key)
            if n % _SLICE == 0:
                await asyncio.sleep(0)
        return dead

    def _walk(
        self,
        states: dict[int, _PidState],
        missing: set[int],
        unfound: set[int],
        uids: set[int] | None,
        hot: list[int],
    ) -> Generator[None, None, _ScanResult]:
        """The /proc walk, yielding every slice of work; reads only what it must, in phases:

        1. processes that appeared since the last walk (one listing of /proc finds them), then
           the few that most recently opened a wanted socket (busy clients and servers);
        2. processes whose fd directory changed (one stat per pid tells);
        3. only for inodes never searched before: the unchanged rest.
        Within a phase, processes of `uids` come first, then ones that held sockets, newest pid
        first. The walk stops as soon as every missing inode is placed.
        """
        result = _ScanResult()
        missing = set(missing)
        pids = self._list_pids()
        result.gone = states.keys() - set(pids)
        sizes_count_fds = False
        fresh: dict[int, _PidState] = {}

        def stat(pid: int) -> _PidState | None:
            nonlocal sizes_count_fds
            self.dirs_checked += 1
            try:
                st = os.stat(f"{self._root}/{pid}/fd")
            except OSError:
                result.gone.add(pid)
                return None
            sizes_count_fds |= st.st_size > 0
            return _PidState(sig=(st.st_ino, st.st_size, st.st_mtime_ns), uid=st.st_uid,
                             readable=True)

        def order(pid: int) -> tuple[bool, bool, int]:
            state = fresh.get(pid) or states[pid]
            old = states.get(pid)
            return (uids is not None and state.uid not in uids, not (old and old.inodes), -pid)

        def read(candidates: Iterable[int]) -> Generator[None, None, bool]:
            """Read in order until nothing is missing; True when done."""
            for n, pid in enumerate(sorted(candidates, key=order), start=1):
                if not missing:
                    return True
                self._read_into(result, pid, fresh.get(pid) or states[pid], missing)
                if n % _READ_SLICE == 0:
                    yield
            return not missing

        for n, pid in enumerate(pids, start=1):  # phase 1: new pids
            if pid not in states and (state := stat(pid)) is not None:
                fresh[pid] = state
            if n % _SLICE == 0:
                yield
        done = yield from read(list(fresh))
        for pid, state in fresh.items():  # new but unread: known now, "changed" until read
            if pid not in result.read:
                result.seen[pid] = _PidState(sig=_UNREAD, uid=state.uid, readable=True)
        if done:
            return result
        for pid in hot:  # busy processes first: one stat each, read if changed
            if pid in states and (state := stat(pid)) is not None and state.sig != states[pid].sig:
                self._read_into(result, pid, state, missing)
                if not missing:
                    return result
        for n, pid in enumerate(pids, start=1):  # phase 2: changed fd directories
            if pid in states and (state := stat(pid)) is not None and state.sig != states[pid].sig:
                fresh[pid] = state
            if n % _SLICE == 0:
                yield
        if not sizes_count_fds:  # kernel before 6.2: a signature cannot tell, read them all
            fresh.update({p: st for p, st in states.items() if p not in result.gone})
        if (yield from read([p for p in fresh if p not in result.read])):
            return result
        if not missing <= unfound:  # phase 3: inodes never searched for
            rest = [p for p, st in states.items()
                    if st.readable and p not in result.read and p not in result.gone]
            if (yield from read(rest)):
                return result
        result.exhaustive = True
        return result

    def _read_into(self, result: _ScanResult, pid: int, state: _PidState,
                   missing: set[int]) -> None:
        """Read one fd directory into `result`; drop what it holds from `missing`."""
        new_state = self._read_fds(pid, state)
        result.read.add(pid)
        if new_state is None:
            result.gone.add(pid)
            return
        result.seen[pid] = new_state
        if new_state.start is None or not new_state.inodes:
            return
        hit = missing & new_state.inodes
        if hit:
            missing -= hit
            result.hot.append(pid)
            key = ProcKey(pid, new_state.start)
            if key not in self._info:
                info = self._read_info(key)
                if info is not None:
                    result.infos.append(info)

    def _read_fds(self, pid: int, state: _PidState) -> _PidState | None:
        """List one fd directory: its socket inodes and (if any) the start time; None if gone."""
        path = f"{self._root}/{pid}/fd"
        try:
            dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except PermissionError:
            return _PidState(sig=state.sig, uid=state.uid, readable=False)
        except OSError:
            return None
        inodes: set[int] = set()
        readable = True
        try:
            for name in os.listdir(dfd):
                try:
                    target = os.readlink(name, dir_fd=dfd)
                except PermissionError:
                    readable = False  # e.g. a process protected by a security module
                    continue
                except OSError:
                    continue
                if target.startswith(_SOCKET):
                    inodes.add(int(target[len(_SOCKET) : -1]))
        except OSError:
            return None
        finally:
            os.close(dfd)
        self.dirs_read += 1
        start = self._read_start(pid) if inodes else None
        if inodes and start is None:
            return None
        return _PidState(sig=state.sig, uid=state.uid, readable=readable, start=start,
                         inodes=frozenset(inodes))

    def _apply(self, scan: _ScanResult) -> None:
        """Fold a scan into the caches (on the event loop's thread: no locking needed)."""
        self.scans += 1
        for pid in scan.gone:
            self._forget_pid(pid)
        for pid in scan.read:
            old = self._pids.get(pid)
            if old is not None and old.start is not None:
                old_key = ProcKey(pid, old.start)
                for inode in old.inodes:
                    if self._owner.get(inode) == old_key:
                        del self._owner[inode]
        self._pids.update(scan.seen)
        for pid in scan.read:
            state = self._pids.get(pid)
            if state is None or state.start is None:
                continue
            key = ProcKey(pid, state.start)
            for inode in state.inodes:
                prev = self._owner.get(inode)
                if prev is None or (key.start, key.pid) > (prev.start, prev.pid):
                    self._owner[inode] = key
        for info in scan.infos:
            self._remember(info)
        for pid in scan.hot:
            self._hot.pop(pid, None)
            self._hot[pid] = None
        while len(self._hot) > HOT_PIDS:
            del self._hot[next(iter(self._hot))]

    def _forget_pid(self, pid: int) -> None:
        self._hot.pop(pid, None)
        state = self._pids.pop(pid, None)
        if state is None or state.start is None:
            return
        key = ProcKey(pid, state.start)
        for inode in state.inodes:
            if self._owner.get(inode) == key:
                del self._owner[inode]

    # ---- process facts -----------------------------------------------------------------------

    def _list_pids(self) -> list[int]:
        try:
            names = os.listdir(self._root)
        except OSError:
            return []
        return [int(n) for n in names if n.isdigit()]

    def _read_start(self, pid: int) -> int | None:
        try:
            with open(f"{self._root}/{pid}/stat", "rb") as f:
                return parse_start(f.read())
        except (OSError, ValueError, IndexError):
            return None

    def alive(self, key: ProcKey) -> bool:
        """True while the very process `key` names runs (a reused pid is another process)."""
        state = self._pids.get(key.pid)
        if state is not None and state.start == key.start:
            try:
                st = os.stat(f"{self._root}/{key.pid}/fd")
            except OSError:
                return False
            if (st.st_ino, st.st_mtime_ns) == (state.sig[0], state.sig[2]):
                return True
        return self._read_start(key.pid) == key.start

    def _user(self, uid: int) -> str:
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name = sys.intern(name)
        return name

    def _read_info(self, key: ProcKey) -> ProcessInfo | None:
        base = f"{self._root}/{key.pid}"
        try:
            with open(f"{base}/cmdline", "rb") as fb:
                raw = fb.read()
            with open(f"{base}/comm", "rb") as fb:
                comm = decode_comm(fb.read())
            with open(f"{base}/status", "rb") as fb:
                uid = parse_uid(fb.read())
        except OSError:
            return None
        if self._read_start(key.pid) != key.start:
            return None  # the pid now names another process
        if uid is None:
            try:
                uid = os.stat(base).st_uid
            except OSError:
                return None
        cmdline, exe_base = command_line(raw, comm)
        container, unit = self.placer(key.pid) if self.placer is not None else ("", "")
        return ProcessInfo(key=key, name=sys.intern(comm), cmdline=cmdline, user=self._user(uid),
                           uid=uid, exe_base=exe_base, container=sys.intern(container),
                           unit=sys.intern(unit))

    def sighted(self, key: ProcKey, comm: str, uid: int, container: str = "") -> None:
        """What the kernel said of a process as it used a socket (eBPF: comm, the socket's
        uid; `container`: the name of the other namespace the socket was in): its facts if it
        exits before they are read from /proc (see `info`)."""
        if key in self._info or key in self._sighted:
            return
        self._sighted[key] = (comm, uid, container)
        if len(self._sighted) > MAX_SIGHTED:
            del self._sighted[next(iter(self._sighted))]

    def _from_sighting(self, key: ProcKey) -> ProcessInfo | None:
        """A gone process's facts as the kernel gave them: its command line is unknown, so it
        reads "[comm]" (as a zombie's does) and auto-grouping names it by its comm."""
        seen = self._sighted.get(key)
        if seen is None:
            return None
        comm, uid, container = seen
        name = sys.intern(comm)
        return ProcessInfo(key=key, name=name, cmdline=f"[{comm}]",
                           user=self._user(uid) if uid >= 0 else "?", uid=uid, exe_base=name,
                           container=container)

    def learn(self, info: ProcessInfo) -> None:
        """Facts of a process read elsewhere (by the discovery worker, maybe just before it
        exited), kept unless this table already knows the process."""
        if info.key not in self._info:
            self._remember(info)

    def _remember(self, info: ProcessInfo) -> None:
        self._info[info.key] = info
        self._sighted.pop(info.key, None)
        if len(self._info) > MAX_INFO:
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest-cached half of the entries not kept by the last `expire`."""
        drop = [k for k in self._info if k not in self._keep][: len(self._info) // 2]
        for k in drop:
            del self._info[k]

    def info(self, key: ProcKey) -> ProcessInfo | None:
        """Facts about a process; cached, so one seen once stays describable after it exits.
        One that exited before /proc was read is described by its eBPF sighting, if any."""
        cached = self._info.get(key)
        if cached is not None:
            return cached
        info = self._read_info(key) or self._from_sighting(key)
        if info is not None:
            self._remember(info)
        return info

    def key_of(self, pid: int) -> ProcKey | None:
        """The current process behind a pid, or None if there is none."""
        start = self._read_start(pid)
        return None if start is None else ProcKey(pid, start)

    def running(self) -> list[ProcessInfo]:
        """Every process now running, with its facts (for the group editor's live preview)."""
        found: list[ProcessInfo] = []
        for pid in self._list_pids():
            state = self._pids.get(pid)
            key = None
            if state is not None and state.start is not None:
                key = ProcKey(pid, state.start)
                if key not in self._info or not self.alive(key):
                    key = None
            key = key or self.key_of(pid)
            info = None if key is None else self.info(key)
            if info is not None:
                found.append(info)
        return found

    def expire(self, now_keys: Collection[ProcKey] = ()) -> int:
        """Forget dead processes except those in `now_keys` (still shown); returns how many.

        Keeps memory flat under process churn; call it once per tick or less.
        """
        self._keep = frozenset(now_keys)
        pids = set(self._list_pids())
        for pid in [p for p in self._pids if p not in pids]:
            self._forget_pid(pid)
        dropped = 0
        for key in list(self._info):
            if key in self._keep:
                continue
            state = self._pids.get(key.pid)
            reused = state is not None and state.start is not None and state.start != key.start
            if key.pid not in pids or reused:
                del self._info[key]
                dropped += 1
        for inode, key in list(self._owner.items()):
            if key.pid not in pids:
                del self._owner[inode]
        return dropped
