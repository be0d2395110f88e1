"""What grows under churn: the engine in-process with tracemalloc, under the soak's workload.

    python3 bench/soak_trace.py [--minutes 12] [--every 60] [--linger 120] [--rate 28]
    python3 bench/soak_trace.py --no-trace --variants trim trim,arena=1 trim,memory=60

Runs bench_soak's workload (sink + churning clients in a private namespace) and, inside that
namespace, an Engine (plus the history a TUI reads) with `tracemalloc` on. Every `--every`
seconds it prints RSS (self and children), the traced total, the size of every long-lived
container, and the allocation sites (file:line) that grew most since the first report.
`--linger` shortens the row linger (and so the 10 × linger forgetting horizon) to reach the
steady state sooner. `--variants` runs one engine per spec side by side under the same
workload (an A/B in one run); a spec is comma-separated levers: `trim` (heap trim every 30 s,
or `trim=SECONDS`), `tune` (bwmon's start-up malloc settings, runtime.heap.tune), `arena=N`
and `mmap=BYTES` (glibc's MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_), `lazyssl` (ssl loaded on
first use), `memory=TICKS` (owner memory horizon), `ctprune` (the conntrack parser's reuse
dicts pruned to a table's worth of slack), `gc` (a full collection every 30 s), `pymalloc=off`
(PYTHONMALLOC=malloc). Root only; everything is removed at the end.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
if os.environ.get("SOAK_LAZYSSL"):  # before asyncio is imported, as bwmon's start-up does it
    from bwmon.core.runtime.startup import defer_ssl

    defer_ssl()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections import Counter  # noqa: E402
from typing import Any  # noqa: E402

import psutil  # noqa: E402


def _sizes(engine: Any) -> dict[str, int]:
    """len() of every long-lived container of the engine and its parts."""
    acc, att, fl, pt = engine.accounting, engine.attributor, engine.flows, engine.procs
    cache = att.cache
    parser = getattr(engine.conntrack, "_parser", None)
    return {
        "flows._seen": len(fl._seen), "flows._vanished": len(fl._vanished),
        "flows._tombstones": len(fl._tombstones),
        "att._memory": len(att._memory), "cache._flows": len(cache._flows),
        "cache._by_owner": len(cache._by_owner), "cache._ports": len(cache._ports),
        "cache._unowned": len(cache._unowned), "cache.dead": len(cache.dead),
        "acc._procs": len(acc._procs), "acc._apps": len(acc._apps),
        "acc._ends": len(acc._ends), "acc._info": len(acc._info),
        "acc._shown": len(acc._shown), "acc._open": len(acc._open),
        "acc._conns._ends": sum(len(v) for v in acc._conns._ends.values()),
        "procs._pids": len(pt._pids), "procs._owner": len(pt._owner),
        "procs._info": len(pt._info), "procs._unfound": len(pt._unfound),
        "history": sum(len(s) for s in engine.history._series.values()),
        "history.rows": len(engine.history._series),
        "log": len(engine.log._events),
        **{f"parser.{k}": len(getattr(parser, k, ()))
           for k in ("_entries", "_flows", "_tuples")},
    }


async def inner(args: argparse.Namespace) -> None:
    """Inside the namespace: the engine with tracemalloc, reporting every `--every` s."""
    from bwmon.core import accounting
    from bwmon.core.config.settings import Settings
    from bwmon.core.engine import Engine

    accounting.LINGER_SECONDS = args.linger
    if args.trace:
        tracemalloc.start(args.frames)
    if args.tune:
        from bwmon.core.runtime.heap import tune

        tune()
    if args.ctprune:
        _prune_parser_caches()
    engine = Engine(Settings())
    engine.accounting.linger = args.linger
    if args.memory is not None:
        engine.attributor.memory_ticks = args.memory
    me = psutil.Process()
    task = asyncio.create_task(engine.run())
    helpers: list[asyncio.Task[None]] = []  # held: the loop keeps only weak references
    if args.trim:
        from bwmon.core.runtime.heap import trim_forever

        helpers.append(asyncio.create_task(trim_forever(args.trim_every)))
    if args.collect:
        helpers.append(asyncio.create_task(_collect_forever()))
    start = time.monotonic()
    base: tracemalloc.Snapshot | None = None
    base_types: Counter[str] | None = None
    filters = [tracemalloc.Filter(False, tracemalloc.__file__),
               tracemalloc.Filter(False, "<frozen importlib._bootstrap*>")]
    while time.monotonic() - start < args.minutes * 60:
        await asyncio.sleep(args.every)
        el = time.monotonic() - start
        kids = sum(c.memory_info().rss for c in me.children(recursive=True))
        cur, _ = tracemalloc.get_traced_memory()
        print(f"\n=== {args.label} {el:5.0f} s  rss {me.memory_info().rss / 2**20:.1f} MiB  "
              f"children {kids / 2**20:.1f} MiB  traced {cur / 2**20:.1f} MiB  "
              f"ticks {engine.tick_count}  blocks {sys.getallocatedblocks()}",
              flush=True)
        print("  " + "  ".join(f"{k}={v}" for k, v in _sizes(engine).items()), flush=True)
        if args.types:
            types = Counter(type(o).__qualname__ for o in gc.get_objects())
            if base_types is None:
                base_types = types
            else:
                grew = sorted(((n - base_types.get(t, 0), t) for t, n in types.items()),
                              reverse=True)[: args.top]
                print("  grew: " + "  ".join(f"{t}{d:+d}" for d, t in grew if d), flush=True)
        if not args.trace:
            continue
        snap = tracemalloc.take_snapshot().filter_traces(filters)
        if base is None and el >= args.base:
            base = snap
            continue
        if base is not None:
            print("  largest now:", flush=True)
            for st in snap.statistics("lineno")[: args.top]:
                print(f"  {st.size / 1024:9.1f} KiB {st.count:7d}  "
                      f"{st.traceback[0].filename.replace(str(REPO) + '/', '')}:"
                      f"{st.traceback[0].lineno}", flush=True)
            print("  grew since the baseline:", flush=True)
            for stat in snap.compare_to(base, "lineno")[: args.top]:
                print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d}  "
                      f"{stat.traceback[0].filename.replace(str(REPO) + '/', '')}:"
                      f"{stat.traceback[0].lineno}", flush=True)
    engine.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 10)


async def _collect_forever(interval: float = 30.0) -> None:
    """The `gc` lever: a full collection every `interval` s, with what it found."""
    while True:
        await asyncio.sleep(interval)
        t0 = time.perf_counter()
        found = gc.collect()
        print(f"  [gc] {found} unreachable, {(time.perf_counter() - t0) * 1000:.0f} ms",
              flush=True)


def _prune_parser_caches() -> None:
    """The `ctprune` lever: ConntrackParser's reuse dicts forget gone flows' lines sooner
    (a table's worth of slack instead of 1-3 tables plus 4,096 before they are cleared)."""
    from bwmon.core.sources.conntrack_parse import ConntrackParser

    parse = ConntrackParser.parse

    def pruned(self: ConntrackParser, text: str) -> list[Any]:
        out = parse(self, text)
        n = len(self._entries)
        if len(self._flows) > n + 512:
            self._flows.clear()
        if len(self._tuples) > 2 * n + 1024:
            self._tuples.clear()
        return out

    ConntrackParser.parse = pruned  # type: ignore[method-assign]


def _variant(spec: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The inner process's extra flags and environment for one `--variants` spec."""
    flags, env = ["--no-trace", "--label", spec], dict(env)
    for lever in spec.split(","):
        name, _, value = lever.partition("=")
        if name == "trim":
            flags += ["--trim", "--trim-every", value or "30"]
        elif name == "tune":
            flags.append("--tune")
        elif name == "ctprune":
            flags.append("--ctprune")
        elif name == "gc":
            flags.append("--collect")
        elif name == "memory":
            flags += ["--memory", value]
        elif name == "arena":
            env["MALLOC_ARENA_MAX"] = value
        elif name == "mmap":
            env["MALLOC_MMAP_THRESHOLD_"] = value
        elif name == "lazyssl":
            env["SOAK_LAZYSSL"] = "1"
        elif name == "pymalloc" and value == "off":
            env["PYTHONMALLOC"] = "malloc"
        elif name != "plain":
            raise SystemExit(f"unknown lever {lever!r} in {spec!r}")
    return flags, env


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--every", type=float, default=60.0)
    ap.add_argument("--base", type=float, default=120.0, help="seconds before the baseline")
    ap.add_argument("--linger", type=float, default=120.0)
    ap.add_argument("--rate", type=float, default=28.0,
                    help="new TCP connections a second, in all (bench_soak's paced churn)")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--frames", type=int, default=1)
    ap.add_argument("--no-trace", dest="trace", action="store_false",
                    help="no tracemalloc (RSS as a real run has it)")
    ap.add_argument("--ab", action="store_true",
                    help="two engines, untraced, one trimming the heap (= --variants plain trim)")
    ap.add_argument("--variants", nargs="+", metavar="SPEC",
                    help="one engine per SPEC, side by side (levers: see the docstring)")
    ap.add_argument("--memory", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--tune", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--ctprune", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--collect", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--types", action="store_true",
                    help="also count the gc-tracked objects by type and print what grew")
    ap.add_argument("--trim", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--trim-every", type=float, default=30.0, help=argparse.SUPPRESS)
    ap.add_argument("--label", default="", help=argparse.SUPPRESS)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        asyncio.run(inner(args))
        return
    from bench_soak import PY, TRAFFIC, churn
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up when stopped

    from tests.helpers.netns import NetNS

    with NetNS(prefix="bwtrace") as ns:
        procs: list[subprocess.Popen[bytes]] = [
            ns.popen([PY, TRAFFIC, "sink", "--port", "7001", "--reply", "20000"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        try:
            time.sleep(1)
            procs.append(churn(ns, args.rate))
            env = dict(os.environ, PYTHONPATH=str(REPO), BWMON_GENERAL__INTERVAL="1")
            specs = ["plain", "trim"] if args.ab else args.variants or []
            runs = [_variant(spec, env) for spec in specs] or [([], env)]
            subs = [ns.popen([PY, __file__, "--inner", *sys.argv[1:], *v], env=e, cwd=REPO)
                    for v, e in runs]
            for sub in subs:
                sub.wait()
        finally:
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()


if __name__ == "__main__":
    main()
