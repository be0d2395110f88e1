"""The eBPF loader chosen by measurement: bpftrace against bwmon's socket probe (libbpf), beside nethogs.

    python3 bench/bench_ebpf_loader.py [--connections 1000] [--sends 200000]

As root, in a private network namespace with a sink: for each loader, alone —
- `bpftrace` running the probe bwmon used before (bench/ebpf_probe_bpftrace.bt), its lines
  parsed as bwmon parsed them;
- `socket probe`: bwmon/core/sources/bpf loaded through libbpf into a Python process that has
  already imported bwmon's core (so the figure is what loading adds), its ring read by
  EbpfOwners —
it measures memory (PSS, RSS and private bytes of the loader's processes once attached: for
the socket probe, what this process grew by), the start-up time until records flow, the CPU of
the loader's processes per 1,000 short TCP connections (client: connect, 13 bytes, close),
how many of them were sighted with the client's pid, and the client's CPU for `--sends` 64-byte
UDP datagrams on one socket (the per-send cost in the kernel) against no probe. nethogs
(`nethogs -a -t -d 1 lo`, idle) is the peer's memory for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bwmon.core.runtime import heap  # noqa: E402
from bwmon.core.runtime.process_tree import tree_usage  # noqa: E402
from bwmon.core.sources.bpf.loader import load  # noqa: E402
from bwmon.core.sources.ebpf import EbpfOwners, Sighting  # noqa: E402
from tests.helpers.netns import NetNS  # noqa: E402

PORT = 47844
BT = REPO / "bench" / "ebpf_probe_bpftrace.bt"
CLIENT = r"""
import json, os, socket, sys, time
port, count, sends = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ports = []
if sends:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        for _ in range(sends):
            s.send(b"x" * 64)
for _ in range(count):
    with socket.create_connection(("127.0.0.1", port)) as s:
        ports.append(s.getsockname()[1])
        s.sendall(b"\0" * 8 + b"hello")
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
t = os.times()
print(json.dumps({"ports": ports, "cpu": t.user + t.system}))
"""
MiB = 2**20


def private(pid: int) -> int:
    m = psutil.Process(pid).memory_full_info()
    return int(m.uss)


async def client(ns: NetNS, count: int, sends: int) -> tuple[int, dict[str, object]]:
    proc = await asyncio.create_subprocess_exec(
        *ns.argv(sys.executable, "-c", CLIENT, str(PORT), str(count), str(sends)),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return proc.pid, json.loads(out)


def sighted(seen: set[tuple[int, int]], pid: int, ports: object) -> int:
    return sum(1 for p in ports if (pid, p) in seen)  # type: ignore[attr-defined]


async def bpftrace(ns: NetNS, args: argparse.Namespace) -> dict[str, float]:
    inode = os.stat(Path("/run/netns") / ns.name).st_ino
    t0 = time.perf_counter()
    # as bwmon ran it: in a private mount namespace with tracefs mounted, where none is
    script = ('mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing;'
              ' exec "$@"')
    proc = await asyncio.create_subprocess_exec(
        "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", "bpftrace",
        str(BT), str(inode), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=dict(os.environ, BPFTRACE_MAP_KEYS_MAX="65536"))
    assert proc.stdout is not None and proc.stderr is not None
    while not (line := await proc.stdout.readline()).startswith(b"ready"):
        if not line:
            raise SystemExit(f"bpftrace failed: {(await proc.stderr.read()).decode()}")
    start = time.perf_counter() - t0
    seen: set[tuple[int, int]] = set()

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            parts = line.split(b" ", 10)
            if len(parts) == 11 and parts[0] == b"S":
                seen.add((int(parts[1]), int(parts[6])))

    reader = asyncio.create_task(read())
    await asyncio.sleep(2)
    use = tree_usage(proc.pid)
    priv = private(proc.pid)
    cpu0, me0 = tree_usage(proc.pid).cpu_seconds, time.process_time()
    pid, rep = await client(ns, args.connections, 0)
    await asyncio.sleep(0.5)
    cpu = tree_usage(proc.pid).cpu_seconds - cpu0 + time.process_time() - me0
    _, sends = await client(ns, 0, args.sends)
    proc.send_signal(2)
    await proc.wait()
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    return {"pss": (use.pss or 0) / MiB, "rss": use.rss / MiB, "private": priv / MiB,
            "start": start, "cpu_per_1000": 1000 * cpu / args.connections,
            "sighted": sighted(seen, pid, rep["ports"]) / args.connections,
            "send_cpu": float(sends["cpu"])}  # type: ignore[arg-type]


async def socket_probe(ns: NetNS, args: argparse.Namespace) -> dict[str, float]:
    me = os.getpid()
    await asyncio.to_thread(time.sleep, 0)  # the thread the engine loads in: there before too
    heap.trim()
    before, priv0 = tree_usage(me), private(me)
    t0 = time.perf_counter()
    probe = await asyncio.to_thread(load)
    owners = EbpfOwners(ring_fd=probe.rings,
                        netns_inode=os.stat(Path("/run/netns") / ns.name).st_ino)
    seen: set[tuple[int, int]] = set()

    def on(s: Sighting) -> None:
        seen.add((s.pid, s.lport))

    task = asyncio.create_task(owners.run(on, print))
    await owners.ready.wait()
    start = time.perf_counter() - t0
    await asyncio.sleep(2)
    heap.trim()  # as bwmon does every 30 s
    after, priv1 = tree_usage(me), private(me)
    me0 = time.process_time()
    pid, rep = await client(ns, args.connections, 0)
    await asyncio.sleep(0.5)
    cpu = time.process_time() - me0
    _, sends = await client(ns, 0, args.sends)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    probe.close()
    return {"pss": ((after.pss or 0) - (before.pss or 0)) / MiB,
            "rss": (after.rss - before.rss) / MiB, "private": (priv1 - priv0) / MiB,
            "start": start, "cpu_per_1000": 1000 * cpu / args.connections,
            "sighted": sighted(seen, pid, rep["ports"]) / args.connections,
            "send_cpu": float(sends["cpu"])}  # type: ignore[arg-type]


async def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--sends", type=int, default=200_000)
    args = ap.parse_args()
    heap.tune()  # bwmon's malloc settings (bwmon.core.runtime.startup)
    with NetNS(acct=False, track=False) as ns:
        sink = ns.popen([sys.executable, str(REPO / "tests/helpers/traffic.py"), "sink",
                         "--port", str(PORT)], stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        hogs = ns.popen(["nethogs", "-a", "-t", "-d", "1", "lo"], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
        try:
            _, bare = await client(ns, 0, args.sends)
            rows = {"bpftrace": await bpftrace(ns, args),
                    "socket probe": await socket_probe(ns, args)}
            await asyncio.sleep(1)
            nethogs = tree_usage(hogs.pid)
        finally:
            hogs.kill()
            sink.kill()
    print(f"{time.strftime('%F %T')}, load average {os.getloadavg()[0]:.1f}, "
          f"{args.connections} connections, {args.sends} sends\n")
    print("| loader | PSS MiB | RSS MiB | private MiB | start-up s | CPU s per 1,000 connections"
          " | connections sighted | client CPU for the sends, × no probe |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['pss']:.1f} | {r['rss']:.1f} | {r['private']:.1f} | "
              f"{r['start']:.2f} | {r['cpu_per_1000']:.3f} | {r['sighted']:.1%} | "
              f"{r['send_cpu'] / float(bare['cpu']):.2f} |")  # type: ignore[arg-type]
    print(f"| nethogs (idle, for scale) | {(nethogs.pss or 0) / MiB:.1f} | "
          f"{nethogs.rss / MiB:.1f} | | | | | |")


if __name__ == "__main__":
    asyncio.run(main())
