"""Terminal output and CPU of bwmon-tui per tick, with N active rows, in a real pseudo-terminal.

  python3 bench/bench_tui.py [--rows 50] [--size 120x40] [--seconds 20] [--interval 1]
                             [--env COLORTERM=truecolor]

Runs `bwmon-tui --demo ROWS` (every row's rates change every tick), the same with
BWMON_TUI_DIFF=0 (Textual's own output, no diff layer) and, as the baseline, a naive Textual
app that shows the same rows by clearing and refilling a DataTable each tick.
Both run in a pty of the given size; after a warm-up, it counts the bytes each writes to the
terminal and the CPU time each uses, and prints bytes/s, CPU ms per tick and the ratios.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers.terminal import PtyApp  # noqa: E402


def naive_child(rows: int, interval: float) -> None:
    """The baseline: rebuild the whole table every tick (what in-place updates avoid)."""
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    from bwmon.tui.demo import demo_snapshot
    from bwmon.tui.format import human_bytes

    class Naive(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable(cursor_type="row")

        def on_mount(self) -> None:
            self.tick = 0
            table = self.query_one(DataTable)
            table.add_columns("App", "In/s", "Out/s", "Tot in", "Tot out", "Proc", "Conn")
            self.refill()
            self.set_interval(interval, self.refill)
            self.bind("q", "quit")

        def refill(self) -> None:
            snap = demo_snapshot(self.tick, rows, interval=interval)
            self.tick += 1
            table = self.query_one(DataTable)
            table.clear()
            for a in sorted(snap.apps, key=lambda a: -a.rate_in):
                table.add_row(a.name, human_bytes(a.rate_in), human_bytes(a.rate_out),
                              human_bytes(a.total_in), human_bytes(a.total_out),
                              str(len(a.processes)), str(a.flows))

    Naive().run()


def measure(command: list[str], size: tuple[int, int], warmup: float, seconds: float,
            interval: float, env: dict[str, str]) -> tuple[float, float]:
    """(bytes written per second, CPU milliseconds per tick) of one run."""
    app = PtyApp([], size=size, env=env, command=command)
    try:
        if not app.wait_for(b"firefox", timeout=60):
            raise SystemExit(f"no picture from {command}: {bytes(app.output[-500:])!r}")
        app.read_for(warmup)
        proc = psutil.Process(app.proc.pid)
        cpu0 = sum(proc.cpu_times()[:2])
        t0 = time.monotonic()
        written = app.read_for(seconds)
        elapsed = time.monotonic() - t0
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        return written / elapsed, cpu * 1000 / (elapsed / interval)
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--size", default="120x40")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for all three, e.g. COLORTERM=truecolor")
    parser.add_argument("--naive-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_child:
        naive_child(args.rows, args.interval)
        return
    cols, lines = (int(x) for x in args.size.split("x"))
    size = (cols, lines)
    env = {"BWMON_GENERAL__INTERVAL": str(args.interval),
           **dict(item.split("=", 1) for item in args.env)}
    ours_cmd = [sys.executable, "-m", "bwmon.tui.main", "--demo", str(args.rows)]
    base_cmd = [sys.executable, str(Path(__file__).resolve()), "--naive-child",
                "--rows", str(args.rows), "--interval", str(args.interval)]
    ours = measure(ours_cmd, size, args.warmup, args.seconds, args.interval, env)
    plain = measure(ours_cmd, size, args.warmup, args.seconds, args.interval,
                    {**env, "BWMON_TUI_DIFF": "0"})
    base = measure(base_cmd, size, args.warmup, args.seconds, args.interval,
                   {**env, "BWMON_TUI_DIFF": "0"})
    print(f"rows={args.rows} size={args.size} interval={args.interval}s "
          f"window={args.seconds}s (after {args.warmup}s warm-up) env={args.env}")
    print(f"{'':26}{'bytes/s':>10}{'CPU ms/tick':>14}")
    print(f"{'bwmon-tui (diff output)':30}{ours[0]:>10.0f}{ours[1]:>14.1f}")
    print(f"{'bwmon-tui BWMON_TUI_DIFF=0':30}{plain[0]:>10.0f}{plain[1]:>14.1f}")
    print(f"{'naive rebuild baseline':30}{base[0]:>10.0f}{base[1]:>14.1f}")
    print(f"{'ratio bwmon-tui/baseline':30}{ours[0] / base[0]:>10.2f}{ours[1] / base[1]:>14.2f}")
    print(f"{'ratio diff/BWMON_TUI_DIFF=0':30}{ours[0] / plain[0]:>10.2f}"
          f"{ours[1] / plain[1]:>14.2f}")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
