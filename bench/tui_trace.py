"""What grows in the TUI itself: the --demo app headless, with tracemalloc, no engine at all.

    python3 bench/tui_trace.py [--minutes 6] [--every 60] [--rows 12] [--top 20]

Runs `bwmon-tui --demo ROWS` (made-up snapshots at 1 s) headless at 120×40 and every
`--every` seconds prints RSS, the traced total and the allocation sites (file:line) that grew
most since the first report. Needs no root: it measures Textual and the widgets alone.
bwmon-tui's start-up (bwmon.core.runtime.startup.prepare) runs first unless `--no-prepare`.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
if "--no-prepare" not in sys.argv:  # as bwmon-tui starts: before asyncio is imported
    from bwmon.core.runtime.startup import prepare

    prepare()

import argparse  # noqa: E402
import asyncio  # noqa: E402
import tracemalloc  # noqa: E402

import psutil  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    from bwmon.core.config.settings import Settings
    from bwmon.tui.main import demo_app

    if args.trace:
        tracemalloc.start(args.frames)
    if args.textual_caches:  # the baseline: DataTable's render caches at Textual's sizes
        from bwmon.tui import app_table

        app_table._shrink_render_caches = lambda table: None
    app = demo_app(Settings(), args.rows)
    me = psutil.Process()
    base: tracemalloc.Snapshot | None = None
    async with app.run_test(size=(120, 40)):
        for n in range(int(args.minutes * 60 / args.every)):
            await asyncio.sleep(args.every)
            cur, _ = tracemalloc.get_traced_memory()
            print(f"=== {(n + 1) * args.every:5.0f} s  rss {me.memory_info().rss / 2**20:.1f} MiB"
                  f"  traced {cur / 2**20:.1f} MiB  blocks {sys.getallocatedblocks()}",
                  flush=True)
            if args.collect:  # what a full collection (and a heap trim) would give back now
                import gc
                import time

                from bwmon.core.runtime import heap

                t0 = time.perf_counter()
                found = gc.collect()
                took = time.perf_counter() - t0
                heap.trim()
                print(f"      gc.collect(): {found} unreachable in {took * 1000:.0f} ms; rss "
                      f"after it and a trim {me.memory_info().rss / 2**20:.1f} MiB", flush=True)
            if not args.trace:
                continue
            snap = tracemalloc.take_snapshot()
            if base is None:
                base = snap
                continue
            for stat in snap.compare_to(base, "lineno")[: args.top]:
                frame = stat.traceback[0]
                print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d}  "
                      f"{frame.filename}:{frame.lineno}", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--every", type=float, default=60.0)
    ap.add_argument("--rows", type=int, default=12)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--frames", type=int, default=1)
    ap.add_argument("--no-trace", dest="trace", action="store_false")
    ap.add_argument("--collect", action="store_true",
                    help="at each report, a full gc.collect() and a heap trim (their effect)")
    ap.add_argument("--no-prepare", action="store_true",
                    help="skip bwmon-tui's start-up settings (ssl on use, malloc arenas)")
    ap.add_argument("--textual-caches", action="store_true",
                    help="leave DataTable's render caches at Textual's sizes (the baseline)")
    asyncio.run(main(ap.parse_args()))
