"""Benchmark: tick cost and memory of measuring other network namespaces, and the cost of each
namespace discovered.

    python3 bench/bench_namespaces.py [--counts 1,10,50] [--active 5] [--ticks 20]
                                      [--bare 50]

As root. Creates COUNT network namespaces (`ip netns add bwbn-…`, loopback up, conntrack
accounting on and one conntrack rule, a `sleep` inside so each has a process); in ACTIVE of them
a generator keeps a TCP transfer and a new short connection every 0.2 s going on loopback, the
others stay idle. `--bare` counts run the same with stock namespaces (no conntrack rule,
accounting off): TCP is then measured from the sockets' counters alone. bwmon's engine runs in
a namespace of its own (the script re-executes itself there), measuring the bwbn- namespaces
(`namespaces.scope = "all"`, `include`); between ticks the owner watch runs its rounds every
`general.socket_watch` seconds as in `Engine.run`. Figures: CPU time (process time) per tick
over TICKS ticks after two warm-up ticks, mean and 95th percentile; the owner watch's CPU time
in the other namespaces as a share of a core; file descriptors and resident memory after the
run; and the tick where the COUNT namespaces are first seen (scan, names, meters, first reads)
minus a steady tick, per namespace. The baseline is the same engine measuring only its own
namespace (`scope = "own"`) with the same namespaces alive. Everything created is deleted at
the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TRAFFIC = REPO / "tests" / "helpers" / "traffic.py"
PREFIX = "bwbn"


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def make(count: int, active: int,
         bare: bool = False) -> tuple[list[str], list[subprocess.Popen[bytes]]]:
    names, procs = [], []
    for i in range(count):
        name = f"{PREFIX}-{os.getpid()}-{i}"
        sh("ip", "netns", "add", name)
        names.append(name)
        ex = ["ip", "netns", "exec", name]
        sh(*ex, "ip", "link", "set", "lo", "up")
        if not bare:
            sh(*ex, "sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1")
            sh(*ex, "iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED",
               "-j", "ACCEPT")
        procs.append(subprocess.Popen([*ex, "sleep", "100000"]))
        if i < active:
            sink = subprocess.Popen([*ex, sys.executable, str(TRAFFIC), "sink", "--port", "7600"],
                                    stdout=subprocess.PIPE)
            assert sink.stdout is not None
            sink.stdout.readline()
            procs.append(sink)
            procs.append(subprocess.Popen(
                [*ex, sys.executable, str(TRAFFIC), "client", "--tag", "bench", "--host",
                 "127.0.0.1", "--port", "7600", "--send", "200000", "--recv", "1000",
                 "--count", "100000", "--hold", "0.2"], stdout=subprocess.DEVNULL))
    return names, procs


def remove(names: list[str], procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
        p.wait()
    for name in names:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def run_engine(scope: str, ticks: int, interval: float) -> dict[str, float]:
    from bwmon.core.config.settings import Settings
    from bwmon.core.engine import WATCH_SHARE, Engine

    settings = Settings()
    g = settings.general
    g.events, g.ebpf, g.interval = False, "off", interval
    settings.namespaces.scope = scope  # type: ignore[assignment]
    settings.namespaces.include = [f"^{PREFIX}-"]
    engine = Engine(settings)
    costs = []
    rounds, watch_cpu, watch_wall = 0, 0.0, 0.0
    for n in range(ticks + 2):
        cpu = time.process_time()
        await engine.tick()
        spent = time.process_time() - cpu
        if n == 0:
            first = spent
        elif n >= 2:
            costs.append(spent)
        started = time.monotonic()
        while time.monotonic() - started < interval:  # the owner watch's rounds (Engine.run)
            cpu = time.process_time()
            watch = getattr(engine.namespaces, "watch_sockets", None)  # (none before a6e6a52)
            cost = 0.0
            if watch is not None:
                rounds += 1
                cost = await watch(rounds, engine.procs)
            if n >= 2:
                watch_cpu += time.process_time() - cpu
            await asyncio.sleep(max(g.socket_watch, cost / WATCH_SHARE))
        if n >= 2:
            watch_wall += time.monotonic() - started
    costs.sort()
    measured = len(engine.namespaces.meters) if engine.namespaces else 0
    fds = len(os.listdir("/proc/self/fd"))
    close = getattr(engine.namespaces, "close", None)  # (none before a6e6a52)
    if close is not None:
        await close()
    return {"mean_ms": 1000 * statistics.mean(costs),
            "p95_ms": 1000 * costs[int(0.95 * (len(costs) - 1))],
            "first_ms": 1000 * first, "rss_mib": rss_kib() / 1024, "measured": measured,
            "watch_pct": 100 * watch_cpu / watch_wall, "fds": fds}


def inner(args: argparse.Namespace) -> None:
    result = asyncio.run(run_engine(args.scope, args.ticks, args.interval))
    print(json.dumps(result))


def outer(args: argparse.Namespace) -> None:
    home = f"{PREFIX}home-{os.getpid()}"
    sh("ip", "netns", "add", home)
    rows = []
    runs = [(int(c), False) for c in args.counts.split(",") if c]
    runs += [(int(c), True) for c in args.bare.split(",") if c]
    try:
        for count, bare in runs:
            active = min(args.active, count)
            names, procs = make(count, active, bare)
            try:
                time.sleep(1.0)
                figures = {}
                for scope in ("own", "all"):
                    out = subprocess.run(
                        ["ip", "netns", "exec", home, sys.executable, __file__, "--inner",
                         "--scope", scope, "--ticks", str(args.ticks),
                         "--interval", str(args.interval)],
                        check=True, capture_output=True, text=True,
                        env={**os.environ, "PYTHONPATH": str(REPO)})
                    figures[scope] = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append((count, active, bare, figures))
            finally:
                remove(names, procs)
    finally:
        subprocess.run(["ip", "netns", "del", home], capture_output=True)
    print("| namespaces (active) | their conntrack | measured | own only: mean ms | all: mean ms "
          "| all: p95 ms | all − own per namespace ms | owner watch, % of a core "
          "| fds all − own | RSS own MiB | RSS all MiB | first tick − steady, per namespace ms |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count, active, bare, f in rows:
        own, every = f["own"], f["all"]
        per = (every["mean_ms"] - own["mean_ms"]) / count
        found = (every["first_ms"] - every["mean_ms"]) / count
        kind = "none (stock)" if bare else "counts"
        print(f"| {count} ({active}) | {kind} | {every['measured']} | {own['mean_ms']:.2f} | "
              f"{every['mean_ms']:.2f} | {every['p95_ms']:.2f} | {per:.3f} | "
              f"{every['watch_pct']:.2f} | {every['fds'] - own['fds']} | "
              f"{own['rss_mib']:.1f} | {every['rss_mib']:.1f} | {found:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--counts", default="1,10,50")
    p.add_argument("--active", type=int, default=5)
    p.add_argument("--bare", default="", help="counts to run with stock namespaces too")
    p.add_argument("--ticks", type=int, default=20)
    p.add_argument("--interval", type=float, default=0.5)
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--scope", default="all", help=argparse.SUPPRESS)
    args = p.parse_args()
    inner(args) if args.inner else outer(args)


if __name__ == "__main__":
    main()
