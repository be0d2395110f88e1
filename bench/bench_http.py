"""What the HTTP view costs the tick loop: tick lateness with the server idle, scraped, flooded.

  PYTHONPATH=. python3 bench/bench_http.py [--apps 200] [--seconds 5] [--interval 0.25]
                                           [--clients 8] [--rounds 3]

A stand-in engine pushes a fresh snapshot of `--apps` rows every `--interval` seconds into a
ManualFeed (so every cache is invalidated every tick: the worst case) and records how late each
tick wakes. Scenarios run one after the other in this one process: no server, server idle,
Prometheus-like (a /metrics scrape per second and the chart page's history poll every 2 s),
a flood (`--clients` processes requesting /metrics, /api/v1/snapshot and /api/v1/history back to
back), and hostile clients (60 slowloris connections, oversized heads). Clients of the flood
and hostile scenarios are separate processes, so the CPU column is the server's (and ticker's).
Prints a markdown table of tick lateness and CPU per tick, as ratios against the no-server
baseline of the same run, plus the flood's requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

from bwmon.core.feed import ManualFeed
from bwmon.core.model import (
    AppRow,
    HostTotals,
    ProcessInfo,
    ProcKey,
    RowKind,
    Snapshot,
    Totals,
    Unit,
)
from bwmon.http import HttpServer, start_http

CLIENT = r"""
import socket, sys, time
port, until = int(sys.argv[1]), float(sys.argv[2])
paths = ["/metrics", "/api/v1/snapshot", "/api/v1/history"]
n = 0
while time.time() < until:
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {paths[n % 3]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    while s.recv(65536):
        pass
    s.close()
    n += 1
print(n)
"""

HOSTILE = r"""
import asyncio, sys, time
port, until = int(sys.argv[1]), float(sys.argv[2])

async def slowloris():
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
        while time.time() < until:
            w.write(b"X")
            await asyncio.sleep(0.5)
    except OSError:
        pass

async def oversized():
    n = 0
    while time.time() < until:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
            await r.read()
            w.close()
            n += 1
        except OSError:
            pass
    return n

async def main():
    *_, n = await asyncio.gather(*(slowloris() for _ in range(60)), oversized())
    print(n)

asyncio.run(main())
"""


def snapshot(seq: int, apps: int) -> Snapshot:
    rows = tuple(
        AppRow(f"app{i}", RowKind.APP, Unit.IP, float(i * 100 + seq), float(i * 10), seq * i * 1000,
               seq * i * 100, flows=2,
               processes=(ProcessInfo(ProcKey(1000 + i, 1), f"app{i}", f"/usr/bin/app{i} -d",
                                      "root", 0),))
        for i in range(apps)
    )
    return Snapshot(seq, time.time(), 0.1, rows, (), HostTotals(), Totals())


async def ticks(feed: ManualFeed, apps: int, seconds: float, interval: float) -> list[float]:
    """Push a snapshot every `interval`; return how late (s) each tick woke up."""
    late: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    seq = 0
    while loop.time() - start < seconds:
        seq += 1
        due = start + seq * interval
        await asyncio.sleep(max(0.0, due - loop.time()))
        late.append(loop.time() - due)
        feed.push(snapshot(seq, apps))
    return late


async def raw(port: int, data: bytes) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await reader.read()
        writer.close()
    except OSError:
        pass


async def prometheus_like(port: int, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        await raw(port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        if n % 2 == 0:
            await raw(port, b"GET /api/v1/history?top=8 HTTP/1.1\r\nConnection: close\r\n\r\n")
        n += 1
        await asyncio.sleep(1.0)


async def scenario(name: str, args: argparse.Namespace,
                   load: Callable[[HttpServer, asyncio.Event], Awaitable[object]] | None,
                   server_on: bool = True) -> tuple[str, list[float], float, str]:
    feed = ManualFeed(history_capacity=600)
    for seq in range(1, 60):  # a filled history
        feed.push(snapshot(seq, args.apps))
    server = await start_http(feed, "0", None) if server_on else None
    stop = asyncio.Event()
    extra = ""
    procs: list[subprocess.Popen[str]] = []
    task = None
    if load is not None and server is not None:
        task = asyncio.ensure_future(load(server, stop))
    if name in ("flood", "hostile") and server is not None:
        until = time.time() + args.seconds
        script, n = (CLIENT, args.clients) if name == "flood" else (HOSTILE, 1)
        procs = [subprocess.Popen([sys.executable, "-c", script, str(server.port), str(until)],
                                  stdout=subprocess.PIPE, text=True) for _ in range(n)]
    cpu = time.process_time()
    late = await ticks(feed, args.apps, args.seconds, args.interval)
    cpu = time.process_time() - cpu
    stop.set()
    if task is not None:
        await asyncio.wait_for(task, 10)
    if procs:
        loop = asyncio.get_running_loop()
        counts = [int((await loop.run_in_executor(None, p.communicate))[0]) for p in procs]
        what = "requests/s answered" if name == "flood" else "oversized heads/s refused"
        extra = f"{sum(counts) / args.seconds:.0f} {what}"
    if server is not None:
        if server.rejected:
            extra += f"{'; ' if extra else ''}{server.rejected} connections refused at the cap"
        await server.close()
    return name, late, cpu / len(late), extra


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--apps", type=int, default=200)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--interval", type=float, default=0.25)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()

    async def run() -> dict[str, tuple[list[float], list[float], list[str]]]:
        out: dict[str, tuple[list[float], list[float], list[str]]] = {}
        for _ in range(args.rounds):  # interleaved, so a burst of outside load hits all alike
            for name, load, on in (
                ("no server", None, False),
                ("server idle", None, True),
                ("prometheus-like", lambda s, e: prometheus_like(s.port, e), True),
                ("flood", None, True),
                ("hostile", None, True),
            ):
                _, late, cpu, extra = await scenario(name, args, load, server_on=on)
                lates, cpus, notes = out.setdefault(name, ([], [], []))
                lates.extend(late)
                cpus.append(cpu)
                notes.append(extra)
        return out

    results = asyncio.run(run())
    base_late, base_cpu, _ = results["no server"]
    b50 = statistics.median(base_late)
    b99 = statistics.quantiles(base_late, n=100)[98]
    bcpu = statistics.median(base_cpu)
    print(f"{args.apps} apps, a tick every {args.interval * 1000:.0f} ms, {args.rounds} rounds of "
          f"{args.seconds:g} s per scenario, {args.clients} flood clients\n")
    print("| scenario | ticks | late p50 ms | late p99 ms | p50 ratio | p99 ratio "
          "| CPU ms/tick | CPU ratio | notes |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (late, cpus, notes) in results.items():
        p50, p99 = statistics.median(late), statistics.quantiles(late, n=100)[98]
        cpu = statistics.median(cpus)
        print(f"| {name} | {len(late)} | {p50 * 1000:.2f} | {p99 * 1000:.2f} | {p50 / b50:.2f} | "
              f"{p99 / b99:.2f} | {cpu * 1000:.2f} | {cpu / bcpu:.2f} | "
              f"{'; '.join(n for n in notes if n)} |")


if __name__ == "__main__":
    main()
