"""Soak: RSS of `bwmon run` and `bwmon-tui` over a long run of connection churn (root only).

    python3 bench/bench_soak.py [--warmup 60] [--minutes 30] [--sample 10] [--rate 28]

In a private network namespace: a sink, and the paced churn of bench/soak_churn.py: `--rate`
short TCP connections a second in all (and a quarter as many UDP exchanges) with new source
ports, at deadlines on the wall clock so the rate — and the conntrack table — holds whatever
the machine's load, from two new client processes every 5 s (owners come and go).
`bwmon run` (output thrown away) and `bwmon-tui` (in tmux at 120×40) both monitor that
namespace. Every `--sample` seconds the resident set size of both, and of their children
(discovery worker, bpftrace, conntrack), is recorded with the table's size. The run lasts
`--warmup` seconds plus `--minutes` measured minutes; the report gives the first sample after
the warm-up, the last, the range, 5-minute means with the table's mean size and RSS per
entry, and a least-squares fit of RSS against table size and time. Everything is
removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers.netns import NetNS  # noqa: E402

TRAFFIC = str(REPO / "tests" / "helpers" / "traffic.py")
CHURN = str(REPO / "bench" / "soak_churn.py")
PY = sys.executable


def _find(pattern: str, after: float, timeout: float = 30.0) -> psutil.Process:
    """The newest python process whose command line contains `pattern`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for p in psutil.process_iter(["cmdline", "create_time"]):
            cmd = " ".join(p.info["cmdline"] or ())
            if pattern in cmd and "ip netns exec" not in cmd and p.info["create_time"] >= after \
                    and "tmux" not in cmd:
                return p
        time.sleep(0.5)
    raise SystemExit(f"no process matching {pattern!r} appeared")


class Sample(NamedTuple):
    """One sample: RSS of each monitor and of its children (discovery worker, bpftrace, …)."""

    t: float
    run: int
    run_children: int
    tui: int
    tui_children: int
    conntrack: int
    load: float


def _rss(p: psutil.Process) -> tuple[int, int]:
    """RSS of a process, and the sum over its descendants (those that exit meanwhile skipped)."""
    kids = 0
    for c in p.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            kids += c.memory_info().rss
    return p.memory_info().rss, kids


def churn(ns: NetNS, rate: float) -> subprocess.Popen[bytes]:
    """The paced churn (bench/soak_churn.py): `rate` TCP connections a second in all, a
    quarter as many UDP exchanges, two new client processes every 5 s of wall time."""
    return ns.popen([PY, CHURN, "churn", "--port", "7001", "--rate", str(rate)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# The monitors with ConntrackParser's reuse dicts pruned to a table's worth of slack (the
# `ctprune` lever of bench/soak_trace.py: a proposed change in conntrack.py), nothing imported
# beyond what the monitors import anyway.
_PATCHED = """import sys
from bwmon.core.runtime.startup import prepare
prepare()
from bwmon.core.sources.conntrack_parse import ConntrackParser
_parse = ConntrackParser.parse
def _pruned(self, text):
    out = _parse(self, text)
    n = len(self._entries)
    if len(self._flows) > n + 512:
        self._flows.clear()
    if len(self._tuples) > 2 * n + 1024:
        self._tuples.clear()
    return out
ConntrackParser.parse = _pruned
from {module} import main
sys.exit(main({argv}))
"""


def _monitors(ctprune: bool) -> tuple[list[str], list[str]]:
    """Command lines of `bwmon run` and `bwmon-tui` (patched with `--ctprune`)."""
    if not ctprune:
        return [PY, "-m", "bwmon", "run"], [PY, "-m", "bwmon.tui.main"]
    return ([PY, "-c", _PATCHED.format(module="bwmon.cli", argv="['run']")],
            [PY, "-c", _PATCHED.format(module="bwmon.tui.main", argv="[]")])


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--sample", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=28.0,
                    help="new TCP connections a second, in all, paced to the wall clock")
    ap.add_argument("--out", type=Path, help="also write the samples here (CSV)")
    ap.add_argument("--ctprune", action="store_true",
                    help="monitors with the conntrack parser's reuse dicts cleared at a "
                    "table's worth (the A/B of session 3; ConntrackParser now forgets gone "
                    "flows' lines itself, so this only adds the cruder clear on top)")
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("tmux") is None:
        raise SystemExit("needs root and tmux")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up when stopped
    sock = f"bwmon-soak-{os.getpid()}"
    with NetNS(prefix="bwsoak") as ns:
        procs: list[subprocess.Popen[bytes]] = [
            ns.popen([PY, TRAFFIC, "sink", "--port", "7001", "--reply", "20000"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        env = dict(os.environ, PYTHONPATH=str(REPO), BWMON_GENERAL__INTERVAL="1")
        try:
            time.sleep(1)
            procs.append(churn(ns, args.rate))
            t0 = time.time()
            run_argv, tui_argv = _monitors(args.ctprune)
            procs.append(ns.popen(run_argv, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, env=env, cwd=REPO))
            run = _find("-m bwmon run" if not args.ctprune else "main(['run'])", t0 - 1)
            subprocess.run(["tmux", "-L", sock, "new-session", "-d", "-x", "120", "-y", "40",
                            "-e", f"PYTHONPATH={REPO}", *ns.argv(*tui_argv)],
                           check=True, cwd=REPO)
            tui = _find("bwmon.tui.main", t0 - 1)
            start = time.monotonic()
            samples: list[Sample] = []
            while time.monotonic() - start < args.warmup + args.minutes * 60:
                time.sleep(args.sample)
                el = time.monotonic() - start
                flows = len(ns.conntrack_text().splitlines())
                (r, rk), (u, uk) = _rss(run), _rss(tui)
                samples.append(Sample(el, r, rk, u, uk, flows, os.getloadavg()[0]))
                print(f"{el:7.0f} s  run {r / 2**20:6.1f} MiB (+children {rk / 2**20:6.1f})  "
                      f"tui {u / 2**20:6.1f} MiB (+children {uk / 2**20:6.1f})  conntrack "
                      f"{flows}  load {samples[-1].load:.1f}", flush=True)
            report(samples, args)
        finally:
            subprocess.run(["tmux", "-L", sock, "kill-server"], check=False,
                           stderr=subprocess.DEVNULL)
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()


def report(samples: list[Sample], args: argparse.Namespace) -> None:
    if args.out:
        args.out.write_text(",".join(Sample._fields) + "\n" + "".join(
            ",".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in s) + "\n"
            for s in samples))
    kept = [s for s in samples if s.t >= args.warmup] or samples
    print(f"\n{args.warmup:g} s + {args.minutes:g} min of churn, RSS sampled every "
          f"{args.sample:g} s; first sample at {kept[0].t:.0f} s (after {args.warmup:g} s "
          f"warm-up); conntrack entries "
          f"{min(s.conntrack for s in kept)}–{max(s.conntrack for s in kept)}; load average "
          f"{min(s.load for s in kept):.1f}–{max(s.load for s in kept):.1f}\n")
    print("| process | first MiB | last MiB | min–max MiB | growth first→last | "
          "5-min means, first → last |")
    print("|---|---:|---:|---:|---:|---:|")
    for i, name in ((1, "bwmon run"), (2, "  its children"), (3, "bwmon-tui"),
                    (4, "  its children")):
        first, last = kept[0][i], kept[-1][i]
        low, top = min(s[i] for s in kept), max(s[i] for s in kept)
        means = window_means(kept, i, args.warmup)
        print(f"| {name} | {first / 2**20:.1f} | {last / 2**20:.1f} | {low / 2**20:.1f}–"
              f"{top / 2**20:.1f} | {(last - first) / first:+.1%} | {means[0] / 2**20:.1f} → "
              f"{means[-1] / 2**20:.1f} ({(means[-1] - means[0]) / means[0]:+.1%}) |")
    runs, tuis, ents = (window_means(kept, i, args.warmup) for i in (1, 3, 5))
    print("\n| 5-min window | bwmon run MiB | bwmon-tui MiB | conntrack entries | run KiB/entry "
          "| tui KiB/entry |")
    print("|---:|---:|---:|---:|---:|---:|")
    for w, (r, u, c) in enumerate(zip(runs, tuis, ents, strict=True)):
        print(f"| {w * 5}–{w * 5 + 5} min | {r / 2**20:.1f} | {u / 2**20:.1f} | {c:,.0f} | "
              f"{r / 1024 / c:.1f} | {u / 1024 / c:.1f} |")
    span = (kept[-1].t - kept[0].t) / 60
    print(f"\nLeast squares over the {len(kept)} samples, RSS = a + b × entries + c × time "
          "(growth with the table told from growth with time):")
    for i, name in ((1, "bwmon run"), (3, "bwmon-tui")):
        b, c = fit(kept, i)
        mean = sum(s[i] for s in kept) / len(kept)
        print(f"  {name}: b = {b / 1024:+.2f} KiB per entry, c = {c * 60 * span / 2**20:+.2f} "
              f"MiB over {span:.0f} min ({c * 60 * span / mean:+.1%} of its mean)")


def fit(kept: list[Sample], field: int) -> tuple[float, float]:
    """Least-squares b, c of RSS = a + b·entries + c·seconds (0, 0 when degenerate)."""
    n = len(kept)
    xs = [s.conntrack - sum(k.conntrack for k in kept) / n for s in kept]
    ts = [s.t - sum(k.t for k in kept) / n for s in kept]
    ys = [s[field] - sum(k[field] for k in kept) / n for s in kept]
    sxx = sum(x * x for x in xs)
    stt = sum(t * t for t in ts)
    sxt = sum(x * t for x, t in zip(xs, ts, strict=True))
    sxy = sum(x * y for x, y in zip(xs, ys, strict=True))
    sty = sum(t * y for t, y in zip(ts, ys, strict=True))
    det = sxx * stt - sxt * sxt
    if det == 0:
        return 0.0, 0.0
    return (sxy * stt - sty * sxt) / det, (sty * sxx - sxy * sxt) / det


def window_means(kept: list[Sample], field: int, start: float,
                 window: float = 300.0) -> list[float]:
    """Mean of one field per `window` seconds of the measured part (a stray last sample or
    partial window joins the one before)."""
    last = max(0, int((kept[-1].t - start) // window) - 1)
    groups: dict[int, list[float]] = {}
    for s in kept:
        groups.setdefault(min(last, int((s.t - start) // window)), []).append(float(s[field]))
    return [sum(v) / len(v) for _, v in sorted(groups.items())]


if __name__ == "__main__":
    main()
