"""Soak: memory of bwmon's whole process tree over a run of connection churn, beside nethogs.

    python3 bench/bench_soak.py [--warmup 120] [--minutes 10] [--sample 10] [--rate 28]

As root, in a private network namespace: a sink, the paced churn of bench/soak_churn.py
(`--rate` short TCP connections a second in all, a quarter as many UDP exchanges, two new client
processes every 5 s, so owners come and go) straight to the sink, and a slower churn (a seventh
of the rate) through a pipe each monitor runs. Three monitors watch it at once: `bwmon run`
(output thrown away), `bwmon-tui` in tmux at 120×40, each with its discovery worker, `conntrack
-E` and pipe child and the eBPF socket probe (each with a history store of its own), and
`nethogs -a -t -d 1 lo`. Every `--sample` seconds each tree's proportional set size (PSS: pages
shared between processes are split between them, so the trees' figures add up) and RSS are read
with bwmon.core.runtime.process_tree.tree_usage, with the table's size, and each bwmon tree's
PSS without its pipe child (issue 20's tree: bwmon, discovery worker, `conntrack -E`, the eBPF
loader in bwmon's process). Reports, after `--warmup` seconds, the first and last sample, the
largest, and CPU seconds per minute of each tree, and the last sample of each tree by process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bwmon.core.runtime.process_tree import TreeUsage, tree_usage  # noqa: E402
from tests.helpers.netns import NetNS  # noqa: E402
from tests.helpers.terminal import Tmux  # noqa: E402

TRAFFIC = str(REPO / "tests" / "helpers" / "traffic.py")
CHURN = str(REPO / "bench" / "soak_churn.py")
PY = sys.executable
SINK_PORT = 7001
CONFIG = """[[monitors]]
name = "system"
type = "conntrack"

[[monitors]]
name = "relay"
type = "pipe"
listen = "127.0.0.1"
port = {port}
target_host = "127.0.0.1"
target_port = {sink}

[history]
path = "{history}"
"""
PIPE_CHILD = "pipe child"
# what each of bwmon's processes is, by the module it runs
NAMES = {"bwmon.core.attribution.discovery_worker": "discovery worker",
         "bwmon.core.pipes.child": PIPE_CHILD, "bwmon.tui.main": "bwmon-tui"}


def churn(ns: NetNS, rate: float, port: int) -> subprocess.Popen[bytes]:
    """The paced churn of bench/soak_churn.py towards `port`."""
    return ns.popen([PY, CHURN, "churn", "--port", str(port), "--rate", str(rate)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def newest(pattern: str, after: float, timeout: float = 30.0) -> psutil.Process:
    """The newest process started after `after` whose command line holds `pattern` (not the
    `ip netns exec` or tmux wrapping it)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for p in psutil.process_iter(["cmdline", "create_time"]):
            cmd = " ".join(p.info["cmdline"] or ())
            if (pattern in cmd and p.info["create_time"] >= after
                    and not cmd.startswith(("ip netns exec", "tmux"))):
                return p
        time.sleep(0.5)
    raise SystemExit(f"no process matching {pattern!r} appeared")


@dataclass(frozen=True)
class Sample:
    t: float
    trees: dict[str, TreeUsage]
    entries: int
    without_pipes: dict[str, int]  # each tree's PSS without its pipe children


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--sample", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=120.0)
    ap.add_argument("--rate", type=float, default=28.0,
                    help="new TCP connections a second straight to the sink, paced to the clock")
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("tmux") is None or shutil.which("nethogs") is None:
        raise SystemExit("needs root, tmux and nethogs (./dev bench installs them)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up when stopped
    with NetNS(prefix="bwsoak") as ns, tempfile.TemporaryDirectory() as tmp:
        configs = {}
        for name, port in (("run", 7100), ("tui", 7101)):
            configs[name] = Path(tmp) / f"{name}.toml"
            configs[name].write_text(CONFIG.format(port=port, sink=SINK_PORT,
                                                   history=Path(tmp) / f"{name}.sqlite"))
        env = dict(os.environ, PYTHONPATH=str(REPO), BWMON_GENERAL__INTERVAL="1")
        procs = [ns.popen([PY, TRAFFIC, "sink", "--port", str(SINK_PORT), "--reply", "20000"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        tmux = None
        try:
            time.sleep(1)
            t0 = time.time()
            procs.append(ns.popen([PY, "-m", "bwmon", "run", "--config", str(configs["run"])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env=env, cwd=REPO))
            tmux = Tmux(f"bwmon-soak-{os.getpid()}",
                        ns.argv(PY, "-m", "bwmon.tui.main", "--config", str(configs["tui"])),
                        (120, 40), env={"PYTHONPATH": str(REPO), "BWMON_GENERAL__INTERVAL": "1"})
            procs.append(ns.popen(["nethogs", "-a", "-t", "-d", "1", "lo"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
            roots = {"bwmon run": newest(f"bwmon run --config {configs['run']}", t0 - 1),
                     "bwmon-tui": newest(f"bwmon.tui.main --config {configs['tui']}", t0 - 1),
                     "nethogs": newest("nethogs -a -t -d 1 lo", t0 - 1)}
            time.sleep(2)
            procs += [churn(ns, args.rate, SINK_PORT), churn(ns, args.rate / 7, 7100),
                      churn(ns, args.rate / 7, 7101)]
            samples = soak(ns, roots, args)
        finally:
            if tmux is not None:
                tmux.kill()
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()
    report(samples, args)
    print()
    for name, parts in last_parts.items():
        print(f"{name}, by process at the end: " + ", ".join(
            f"{what} {pss / 2**20:.1f}" for what, pss in parts) + " MiB PSS")


last_parts: dict[str, list[tuple[str, int]]] = {}


def by_process(pid: int) -> list[tuple[str, int]]:
    """PSS of a tree's processes, each named by what it is (the tree's figure, taken apart)."""
    out = []
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            argv = proc.cmdline()
            what = next((NAMES.get(a, a) for a in argv if a.startswith("bwmon.")),
                        Path(argv[0]).name if argv else "?")
            if "bwmon" in argv:
                what = "bwmon " + argv[argv.index("bwmon") + 1]
            out.append((what, proc.memory_full_info().pss))
    return out


def soak(ns: NetNS, roots: dict[str, psutil.Process], args: argparse.Namespace
         ) -> list[Sample]:
    start = time.monotonic()
    samples: list[Sample] = []
    while time.monotonic() - start < args.warmup + args.minutes * 60:
        time.sleep(args.sample)
        trees = {name: tree_usage(p.pid) for name, p in roots.items()}
        entries = len(ns.conntrack_text().splitlines())
        for name, p in roots.items():
            with contextlib.suppress(psutil.Error):
                last_parts[name] = by_process(p.pid)
        without = {name: (u.pss or 0) - sum(pss for what, pss in last_parts.get(name, ())
                                             if what == PIPE_CHILD)
                   for name, u in trees.items()}
        samples.append(Sample(time.monotonic() - start, trees, entries, without))
        print(f"{samples[-1].t:6.0f} s  " + "  ".join(
            f"{n} {u.pss / 2**20 if u.pss else 0:.1f} MiB ({u.processes} proc)"
            for n, u in trees.items()) + f"  conntrack {entries}", flush=True)
    return samples


def report(samples: list[Sample], args: argparse.Namespace) -> None:
    kept = [s for s in samples if s.t >= args.warmup] or samples
    minutes = (kept[-1].t - kept[0].t) / 60
    print(f"\n{args.warmup:g} s warm-up, then {minutes:.1f} min sampled every {args.sample:g} s;"
          f" conntrack entries {min(s.entries for s in kept):,}–"
          f"{max(s.entries for s in kept):,}; load average {os.getloadavg()[0]:.1f}\n")
    print("| monitor | processes | PSS first MiB | PSS last MiB | PSS largest MiB | "
          "without pipe child: first | last | largest | RSS last MiB | CPU s per minute |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in kept[0].trees:
        first, last = kept[0].trees[name], kept[-1].trees[name]
        pss = [s.trees[name].pss or 0 for s in kept]
        bare = [s.without_pipes[name] / 2**20 for s in kept]
        cpu = (last.cpu_seconds - first.cpu_seconds) / minutes if minutes else 0.0
        apart = (f"{bare[0]:.1f} | {bare[-1]:.1f} | {max(bare):.1f}"
                 if name != "nethogs" else "– | – | –")
        print(f"| {name} | {last.processes} | {pss[0] / 2**20:.1f} | {pss[-1] / 2**20:.1f} | "
              f"{max(pss) / 2**20:.1f} | {apart} | {last.rss / 2**20:.1f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
