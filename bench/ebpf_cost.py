"""CPU cost of the eBPF socket probe while short TCP connections run (needs root).

In a private network namespace, a client makes N short loopback TCP connections to a sink, in
rounds alternating without and with the probe attached. Per round: the client's wall time, the
CPU time of client + sink (includes the in-kernel probe cost), this process's own CPU, and how
many connections were sighted with the client's pid. Ratios are taken within one run.

    python3 bench/ebpf_cost.py [--connections 1000] [--rounds 2]
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bwmon.core.sources.ebpf import EbpfOwners, Sighting  # noqa: E402
from tests.helpers.netns import NetNS  # noqa: E402

PORT = 47833
CLIENT = r"""
import json, socket, sys, time
port, count, sends = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ports = []
t = time.perf_counter()
if sends:  # one UDP socket, many small datagrams: the per-send cost of the probe
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        ports.append(s.getsockname()[1])
        for _ in range(sends):
            s.send(b"x" * 64)
    count = 0
for _ in range(count):
    with socket.create_connection(("127.0.0.1", port)) as s:
        ports.append(s.getsockname()[1])
        s.sendall(b"\0" * 8 + b"hello")
        s.shutdown(socket.SHUT_WR)
        while s.recv(4096):
            pass
print(json.dumps({"ports": ports, "wall": time.perf_counter() - t}))
"""
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime + children's, in seconds (the client is reaped before we read its own)."""
    fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICK


async def one_round(ns: NetNS, sink_pid: int, count: int, probe: bool,
                    sends: int = 0) -> dict[str, float]:
    owners = EbpfOwners(netns_inode=os.stat(Path("/run/netns") / ns.name).st_ino)
    seen: list[Sighting] = []
    task = None
    if probe:
        task = asyncio.create_task(owners.run(seen.append, lambda m: print(m, file=sys.stderr)))
        await asyncio.wait_for(owners.ready.wait(), 60)
        await asyncio.sleep(1.0)  # let the start-up (loading, verifying) settle
    sink_before = cpu_seconds(sink_pid)
    me_before = os.times()
    proc = await asyncio.create_subprocess_exec(
        *ns.argv(sys.executable, "-c", CLIENT, str(PORT), str(count), str(sends)),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    await asyncio.sleep(0.3)
    me_after = os.times()
    report = json.loads(out)
    client_cpu = (me_after.children_user + me_after.children_system
                  - me_before.children_user - me_before.children_system)
    result = {
        "wall_s": report["wall"],
        "client_sink_cpu_s": client_cpu + cpu_seconds(sink_pid) - sink_before,
        "bwmon_cpu_s": (me_after.user + me_after.system - me_before.user - me_before.system),
        "sighted": len({s.lport for s in seen if s.pid == proc.pid} & set(report["ports"])),
    }
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sends", type=int, default=200_000,
                        help="64-byte UDP datagrams sent on one socket in the small-sends rounds")
    args = parser.parse_args()
    with NetNS() as ns:
        sink = ns.popen([sys.executable, str(REPO / "tests/helpers/traffic.py"), "sink",
                         "--port", str(PORT)], stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        rows: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        small: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for probe in (False, True):
                r = await one_round(ns, sink.pid, args.connections, probe)
                rows[probe].append(r)
                print(("probe " if probe else "no probe ") + json.dumps(r), flush=True)
                r = await one_round(ns, sink.pid, 0, probe, sends=args.sends)
                small[probe].append(r)
                print(("sends, probe " if probe else "sends, no probe ") + json.dumps(r),
                      flush=True)
        sink.kill()
    n = args.connections

    def mean(probe: bool, key: str, table: dict[bool, list[dict[str, float]]] = rows) -> float:
        return sum(r[key] for r in table[probe]) / len(table[probe])

    print(f"connections per round: {n}, rounds: {args.rounds}, {time.strftime('%F %T')}")
    print(f"wall time with/without probe: {mean(True, 'wall_s') / mean(False, 'wall_s'):.2f}")
    print("client+sink CPU with/without probe: "
          f"{mean(True, 'client_sink_cpu_s') / mean(False, 'client_sink_cpu_s'):.2f}")
    print(f"bwmon's own CPU (parsing sightings) per 1000 connections: "
          f"{1000 * (mean(True, 'bwmon_cpu_s') - mean(False, 'bwmon_cpu_s')) / n:.3f} s")
    print(f"connections sighted: {mean(True, 'sighted') / n:.1%}")
    print(f"{args.sends} small UDP sends on one socket, wall time with/without probe: "
          f"{mean(True, 'wall_s', small) / mean(False, 'wall_s', small):.2f}; "
          "client CPU with/without probe: "
          f"{mean(True, 'client_sink_cpu_s', small) / mean(False, 'client_sink_cpu_s', small):.2f}")


if __name__ == "__main__":
    asyncio.run(main())
