"""Benchmark: CPU of the ticks that retry unowned flows, on a table where most flows have none.

    python3 bench/bench_retry.py [--size 50000] [--unowned 0.9] [--ticks 16]

The fixture of bench_tick.py (Tree), with `--unowned` of the flows' sockets listed without an
inode and held by no process (closed sockets, TIME_WAIT): those flows stay unattributed and
bwmon retries them every RETRY_TICKS ticks, at most MAX_RETRIES times. 1 % of the flows move
bytes each tick. Prints the CPU of each retry tick and the median of the other ticks (after
two warm-up ticks); run it on two checkouts for an A/B.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_tick import FIRST_PID, Tree, engine_for  # noqa: E402

from bwmon.core.attribution.owner_cache import RETRY_TICKS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--size", type=int, default=50_000)
    ap.add_argument("--unowned", type=float, default=0.9)
    ap.add_argument("--ticks", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bwmon-bench-retry-") as tmp:
        root = Path(tmp)
        tree = Tree(root, args.size, 200)
        every = round(1 / (1 - args.unowned)) if args.unowned < 1 else 0
        for i, flow in enumerate(tree.flows):
            if (every == 0 or i % every) and ("tcp" in flow[0] or "udp" in flow[0]):
                pid = FIRST_PID + tree.inodes[i] % tree.procs
                (root / str(pid) / "fd" / str(tree.inodes[i])).unlink(missing_ok=True)
                tree.inodes[i] = 0
        tree.write_sockets()
        engine = engine_for(root)
        loop = asyncio.new_event_loop()
        retry: list[float] = []
        other: list[float] = []
        for tick in range(1, args.ticks + 1):
            tree.write_table(tick, 0.01)
            t0 = time.process_time()
            loop.run_until_complete(engine.tick())
            ms = (time.process_time() - t0) * 1000
            if tick > 2:
                (retry if tick % RETRY_TICKS == 0 else other).append(ms)
        loop.close()
    print(f"{args.size} entries, {args.unowned:.0%} unowned: retry ticks "
          f"{', '.join(f'{ms:.0f}' for ms in retry)} ms; other ticks median "
          f"{statistics.median(other):.0f} ms")


if __name__ == "__main__":
    main()
