"""Loopback throughput through a pipe, beside iperf3 direct and socat, in one run.

    python3 bench/bench_pipe.py [--gib 2] [--rounds 3]

iperf3 sends N bytes over loopback TCP to an iperf3 server, either directly (the ceiling of
the machine) or through a relay in front of the server: socat with a buffer as large as
bwmon's (`-b`, the splice pipe's 1 MiB), `python -m bwmon.core.pipes.child` as the monitor
runs it (splice, a thread per direction), and the same with --no-splice (asyncio streams, the
portable fallback). The modes run interleaved, once per round, so load changes hit every mode
alike; the best round of each is kept. Reports Gbit/s as iperf3's receiver counts it, the
ratio to direct and to socat, and the relay's CPU seconds per GiB; checks that bwmon's
counter holds every byte that reached the server.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bwmon.core.pipes.pumps import PIPE_SIZE  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=str(REPO))
GiB = 1 << 30
MODES = ["iperf3 direct", "socat -b", "bwmon splice", "bwmon streams"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (without connecting to it)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A" for r in rows)


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while not listening(port):
        if time.monotonic() > deadline:
            raise SystemExit(f"nothing listens on 127.0.0.1:{port}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_relay(mode: str, target: int) -> tuple[subprocess.Popen[str] | None, int]:
    """The relay of `mode` in front of port `target`: (process, port to connect to)."""
    if mode == "iperf3 direct":
        return None, target
    if mode == "socat -b":
        port = free_port()
        proc = subprocess.Popen(
            ["socat", "-b", str(PIPE_SIZE), f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
             f"TCP:127.0.0.1:{target}"], text=True)
        wait_listening(port)
        return proc, port
    extra = ["--no-splice"] if mode == "bwmon streams" else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "bwmon.core.pipes.child", "--port", "0", "--target-host",
         "127.0.0.1", "--target-port", str(target), "--interval", "60", "--control", *extra],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=ENV, cwd=REPO)
    assert proc.stdout is not None
    return proc, int(json.loads(proc.stdout.readline())["listen"].rsplit(":", 1)[1])


def relay_cpu(relay: subprocess.Popen[str]) -> float:
    """CPU seconds of the relay and its children (socat forks one per connection)."""
    import psutil

    proc = psutil.Process(relay.pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        t = p.cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
    return total


def one_run(mode: str, nbytes: int) -> tuple[float, float]:
    """(Gbit/s, relay CPU seconds) of one iperf3 transfer of `nbytes` through `mode`."""
    server_port = free_port()
    server = subprocess.Popen(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(server_port)],
                              stdout=subprocess.DEVNULL)
    wait_listening(server_port)
    relay, port = start_relay(mode, server_port)
    try:
        cpu0 = relay_cpu(relay) if relay else 0.0
        done = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", str(nbytes),
                               "-J"], capture_output=True, text=True, check=True)
        cpu = relay_cpu(relay) - cpu0 if relay else 0.0
        end = json.loads(done.stdout)["end"]
        received, sent = end["sum_received"], end["sum_sent"]
        if mode.startswith("bwmon") and relay is not None:
            assert relay.stdin is not None and relay.stdout is not None
            relay.stdin.close()  # the child reports its counters once more and exits
            last = json.loads(relay.stdout.read().splitlines()[-1])
            # what reached the server passed the relay; iperf3 ends a test on its control
            # connection, so what a relay still held then is dropped, never delivered
            counted, low, high = last["in"], received["bytes"], sent["bytes"] + (64 << 10)
            assert low <= counted <= high, f"{mode} counted {counted}, not in [{low}, {high}]"
        return float(received["bits_per_second"]) / 1e9, cpu
    finally:
        for proc in (relay, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--gib", type=float, default=2.0, help="GiB per transfer")
    parser.add_argument("--rounds", type=int, default=3, help="transfers per mode (best kept)")
    args = parser.parse_args()
    nbytes = int(args.gib * GiB)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for mode in MODES:
            gbit, cpu = one_run(mode, nbytes)
            if mode not in best or gbit > best[mode][0]:
                best[mode] = (gbit, cpu)
    direct, socat = best["iperf3 direct"][0], best["socat -b"][0]
    print(f"{args.gib:g} GiB per transfer, best of {args.rounds}; load average "
          f"{os.getloadavg()[0]:.1f}\n")
    print("| mode | Gbit/s | × iperf3 direct | × socat -b | relay CPU s/GiB |")
    print("|---|---:|---:|---:|---:|")
    for mode in MODES:
        gbit, cpu = best[mode]
        per_gib = f"{cpu / (nbytes / GiB):.2f}" if mode != "iperf3 direct" else "–"
        print(f"| {mode} | {gbit:.1f} | {gbit / direct:.2f} | {gbit / socat:.2f} | {per_gib} |")


if __name__ == "__main__":
    main()
