"""Per-socket byte counters against the conntrack table: tick cost, and a busy server.

    python3 bench/bench_sockets.py tick [--sizes 1000,10000,50000] [--reps 7]
    python3 bench/bench_sockets.py busy [--flows 45000] [--seconds 30] [--warmup 15]
                                                                            (root only)

`tick`: in a private network namespace (accounting on, a tracking rule), holder processes open
SIZE/2 loopback TCP connections (SIZE sockets, SIZE/2 conntrack flows) and sends 100 bytes on a
tenth of them every second. A second process in the namespace then times, interleaved, once a
second, `--reps` times: the socket source's part of a tick (one sock_diag dump with tcp_info,
`sources.sock_diag.dump_tcp_bytes`, and the per-socket deltas, `SocketFlows.read`) and the
conntrack part of a tick on the same flows (`ConntrackSource.read` of /proc/net/nf_conntrack,
with bwmon's incremental parser, and `FlowTracker.read`). CPU ms (all threads), median.

`busy`: the issue's busy-server workload. In a namespace with accounting on and a tracking rule:
FLOWS idle conntrack entries (one UDP datagram each from a fresh port, UDP timeouts raised), 20
new TCP connections a second (10 KB each) and one long paced TCP transfer (5 MB/s), all on
loopback. Side by side in the same run: `bwmon run --json` with the default settings (socket
counters on), the same with `socket_counters = false` (conntrack alone, as before), and
`nethogs -a -t -d 1 lo`. Per monitor: CPU ms per second of its whole process tree over `--seconds`
after `--warmup`, and for bwmon the median spacing of its snapshots.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers.netns import NetNS  # noqa: E402

TRAFFIC = str(REPO / "tests" / "helpers" / "traffic.py")
PORT = 7601


PER_HOLDER = 9000  # connections per holder process (two fds each; RLIMIT_NOFILE may be 20k)


def _nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def hold(connections: int, port: int) -> None:
    """(in the namespace) Hold `connections` loopback TCP connections; move 100 B on a tenth
    of them every second."""
    _nofile()
    srv = socket.create_server(("127.0.0.1", port), backlog=4096)
    clients, accepted = [], []
    for i in range(connections):
        clients.append(socket.create_connection(("127.0.0.1", port)))
        accepted.append(srv.accept()[0])
        if i % 1000 == 999:
            time.sleep(0.01)
    for s in accepted:
        s.setblocking(False)
    print("ready", flush=True)
    data = b"x" * 100
    step = 0
    while True:
        started = time.monotonic()
        for i in range(step % 10, connections, 10):
            clients[i].send(data)
            with contextlib.suppress(BlockingIOError):
                accepted[i].recv(4096)
        step += 1
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


async def _time_tick(reps: int) -> dict[str, float]:
    from bwmon.core.attribution.flows import FlowTracker
    from bwmon.core.attribution.socket_flows import SocketFlows
    from bwmon.core.model import SocketBytes
    from bwmon.core.sources.conntrack_read import ConntrackSource
    from bwmon.core.sources.sock_diag import dump_tcp_bytes

    sflows, cflows = SocketFlows(lookback=False), FlowTracker(lookback=False)
    ct = ConntrackSource(Path("/proc"), "conntrack")
    sock_ms, ct_ms = [], []
    sockets = entries = 0
    previous: dict[int, SocketBytes] = {}
    for tick in range(1, reps + 3):
        t0 = time.process_time()
        samples = dump_tcp_bytes(previous)
        sflows.read(samples, tick)
        t1 = time.process_time()
        got = await ct.read()
        cflows.read(got, tick, ct.change)
        t2 = time.process_time()
        if tick > 2:  # the first reads build every record: not a steady tick
            sock_ms.append((t1 - t0) * 1000)
            ct_ms.append((t2 - t1) * 1000)
        sockets, entries = len(samples), len(got)
        await asyncio.sleep(1.0)
    return {"sockets": sockets, "entries": entries, "socket_ms": statistics.median(sock_ms),
            "conntrack_ms": statistics.median(ct_ms)}


def tick(sizes: list[int], reps: int) -> None:
    print("| TCP sockets | conntrack entries | socket source ms/tick | conntrack ms/tick | "
          "conntrack / sockets |")
    print("|---:|---:|---:|---:|---:|")
    for size in sizes:
        with NetNS(prefix="bwss") as ns:
            holders = []
            try:
                left, port = size // 2, PORT
                while left > 0:
                    n = min(left, PER_HOLDER)
                    holders.append(ns.popen([sys.executable, __file__, "hold", str(n), str(port)],
                                            stdout=subprocess.PIPE, text=True))
                    left, port = left - n, port + 1
                for holder in holders:
                    assert holder.stdout is not None
                    if holder.stdout.readline().strip() != "ready":
                        raise SystemExit("a holder did not start")
                env = {**os.environ, "PYTHONPATH": str(REPO)}
                out = ns.run(sys.executable, __file__, "time", str(reps), env=env).stdout
                r = json.loads(out)
            finally:
                for holder in holders:
                    holder.kill()
                    holder.wait()
        print(f"| {r['sockets']:,} | {r['entries']:,} | {r['socket_ms']:.1f} | "
              f"{r['conntrack_ms']:.1f} | {r['conntrack_ms'] / r['socket_ms']:.1f}× |",
              flush=True)


def idle_entries(n: int) -> None:
    """(in the namespace) Leave `n` idle UDP conntrack entries, then stay (as a marker)."""
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"x", ("127.0.0.1", 20000 + i % 2000))
        s.close()
    print("ready", flush=True)
    time.sleep(1e6)


def churn(rate: float) -> None:
    """(in the namespace) `rate` new TCP connections a second to the sink, 10 KB each."""
    while True:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", PORT)) as s:
            s.sendall((10_000).to_bytes(8, "big") + (0).to_bytes(8, "big") + b"c" * 10_000)
        time.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in (proc, *proc.children(recursive=True)):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def busy(flows: int, seconds: float, warmup: float) -> None:
    nethogs = shutil.which("nethogs")
    with NetNS(prefix="bwsb") as ns, tempfile.TemporaryDirectory(prefix="bwmon-busy-") as t:
        tmp = Path(t)
        for key in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
            ns.run("sysctl", "-qw", f"net.netfilter.{key}=3600")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        load: list[subprocess.Popen[str]] = []
        try:
            load.append(ns.popen([sys.executable, TRAFFIC, "sink", "--port", str(PORT)],
                                 stdout=subprocess.PIPE, text=True))
            load.append(ns.popen([sys.executable, __file__, "idle", str(flows)],
                                 stdout=subprocess.PIPE, text=True))
            for p in load:
                assert p.stdout is not None and p.stdout.readline().strip() in ("ready",)
            load.append(ns.popen([sys.executable, __file__, "churn", "20"]))
            load.append(ns.popen([sys.executable, TRAFFIC, "client", "--tag", "long", "--host",
                                  "127.0.0.1", "--port", str(PORT), "--send", str(10**12),
                                  "--rate", "5000000"], stdout=subprocess.DEVNULL))
            monitors: dict[str, subprocess.Popen[bytes]] = {}
            outs: dict[str, Path] = {}
            for name, sockets in (("bwmon", "true"), ("bwmon, conntrack alone", "false")):
                cfg = tmp / f"{sockets}.toml"
                cfg.write_text(f"[general]\nsocket_counters = {sockets}\n")
                outs[name] = tmp / f"{sockets}.jsonl"
                monitors[name] = ns.popen(
                    [sys.executable, "-m", "bwmon", "run", "--json", "--config", str(cfg),
                     "--interval", "1"], stdout=outs[name].open("w"),
                    stderr=subprocess.DEVNULL, env=env)
            if nethogs:
                monitors["nethogs"] = ns.popen([nethogs, "-a", "-t", "-d", "1", "lo"],
                                               stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL)
            time.sleep(warmup)
            procs = {k: psutil.Process(p.pid) for k, p in monitors.items()}
            c0 = {k: tree_cpu(p) for k, p in procs.items()}
            stamps: dict[str, list[float]] = {k: [] for k in outs}
            seen = {k: len(v.read_text().splitlines()) for k, v in outs.items()}
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                time.sleep(0.05)
                for k, path in outs.items():
                    n = len(path.read_text().splitlines())
                    if n > seen[k]:
                        stamps[k].append(time.monotonic())
                        seen[k] = n
            t1 = time.monotonic()
            c1 = {k: tree_cpu(p) for k, p in procs.items()}
            entries = len(ns.conntrack_text().splitlines())
            for p in monitors.values():
                p.terminate()
                p.wait(timeout=30)
        finally:
            for p in load:
                p.kill()
                p.wait()
    print(f"conntrack entries {entries:,}; CPU over {seconds:g} s after {warmup:g} s\n")
    print("| monitor | CPU % of a core (whole tree) | median snapshot spacing s |")
    print("|---|---:|---:|")
    for k in procs:
        cpu = (c1[k] - c0[k]) / (t1 - t0) * 100
        gaps = [b - a for a, b in zip(stamps.get(k, []), stamps.get(k, [])[1:], strict=False)]
        spacing = f"{statistics.median(gaps):.2f}" if gaps else "–"
        print(f"| {k} | {cpu:.1f} | {spacing} |")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] in ("hold", "time", "idle", "churn"):
        cmd, arg = sys.argv[1], sys.argv[2]
        if cmd == "hold":
            hold(int(arg), int(sys.argv[3]))
        elif cmd == "time":
            print(json.dumps(asyncio.run(_time_tick(int(arg)))))
        elif cmd == "idle":
            idle_entries(int(arg))
        else:
            churn(float(arg))
        return
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tick")
    t.add_argument("--sizes", default="1000,10000,50000")
    t.add_argument("--reps", type=int, default=7)
    b = sub.add_parser("busy")
    b.add_argument("--flows", type=int, default=45000)
    b.add_argument("--seconds", type=float, default=30.0)
    b.add_argument("--warmup", type=float, default=15.0)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
          f"{os.getloadavg()[0]:.1f}\n")
    if args.cmd == "tick":
        tick([int(s) for s in args.sizes.split(",")], args.reps)
    else:
        busy(args.flows, args.seconds, args.warmup)


if __name__ == "__main__":
    main()
