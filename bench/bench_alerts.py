"""Alert evaluation cost per tick (best of 3), as a ratio to serialising the snapshot for --json.

  python3 bench/bench_alerts.py [--apps 200] [--rules 5] [--window 60] [--ticks 300]

Every rule matches every app (the worst case: one state per (rule, app) pair, a full window of
samples each). Also times scheduling 50 notifications (the synchronous part a tick pays).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable

from bwmon.core.alerts.monitor import AlertMonitor
from bwmon.core.alerts.rules import AlertState, evaluate
from bwmon.core.config.settings import AlertSettings, NotifySettings
from bwmon.core.eventlog import EventLog
from bwmon.core.jsonify import snapshot_json
from bwmon.core.model import (
    AppRow,
    HostTotals,
    ProcessInfo,
    ProcKey,
    RowKind,
    Snapshot,
    Totals,
    Unit,
)


def snapshots(apps: int, ticks: int) -> list[Snapshot]:
    out = []
    for t in range(ticks):
        rows = tuple(
            AppRow(f"app{i}", RowKind.APP, Unit.IP, float((i * 7919 + t * 104729) % 200_000),
                   float((i * 31 + t) % 50_000), t * 1000, t * 100, flows=3,
                   processes=(ProcessInfo(ProcKey(1000 + i, 1), f"app{i}",
                                          f"/usr/bin/app{i} --serve port={i}", "root", 0),))
            for i in range(apps)
        )
        out.append(Snapshot(t, 1e9 + t, 0.0 if t == 0 else 1.0, rows, (), HostTotals(), Totals()))
    return out


def best_of(n: int, work: Callable[[], None]) -> float:
    """Least wall time of `n` runs (the machine is shared: the minimum is the least disturbed)."""
    times = []
    for _ in range(n):
        begin = time.perf_counter()
        work()
        times.append(time.perf_counter() - begin)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--apps", type=int, default=200)
    p.add_argument("--rules", type=int, default=5)
    p.add_argument("--window", type=float, default=60)
    p.add_argument("--ticks", type=int, default=300)
    a = p.parse_args()
    rules = [AlertSettings(name=f"r{k}", match=r"app\d", in_threshold=100 + k, out_threshold=30,
                           window=a.window, cooldown=30) for k in range(a.rules)]
    snaps = snapshots(a.apps, a.ticks)

    def json_pass() -> None:
        for s in snaps:
            json.dumps(snapshot_json(s), separators=(",", ":"))

    events = 0

    def alert_pass() -> None:
        nonlocal events
        state, events = AlertState(), 0
        for s in snaps:
            state, ev = evaluate(rules, state, s)
            events += len(ev)

    baseline = best_of(3, json_pass)
    alerts = best_of(3, alert_pass)

    async def burst() -> float:
        rule = AlertSettings(name="b", match=".", in_threshold=1, command=["true"])
        monitor = AlertMonitor([rule], NotifySettings(), EventLog(capacity=1000))
        rows = tuple(AppRow(f"a{i}", RowKind.APP, Unit.IP, 1e6, 0, 0, 0) for i in range(50))
        monitor.on_snapshot(Snapshot(0, 1e9, 0.0, rows, (), HostTotals(), Totals()))
        begin = time.perf_counter()
        monitor.on_snapshot(Snapshot(1, 1e9 + 1, 1.0, rows, (), HostTotals(), Totals()))
        took = time.perf_counter() - begin
        await monitor.close()
        return took

    schedule = asyncio.run(burst())
    per_tick_json = baseline / len(snaps) * 1e3
    per_tick_alerts = alerts / len(snaps) * 1e3
    print(f"apps={a.apps} rules={a.rules} window={a.window:g}s ticks={a.ticks} events={events}")
    print(f"json baseline   {per_tick_json:8.3f} ms/tick  1.00")
    print(f"alert evaluate  {per_tick_alerts:8.3f} ms/tick  {per_tick_alerts / per_tick_json:.2f}")
    print(f"50 alerts: on_snapshot incl. scheduling {schedule * 1e3:.3f} ms "
          f"({schedule * 1e3 / per_tick_json:.2f} x json baseline)")


if __name__ == "__main__":
    main()
