"""What the history store costs: a write per flush, report queries over a year, file size.

  PYTHONPATH=. python3 bench/bench_history.py [--apps 200] [--places 0] [--flushes 30]
                                              [--repeat 15]

Builds a store as it stands after a year of recording `--apps` apps that all move bytes every
minute (the worst case): 48 h of minutes, 60 days of hours and a year of days, written through
the real writer (older periods one row per app and hour or day, then rolled up). Then measures:
the tick-side cost (one snapshot's rows added to the tally), the writer thread's cost of one
flush (one minute of every app into minutes, hours and days, one transaction), a roll-up, and
the report queries (`top` per month, per day and per month over the year, top over 48 h). The
baseline for the queries is the same question asked of per-minute rows only (no roll-ups,
what a store without them holds), over the 48 h that such rows exist here, scaled per day.
`--places K` puts each app's processes in K containers, all moving bytes every minute, so the
store holds K keys per app (0: no container or unit, one key per app); the tick's snapshot
then has one process per app and container, and the top-N queries group by container.
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from bwmon.core.model import (
    AppRow,
    HostTotals,
    ProcessInfo,
    ProcessRow,
    ProcKey,
    RowKind,
    Snapshot,
    Totals,
    Unit,
)
from bwmon.core.store import calendar, queries
from bwmon.core.store.retention import Retention, roll_up
from bwmon.core.store.tally import AppKey, MinuteBytes, MinuteTally
from bwmon.core.store.writer import StoreWriter

HOUR, DAY = 3600, 86400


def keys_of(apps: int, places: int) -> list[AppKey]:
    if not places:
        return [AppKey(f"app-{i:03d}", "ip") for i in range(apps)]
    return [AppKey(f"app-{i:03d}", "ip", f"box-{i:03d}-{k}") for i in range(apps)
            for k in range(places)]


def snapshot(apps: int, places: int, now: int) -> Snapshot:
    """One tick of every app (and of each app's process in each of its containers)."""
    rows = tuple(AppRow(f"app-{i:03d}", RowKind.APP, Unit.IP, (1000.0 + i) * max(1, places),
                        10.0 * max(1, places), 0, 0) for i in range(apps))
    procs = tuple(
        ProcessRow(ProcessInfo(ProcKey(i * 10 + k + 1, 1), "app", "app", "root", 0, "app",
                               f"box-{i:03d}-{k}"), f"app-{i:03d}", 1000.0 + i, 10.0, 0, 0, 1)
        for i in range(apps) for k in range(places))
    return Snapshot(1, float(now), 1.0, rows, procs, HostTotals(), Totals())


def build(path: Path, apps: int, now: int, seed: int = 1, places: int = 0) -> StoreWriter:
    rng = random.Random(seed)
    keys = keys_of(apps, places)
    writer = StoreWriter(path, Retention())
    writer.open()
    start = calendar.local_midnight(now - 365 * DAY)
    hours_from = now - 61 * DAY
    minutes_from = now - 49 * HOUR

    def rows(t: int) -> list[MinuteBytes]:
        return [MinuteBytes(t, k, rng.randrange(1, 1 << 30), rng.randrange(1, 1 << 26))
                for k in keys]

    t = start
    while t < hours_from:  # the days-only era: one row per app and day
        writer.write(rows(t))
        t = calendar.next_midnight(t)
    while t < minutes_from:  # the hours era: one row per app and hour, a day per write
        batch: list[MinuteBytes] = []
        for _ in range(24):
            if t >= minutes_from:
                break
            batch += rows(t)
            t += HOUR
        writer.write(batch)
    t = t // 60 * 60
    while t < now:  # the minutes era: every minute, one flush per minute
        writer.write(rows(t))
        t += 60
    assert writer.conn is not None
    roll_up(writer.conn, now, Retention())
    writer.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return writer


def timed(fn, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def row(name: str, ms: list[float], note: str = "") -> str:
    return (f"| {name} | {statistics.median(ms):.2f} | {max(ms):.2f} | {len(ms)} | {note} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--apps", type=int, default=200)
    ap.add_argument("--places", type=int, default=0,
                    help="containers per app, each moving bytes every minute (0: none)")
    ap.add_argument("--flushes", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    now = int(time.time()) // 60 * 60
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.sqlite"
        t0 = time.perf_counter()
        writer = build(path, args.apps, now, places=args.places)
        built = time.perf_counter() - t0
        conn = writer.conn
        assert conn is not None
        size = os.path.getsize(path)
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("minutes", "hours", "days")}
        table_bytes = {t: conn.execute("SELECT sum(pgsize) FROM dbstat WHERE name = ?",
                                       (t,)).fetchone()[0]
                       for t in ("minutes", "hours", "days")} if _has_dbstat(conn) else {}
        minutes_bytes = table_bytes.get("minutes")

        # tick side: one 200-app snapshot into the tally
        snap = snapshot(args.apps, args.places, now)
        tally = MinuteTally()
        tick = timed(lambda: tally.add(snap), 200)
        # a flush: one minute of every app (as the recorder hands it over), after `now`
        flush_rows = tally.take()
        minute = [now]

        def one_flush() -> None:
            minute[0] += 60
            writer.write([MinuteBytes(minute[0], r.app, r.bytes_in, r.bytes_out)
                          for r in flush_rows])

        flushes = timed(one_flush, args.flushes)
        rolls = timed(lambda: roll_up(conn, minute[0] + 3600, Retention()), 3)

        by = "container" if args.places else "app"
        queries.top_apps(conn, now - 365 * DAY, now, 10)  # warm the page cache once
        month_tops = []
        m = calendar.month_start(now - 330 * DAY)
        while m < now:
            end = calendar.next_month(m)
            month_tops += timed(lambda m=m, end=end: queries.top_apps(conn, m, end, 10, by=by),
                                3)
            m = end
        year_days = timed(lambda: queries.per_day(conn, now - 365 * DAY, now), args.repeat)
        year_months = timed(lambda: queries.per_month(conn, now - 365 * DAY, now), args.repeat)
        top_48h = timed(lambda: queries.top_apps(conn, now - 47 * HOUR - 1800, now, 10, by=by),
                        args.repeat)
        base_sql = ("SELECT a.name, sum(bytes_in), sum(bytes_out) FROM minutes m JOIN apps a "
                    "ON a.id = m.app WHERE t >= ? AND t < ? GROUP BY a.name "
                    "ORDER BY sum(bytes_in) + sum(bytes_out) DESC LIMIT 10")
        base_day = timed(lambda: conn.execute(base_sql, (now - DAY, now)).fetchall(),
                         args.repeat)
        writer.close()

    keys = len(keys_of(args.apps, args.places))
    print(f"Store after a year at {args.apps} apps, {args.places} container(s) each, {keys} "
          f"keys (built in {built:.0f} s): {size / 1e6:.1f} MB; rows: {counts}")
    print(f"per app-year: {size / args.apps / 1e3:.0f} kB")
    for table, used in table_bytes.items():
        print(f"  {table}: {used / 1e6:.1f} MB, {used / args.apps / 1e3:.1f} kB per app")
    if minutes_bytes:
        per_app_day = minutes_bytes / args.apps / 2
        print(f"baseline, minutes kept for a year: {per_app_day * 365 / 1e6:.1f} MB per app, "
              f"{per_app_day * 365 * args.apps / 1e9:.1f} GB at {args.apps} apps")
    print()
    print("| operation | median ms | max ms | runs | notes |")
    print("|---|---:|---:|---:|---|")
    print(row(f"tick: tally one {args.apps}-app snapshot", tick, "in the event loop"))
    print(row(f"flush: one minute of {args.apps} apps", flushes, "writer thread"))
    print(row("roll-up", rolls, "writer thread, every 10 min"))
    print(row(f"top 10 {by}s of a month", month_tops, "12 months × 3, from days"))
    print(row("per day over a year", year_days, ""))
    print(row("per month over a year", year_months, ""))
    print(row(f"top 10 {by}s over 47.5 h", top_48h, "days + hours + minutes"))
    print(row("baseline: top 10 over 1 day from minutes", base_day,
              "× 30 for a month of minute rows"))


def _has_dbstat(conn) -> bool:  # type: ignore[no-untyped-def]
    try:
        conn.execute("SELECT 1 FROM dbstat LIMIT 1").fetchall()
    except Exception:  # noqa: BLE001 - SQLite built without the dbstat table
        return False
    return True


if __name__ == "__main__":
    main()
