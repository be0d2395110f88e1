"""Short connections: the share of bytes each tool attributes to the process that moved them.

Two private network namespaces joined by a veth pair: the client namespace (monitored) and the
sink's. For every cell of lifetimes × TCP/UDP × IPv4/IPv6, a generator with a distinctive
command line (`traffic.py client --tag short-<cell>`) opens N connections to the sink, each
moving exactly --send bytes up and --recv bytes down and then held open for the lifetime.
Observers, all running through the whole benchmark in the client namespace:

  bwmon ×3   `bwmon monitor --json`, one per attribution mode: poll (no events, no eBPF),
             events (conntrack NEW/DESTROY events), ebpf (events + the eBPF socket probe)
  nethogs    `nethogs -t -C -v 2` on the veth device (trace mode, total bytes)
  truth      conntrack's own counters of the generator's flows (DESTROY events + table)

Share = bytes on the generator's row / conntrack's bytes of its flows (bwmon), or the
generator's row / all rows (nethogs, whose units are its own); CPU = utime+stime during the
cell, of bwmon with its discovery worker and conntrack -E children, and of nethogs.

    python3 bench/bench_short.py [--connections 300] [--lifetimes 0,0.1,1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from short_tools import MODES, REPO, Bwmon, Nethogs, Truth

from bwmon.core.sources.ebpf import EbpfOwners
from tests.helpers.netns import NetNS, link

TRAFFIC = str(REPO / "tests" / "helpers" / "traffic.py")
BASE_PORT = 7400
SETTLE = 3.0  # seconds after a cell for the last ticks (1 s interval) and nethogs refreshes


def cells(lifetimes: list[float], protos: list[str], families: list[int],
          observer: str, number: int) -> list[dict]:
    """The matrix for one observer's pass: its own sink ports and group names."""
    out = []
    for i, (life, proto, fam) in enumerate(
        (lf, p, f) for lf in lifetimes for p in protos for f in families
    ):
        out.append({"name": f"{observer}-{i}-{proto}{fam}-{life:g}s", "lifetime": life,
                    "proto": proto, "family": fam, "port": BASE_PORT + 100 * number + i,
                    "cell": f"{life:g}/{proto}/{fam}"})
    return out


def veth_of(ns: NetNS) -> str:
    for line in ns.run("ip", "-o", "link").stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith("bwv"):
            return name
    raise RuntimeError("no veth device in the client namespace")


def run_cell(cell: dict, args: argparse.Namespace, client: NetNS, hosts: dict[int, str],
             bwmons: list[Bwmon], nethogs: Nethogs | None, truth: Truth) -> dict:
    """Run one generator; CPU of each observer during it (until the settle time is over)."""
    observers = {b.mode: b for b in bwmons}
    if nethogs is not None:
        observers["nethogs"] = nethogs
    before = {k: o.cpu() for k, o in observers.items()}
    hogs_before = nethogs.totals() if nethogs is not None else {}
    # ~1 ms connections one after another; longer ones `--concurrency` at a time
    concurrency = 1 if cell["lifetime"] < 0.01 else args.concurrency
    argv = [sys.executable, TRAFFIC, "client", "--tag", cell["name"], "--host",
            hosts[cell["family"]], "--port", str(cell["port"]), "--proto", cell["proto"],
            "--send", str(args.send), "--recv", str(args.recv), "--count",
            str(args.connections), "--hold", str(cell["lifetime"]), "--concurrency",
            str(concurrency), "--report"]
    started = time.monotonic()
    gen = client.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = gen.communicate(timeout=600)
    took = time.monotonic() - started
    if gen.returncode != 0:
        raise RuntimeError(f"generator failed: {err}")
    lifetime_ms = float(out.split("lifetime_ms=")[1].split()[0])
    time.sleep(SETTLE)
    cpu = {k: o.cpu() - before[k] for k, o in observers.items()}
    # the table still holds every flow of the cell (TIME_WAIT 120 s, UDP 30 s or more); the
    # DESTROY events cover any that left it already
    truth_bytes = truth.bytes_to(truth.flows(), cell["proto"], cell["port"])
    share = {}
    # what each bwmon showed for the cell when it was over (the final share may differ)
    at_end = {b.mode: b.totals().get(cell["name"], 0) / truth_bytes if truth_bytes else 0.0
              for b in bwmons}
    if nethogs is not None:  # the generator's row against it plus what went "unknown" meanwhile
        hogs = nethogs.totals()
        got = hogs.get(f"pid:{gen.pid}", 0.0)
        unknown = _unknown(hogs) - _unknown(hogs_before)
        share["nethogs"] = got / (got + unknown) if got + unknown else 0.0
    return {**cell, "pid": gen.pid, "wall_s": took, "lifetime_ms": lifetime_ms, "cpu_s": cpu,
            "share": share, "truth_bytes": truth_bytes, "share_at_end": at_end}


def shares(results: list[dict], bwmons: list[Bwmon]) -> None:
    """Fill in each cell's truth bytes and the share every bwmon mode attributed."""
    totals = {b.mode: b.totals() for b in bwmons}
    for r in results:
        r["share"].update({mode: t.get(r["name"], 0) / r["truth_bytes"] if r["truth_bytes"]
                           else 0.0 for mode, t in totals.items()})


def _unknown(rows: dict[str, float]) -> float:
    return sum(v for k, v in rows.items() if k.startswith("unknown"))


def table(results: list[dict], cols: list[str]) -> str:
    head = ("| lifetime (measured) | proto | IP | conns | " + " | ".join(f"{c} share"
            for c in cols) + " | " + " | ".join(f"{c} CPU s" for c in cols) + " |")
    lines = [head, "|" + "---|" * (4 + 2 * len(cols))]
    for r in results:  # bwmon: the share shown when the cell was over (see the notes)
        shown = {**r["share"], **r["share_at_end"]}
        shares_ = " | ".join(f"{100 * shown[c]:.1f} %" for c in cols)
        cpu = " | ".join(f"{r['cpu_s'][c]:.2f}" for c in cols)
        ms = sorted(r["lifetime_ms"].values())
        lines.append(f"| {r['lifetime']:g} s ({ms[0]:.1f}–{ms[-1]:.1f} ms) | {r['proto']} | "
                     f"v{r['family']} | {r['connections']} | {shares_} | {cpu} |")
    return "\n".join(lines)


def one_pass(observer: str, number: int, args: argparse.Namespace, client: NetNS,
             server: NetNS, hosts: dict[int, str], truth: Truth, tmp: Path) -> list[dict]:
    """Every cell of the matrix with one observer running alone (or all, with --together)."""
    todo = cells(args.lifetime_list, args.protos.split(","),
                 [int(x) for x in args.families.split(",")], observer, number)
    sinks = [server.popen([sys.executable, TRAFFIC, "sink", "--port", str(c["port"])],
                          stdout=subprocess.PIPE, text=True) for c in todo]
    for s in sinks:
        assert s.stdout is not None and s.stdout.readline().strip() == "ready"
    groups = {c["name"]: f"--tag {c['name']} " for c in todo}
    modes = args.mode_list if observer == "all" else [m for m in args.mode_list if m == observer]
    bwmons = [Bwmon(client, mode, groups, tmp) for mode in modes]
    hogs = None
    if observer in ("all", "nethogs"):
        hogs = Nethogs(client, veth_of(client))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        b.ticks() < 3 or (b.mode == "ebpf" and "ebpf" not in b.sources()) for b in bwmons
    ):
        time.sleep(0.2)  # started: a baseline tick and the sources up (probes attached)
    time.sleep(2.0)
    results = []
    try:
        for cell in todo:
            r = run_cell(cell, args, client, hosts, bwmons, hogs, truth)
            r["connections"] = args.connections
            results.append(r)
            print(f"{cell['name']}: {r['wall_s']:.1f} s, lifetime {r['lifetime_ms']:.1f} ms",
                  file=sys.stderr, flush=True)
        shares(results, bwmons)
        for b in bwmons:
            r["sources_" + b.mode] = b.sources()
            if "Traceback" in "".join(b.err):
                print(f"bwmon {b.mode} failed: {''.join(b.err)[-600:]}", file=sys.stderr)
    finally:
        for o in (*bwmons, *([hogs] if hogs else [])):
            o.stop()
        for s in sinks:
            s.kill()
            s.wait()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=300)
    p.add_argument("--send", type=int, default=64 * 1024)
    p.add_argument("--recv", type=int, default=16 * 1024)
    p.add_argument("--lifetimes", default="0,0.1,1", help="hold times in seconds (0: ~1 ms)")
    p.add_argument("--protos", default="tcp,udp")
    p.add_argument("--families", default="4,6")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--concurrency", type=int, default=50,
                   help="connections open at a time for lifetimes >= 10 ms")
    p.add_argument("--no-nethogs", action="store_true")
    p.add_argument("--together", action="store_true",
                   help="all observers at once in one pass (default: one pass per observer)")
    p.add_argument("--json", type=Path, help="write the raw results here")
    args = p.parse_args()
    args.lifetime_list = [float(x) for x in args.lifetimes.split(",")]
    args.mode_list = args.modes.split(",")
    if "ebpf" in args.mode_list and (reason := EbpfOwners().available()) is not None:
        print(f"eBPF mode skipped: {reason}", file=sys.stderr)
        args.mode_list.remove("ebpf")
    observers = [*args.mode_list, *([] if args.no_nethogs else ["nethogs"])]
    passes = ["all"] if args.together else observers
    merged: dict[str, dict] = {}
    sources: dict[str, list[str]] = {}
    with NetNS(events=1, prefix="bwsc") as client, NetNS(prefix="bwss") as server, \
            tempfile.TemporaryDirectory() as tmp:
        _, ip4s = link(client, server, 9)
        hosts = {4: ip4s, 6: "fd00:b:0:9::2"}
        truth = Truth(client)
        try:
            for number, observer in enumerate(passes):
                for r in one_pass(observer, number, args, client, server, hosts, truth,
                                  Path(tmp)):
                    row = merged.setdefault(r["cell"], {**r, "share": {}, "cpu_s": {},
                                                        "lifetime_ms": {}, "share_at_end": {}})
                    row["share"].update(r["share"])
                    row["share_at_end"].update(r["share_at_end"])
                    row["cpu_s"].update(r["cpu_s"])
                    row["lifetime_ms"].update({o: r["lifetime_ms"] for o in r["cpu_s"]})
                    sources.update({k[8:]: v for k, v in r.items() if k.startswith("sources_")})
        finally:
            overruns = truth.overruns()
            truth.events.stop()
    results = list(merged.values())
    print(f"# {time.strftime('%F %T')}, {os.uname().release}, load {os.getloadavg()[0]:.1f}, "
          f"{args.connections} connections of {args.send} B up / {args.recv} B down per cell, "
          f"{'all observers together' if args.together else 'one pass per observer'}")
    print(f"# active sources per mode: {json.dumps(sources)}; truth listener overruns: {overruns}")
    print(table(results, observers))
    for c in observers:
        cpu = sum(r["cpu_s"][c] for r in results)
        print(f"# {c}: CPU {cpu:.2f} s in all cells")
    for r in results:  # bytes counted after the cell was over (e.g. DESTROY of expired flows)
        for mode, end in r["share_at_end"].items():
            if abs(r["share"][mode] - end) > 0.005:
                print(f"# {mode} {r['cell']}: {100 * end:.1f} % when the cell ended (shown "
                      f"above), {100 * r['share'][mode]:.1f} % at the end of the pass")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
