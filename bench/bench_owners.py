"""Benchmark: socket → process mapping, and the facts of a process, against psutil.

    python3 bench/bench_owners.py [--procs 200 1000] [--repeat 15]

For each process count it starts that many `sleep` processes, each holding two UDP sockets on
loopback, then times (median of --repeat rounds, every variant once per round):
  psutil  psutil.net_connections("inet"): the library's socket → pid map (socket tables and
          every process's fds, each call)
  full    a plain full /proc/PID/fd scan written here (what a monitor without a cache does)
  warm    ProcessTable.owners() when nothing new appeared
  new1    ProcessTable.owners() when one new process with one new socket appeared
  new_old ProcessTable.owners() when a known process opened one more socket
and the facts bwmon shows of a process (name, command line, uid and user, start time), per
process, read by ProcessTable and through psutil (Process, oneshot; the user's name from the
same cache). Figures go to docs/sections/bench-owners.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bwmon.core.model import ProcKey
from bwmon.core.sources.proc_text import parse_start
from bwmon.core.sources.processes import ProcessTable

PROC = Path("/proc")
# a process that opens one more UDP socket per input line and prints its inode
OPENER = """
import os, socket, sys
keep = []
for _ in sys.stdin:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    keep.append(s)
    print(os.fstat(s.fileno()).st_ino, flush=True)
"""


def full_fd_scan(root: str = "/proc") -> dict[int, ProcKey]:
    """Reference: read every process's fd directory, every time."""
    owners: dict[int, ProcKey] = {}
    for name in os.listdir(root):
        if not name.isdigit():
            continue
        fd_dir = f"{root}/{name}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        found = []
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                found.append(int(target[8:-1]))
        if found:
            try:
                with open(f"{root}/{name}/stat", "rb") as f:
                    key = ProcKey(int(name), parse_start(f.read()))
            except OSError:
                continue
            for inode in found:
                owners[inode] = key
    return owners


def spawn(n_sockets: int) -> tuple[subprocess.Popen[bytes], list[int]]:
    """A sleeping process holding n UDP sockets on loopback; returns it and the socket inodes."""
    socks = []
    for _ in range(n_sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    proc = subprocess.Popen(["sleep", "3600"], pass_fds=[s.fileno() for s in socks])
    inodes = [os.fstat(s.fileno()).st_ino for s in socks]
    for s in socks:
        s.close()
    return proc, inodes


async def run(n: int, repeat: int) -> dict[str, float]:
    children: list[subprocess.Popen[bytes] | subprocess.Popen[str]] = []
    inodes: set[int] = set()
    try:
        for _ in range(n):
            proc, got = spawn(2)
            children.append(proc)
            inodes.update(got)
        await asyncio.sleep(0.2)
        uids = {os.geteuid()}
        assert inodes <= full_fd_scan().keys()
        table = ProcessTable(PROC)
        t0 = time.perf_counter()
        assert (await table.owners(inodes, uids)).keys() == inodes
        cold = (time.perf_counter() - t0) * 1000

        # one new socket in a process that was already known (no new pid to look at first)
        opener = subprocess.Popen([sys.executable, "-c", OPENER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        children.append(opener)
        assert opener.stdin is not None and opener.stdout is not None

        def open_one() -> int:
            assert opener.stdin is not None and opener.stdout is not None
            opener.stdin.write("\n")
            opener.stdin.flush()
            return int(opener.stdout.readline())

        inodes.add(open_one())
        await table.owners(inodes, uids)

        async def timed(coro: Awaitable[object]) -> float:
            t0 = time.perf_counter()
            await coro
            return (time.perf_counter() - t0) * 1000

        async def full_scan() -> None:
            full_fd_scan()

        async def library_scan() -> None:
            psutil.net_connections("inet")

        keys = sorted(set((await table.owners(inodes, uids)).values()))

        async def facts_by_hand() -> None:
            for key in keys:
                assert table._read_info(key) is not None

        async def facts_psutil() -> None:
            for key in keys:
                proc = psutil.Process(key.pid)
                with proc.oneshot():  # the user name from bwmon's cache, as bwmon does
                    proc.name(), proc.cmdline(), table._user(proc.uids().real)
                    proc.create_time()

        # every round measures each variant once, so all see the same machine load
        rounds: dict[str, list[float]] = {k: [] for k in
                                          ("psutil", "full", "warm", "new1", "new_old",
                                           "facts", "facts_psutil")}
        for _ in range(repeat):
            rounds["psutil"].append(await timed(library_scan()))
            rounds["full"].append(await timed(full_scan()))
            rounds["warm"].append(await timed(table.owners(inodes, uids)))
            proc, got = spawn(1)
            children.append(proc)
            inodes.update(got)
            await asyncio.sleep(0.01)
            rounds["new1"].append(await timed(table.owners(inodes, uids)))
            fresh = open_one()
            inodes.add(fresh)
            rounds["new_old"].append(await timed(table.owners(inodes, uids)))
            found = await table.owners(inodes, uids)
            assert found[got[0]] == ProcKey(proc.pid, found[got[0]].start)
            assert found[fresh].pid == opener.pid
            rounds["facts"].append(await timed(facts_by_hand()) / len(keys))
            rounds["facts_psutil"].append(await timed(facts_psutil()) / len(keys))
        r = {k: statistics.median(v) for k, v in rounds.items()}
        return {"procs": float(len(os.listdir("/proc"))), "cold": cold, **r}
    finally:
        for proc in children:
            proc.kill()
        for proc in children:
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    print("| sleeping processes | /proc entries | psutil.net_connections() | full fd scan "
          "| owners(), first call | owners(), nothing new | owners(), new process + socket "
          "| owners(), new socket in known process | facts of a process, bwmon "
          "| facts of a process, psutil |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.procs:
        r = asyncio.run(run(n, args.repeat))
        print(f"| {n} | {r['procs']:.0f} | {r['psutil']:.1f} ms | {r['full']:.1f} ms "
              f"| {r['cold']:.1f} ms | {r['warm']:.2f} ms | {r['new1']:.2f} ms "
              f"| {r['new_old']:.2f} ms | {r['facts'] * 1000:.0f} µs "
              f"| {r['facts_psutil'] * 1000:.0f} µs |", flush=True)

if __name__ == "__main__":
    main()
