"""Benchmark: CPU per engine tick at 1k–100k conntrack entries, against a straightforward monitor.

    python3 bench/bench_tick.py [--sizes 1000,10000,50000,100000] [--ticks 20] [--procs 200]
                                [--changed 0.1]

Builds a fixture procfs tree per size (`<root>/net/nf_conntrack`, `net/{tcp,tcp6,udp,udp6}`,
`net/fib_trie`, `net/if_inet6` and PROCS fake processes whose `fd/` symlinks hold the flows'
socket inodes) and runs the real `Engine.tick()` on it through `GeneralSettings.proc_root`.
Each tick the table file is rewritten (timeouts count down, `--changed` of the flows moved
bytes; a tick in every five also replaces 1 % of the flows by new ones) outside the timing.

The reference, timed on the same files in the same run, is the straightforward monitor: the
key=value parser of bench_conntrack.py, a socket index, a full /proc/*/fd scan and per-process
sums every tick. Beside it, the plain parser alone (bench_scale_kernel.straightforward_parse).
Figures are CPU time (process time, so other load inflates them little) over `--ticks` ticks
after two warm-up ticks. bwmon's ticks run back to back with their garbage collection counted;
its mean and 95th percentile are over all ticks, those with new flows included, which are also
reported apart. The reference and the plain parse run in a worker interpreter of their own
(means).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_conntrack import reference_parse, render, synthesise  # noqa: E402
from bench_scale_kernel import straightforward_parse  # noqa: E402

from bwmon.core.config.settings import Settings  # noqa: E402
from bwmon.core.engine import Engine  # noqa: E402
from bwmon.core.sources.socket_table import SocketIndex, read_proc_sockets  # noqa: E402

HERE4, HERE6 = "192.168.1.10", "2001:db8::10"
FIRST_PID = 200_000


def _hex4(addr: str) -> str:
    return ipaddress.IPv4Address(addr).packed[::-1].hex().upper()


def _hex6(addr: str) -> str:
    raw = ipaddress.IPv6Address(addr).packed
    return "".join(raw[i:i + 4][::-1].hex().upper() for i in range(0, 16, 4))


def _sock_line(n: int, local: str, lport: int, remote: str, rport: int, state: int,
               inode: int) -> str:
    enc = _hex6 if ":" in local else _hex4
    return (f"{n:4}: {enc(local)}:{lport:04X} {enc(remote)}:{rport:04X} {state:02X} "
            f"00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0 20 4 30 10 -1")


class Tree:
    """A fixture procfs tree holding one synthesised conntrack table and its owners."""

    def __init__(self, root: Path, n: int, procs: int, seed: int = 1) -> None:
        self.root = root
        self.flows = synthesise(n, seed)
        self.procs = procs
        self._next_inode = 10_000
        self._rng = random.Random(seed)
        (root / "net").mkdir(parents=True, exist_ok=True)
        (root / "net" / "fib_trie").write_text(
            f"Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- {HERE4}\n        /32 host LOCAL\n")
        (root / "net" / "if_inet6").write_text(
            f"{ipaddress.IPv6Address(HERE6).exploded.replace(':', '')} 02 40 00 80 eth0\n")
        self.inodes: list[int] = [self._inode() for _ in self.flows]
        for i in range(procs):
            pid = FIRST_PID + i
            d = root / str(pid)
            (d / "fd").mkdir(parents=True)
            (d / "stat").write_text(f"{pid} (proc{i}) S" + " 0" * 18 + f" {1000 + i} 0 0\n")
            (d / "comm").write_text(f"proc{i}\n")
            (d / "cmdline").write_bytes(f"/usr/bin/app{i % 50}\0--worker\0{i}\0".encode())
            (d / "status").write_text(f"Name:\tproc{i}\nUid:\t0\t0\t0\t0\n")
        self._place(range(len(self.flows)))
        self.write_sockets()
        self.write_table(0, 1.0)  # the source looks for the file when it is created

    def _inode(self) -> int:
        self._next_inode += 1
        return self._next_inode

    def _place(self, indices: range | list[int]) -> None:
        for i in indices:
            head = self.flows[i][0]
            if "tcp" in head or "udp" in head:
                pid = FIRST_PID + self.inodes[i] % self.procs
                link = self.root / str(pid) / "fd" / str(self.inodes[i])
                link.symlink_to(f"socket:[{self.inodes[i]}]")

    def churn(self, share: float) -> None:
        """Replace `share` of the flows by new ones (new ports, new sockets, new fds)."""
        fresh = synthesise(max(1, int(len(self.flows) * share)), self._rng.randint(2, 10**9))
        slots = self._rng.sample(range(len(self.flows)), len(fresh))
        for slot, flow in zip(slots, fresh, strict=True):
            head = self.flows[slot][0]
            if "tcp" in head or "udp" in head:
                pid = FIRST_PID + self.inodes[slot] % self.procs
                (self.root / str(pid) / "fd" / str(self.inodes[slot])).unlink()
            self.flows[slot] = flow
            self.inodes[slot] = self._inode()
        self._place(slots)
        self.write_sockets()

    def write_sockets(self) -> None:
        rows: dict[str, list[str]] = {"tcp": [], "tcp6": [], "udp": [], "udp6": []}
        for (head, _to, state, o, _r, _f, _b), inode in zip(self.flows, self.inodes, strict=True):
            proto = "tcp" if "tcp" in head else "udp" if "udp" in head else None
            if proto is None:
                continue
            kv = dict(tok.split("=") for tok in o.split())
            name = proto + ("6" if ":" in kv["src"] else "")
            tw = state.strip() == "TIME_WAIT"
            st = 6 if tw else 1
            rows[name].append(_sock_line(len(rows[name]), str(ipaddress.ip_address(kv["src"])),
                                         int(kv["sport"]), str(ipaddress.ip_address(kv["dst"])),
                                         int(kv["dport"]), st, 0 if tw else inode))
        header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt" \
                 "   uid  timeout inode\n"
        for name, lines in rows.items():
            (self.root / "net" / name).write_text(header + "\n".join(lines) + "\n")

    def write_table(self, tick: int, changed: float) -> None:
        """The table at `tick`: timeouts count down, `changed` of the flows moved bytes.

        Counters only grow (bench_conntrack's `render` is not cumulative across ticks)."""
        rng = random.Random(tick)
        for flow in self.flows:
            if rng.random() < changed:
                flow[-1] += 1 + (tick % 7)
        (self.root / "net" / "nf_conntrack").write_text(render(self.flows, tick, 0.0))


def reference_tick(root: Path, text_path: Path) -> dict[int, int]:
    """The straightforward monitor's tick: parse all, index sockets, scan every fd, sum bytes."""
    entries = reference_parse(text_path.read_text())
    index = SocketIndex(asyncio.run(read_proc_sockets(root)))
    owner: dict[int, int] = {}
    for name in os.listdir(root):
        if not name.isdigit():
            continue
        fd_dir = f"{root}/{name}/fd"
        try:
            for fd in os.listdir(fd_dir):
                target = os.readlink(f"{fd_dir}/{fd}")
                if target.startswith("socket:["):
                    owner[int(target[8:-1])] = int(name)
        except OSError:
            continue
    usage: dict[int, int] = {}
    for e in entries:
        sock = index.find(e.proto, e.orig.src, e.orig.sport, e.orig.dst, e.orig.dport)
        pid = owner.get(sock.inode, 0) if sock is not None else 0
        usage[pid] = usage.get(pid, 0) + (e.orig_bytes or 0) + (e.reply_bytes or 0)
    return usage


def cpu_ms(fn: Callable[[], object], *, collect: bool = True) -> float:
    if collect:
        gc.collect()
    t0 = time.process_time()
    fn()
    return (time.process_time() - t0) * 1000


def engine_for(root: Path) -> Engine:
    settings = Settings()
    settings.general.proc_root = root
    settings.general.lookback = True
    return Engine(settings)


def worker() -> None:
    """The reference side, in its own interpreter: `ref ROOT` or `plain TABLE` per line in,
    CPU ms out. Neither side's heap then slows the other's garbage collection."""
    for line in sys.stdin:
        what, path = line.split(maxsplit=1)
        p = Path(path.strip())
        if what == "ref":
            ms = cpu_ms(lambda p=p: reference_tick(p, p / "net" / "nf_conntrack"))  # type: ignore[misc]
        else:
            ms = cpu_ms(lambda p=p: straightforward_parse(p.read_text()))  # type: ignore[misc]
        print(f"{ms:.3f}", flush=True)


class Reference:
    """The worker process running the reference monitor and the plain parser."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ms(self, what: str, path: Path) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{what} {path}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


@dataclass(frozen=True)
class Row:
    lines: int  # conntrack entries in the table
    mean: float  # bwmon ms per tick, all ticks
    p95: float  # bwmon ms, 95th percentile of all ticks
    churn: float  # bwmon ms, mean of the ticks with 1 % new flows
    reference: float  # the straightforward monitor, ms per tick
    plain: float  # the plain parse alone, ms


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def measure(n: int, procs: int, ticks: int, changed: float) -> Row:
    """One size, from interleaved ticks: bwmon's back to back as in a real monitor (garbage
    collection included, no forced collection before them), the reference and the plain parse
    in a worker interpreter (a collection before each, as a fresh program would start)."""
    with tempfile.TemporaryDirectory(prefix="bwmon-bench-tick-") as tmp:
        root = Path(tmp)
        tree = Tree(root, n, procs)
        engine = engine_for(root)
        loop = asyncio.new_event_loop()
        reference = Reference()
        ours: list[float] = []
        churned: list[float] = []
        ref: list[float] = []
        plain: list[float] = []
        table = root / "net" / "nf_conntrack"
        try:
            for tick in range(ticks + 2):
                churn = tick % 5 == 4
                if churn:
                    tree.churn(0.01)
                tree.write_table(tick, 1.0 if tick == 0 else changed)
                t_ours = cpu_ms(lambda: loop.run_until_complete(engine.tick()), collect=False)
                t_ref = reference.ms("ref", root)
                t_plain = reference.ms("plain", table)
                if tick >= 2:
                    ours.append(t_ours)
                    if churn:
                        churned.append(t_ours)
                    ref.append(t_ref)
                    plain.append(t_plain)
        finally:
            loop.close()
            reference.close()
        return Row(len(tree.flows), statistics.mean(ours), p95(ours),
                   statistics.mean(churned) if churned else float("nan"),
                   statistics.mean(ref), statistics.mean(plain))


def main() -> None:
    if sys.argv[1:] == ["--worker"]:
        worker()
        return
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,50000,100000")
    ap.add_argument("--ticks", type=int, default=20)
    ap.add_argument("--procs", type=int, default=200)
    ap.add_argument("--changed", type=float, default=0.1)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
          f"{os.getloadavg()[0]:.1f}; {args.procs} processes; {args.changed:.0%} of flows "
          f"changed per tick; {args.ticks} ticks (CPU time)\n")
    print("| entries | bwmon mean ms | bwmon p95 ms | bwmon ms, ticks with new flows | "
          "reference ms | reference / bwmon | plain parse ms | bwmon / plain parse |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in (int(s) for s in args.sizes.split(",")):
        r = measure(n, args.procs, args.ticks, args.changed)
        print(f"| {r.lines:,} | {r.mean:.1f} | {r.p95:.1f} | {r.churn:.1f} | {r.reference:.1f} "
              f"| {r.reference / r.mean:.1f}× | {r.plain:.1f} | {r.mean / r.plain:.2f} |",
              flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
