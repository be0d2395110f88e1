"""What grows in the TUI itself: the --demo app headless, with tracemalloc, no engine at all.

    python3 bench/tui_trace.py [--minutes 6] [--every 60] [--rows 12] [--top 20]

Runs `bwmon-tui --demo ROWS` (made-up snapshots at 1 s) headless at 120×40 and every
`--every` seconds prints RSS, the traced total and the allocation sites (file:line) that grew
most since the first report. Needs no root: it measures Textual and the widgets alone.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tracemalloc
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


async def main(args: argparse.Namespace) -> None:
    from bwmon.core.config import Settings
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
    ap.add_argument("--textual-caches", action="store_true",
                    help="leave DataTable's render caches at Textual's sizes (the baseline)")
    asyncio.run(main(ap.parse_args()))
