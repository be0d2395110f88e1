"""History by place: an app's minute bytes split by the container and systemd unit of its
processes, exact through roll-ups, reported by app, container or unit; a store written before
places were recorded opens, takes placed rows and reports."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from bwmon.core.model import ProcessInfo, ProcKey, RowKind
from bwmon.core.store import calendar, queries
from bwmon.core.store.queries import Selection
from bwmon.core.store.retention import Retention
from bwmon.core.store.schema import open_reader
from bwmon.core.store.tally import NOWHERE, AppKey, MinuteBytes, MinuteTally, split_exactly
from bwmon.core.store.writer import StoreWriter
from tests.helpers.factories import app_row, process_row, snapshot
from tests.unit.test_history_store import write_minutes

T = 1_796_600_000 // 3600 * 3600  # a whole hour (2026-12-06)


def proc(pid: int, name: str, container: str = "", unit: str = "") -> ProcessInfo:
    return ProcessInfo(ProcKey(pid, 1), name, name, "root", 0, name, container, unit)


def test_an_apps_bytes_are_split_by_the_places_of_its_processes_exactly() -> None:
    web_a, web_b = proc(1, "nginx", "web-a"), proc(2, "nginx", "web-b")
    host = proc(3, "nginx", unit="nginx.service")
    bare = proc(4, "curl")
    tally = MinuteTally()
    rng = random.Random(3)
    want: dict[AppKey, list[int]] = {}
    for i in range(1, 300):
        elapsed = rng.uniform(0.2, 2.5)
        parts = {p: (rng.randrange(0, 10**8), rng.randrange(0, 10**6)) for p in
                 (web_a, web_b, host)}
        curl = rng.randrange(1, 10**5)
        procs = [process_row(p, "nginx", b_in / elapsed, b_out / elapsed)
                 for p, (b_in, b_out) in parts.items()]
        procs.append(process_row(bare, "curl", curl / elapsed, 0))
        rows = [app_row("nginx", sum(b[0] for b in parts.values()) / elapsed,
                        sum(b[1] for b in parts.values()) / elapsed),
                app_row("curl", curl / elapsed, 0),
                # a pipe that happens to share the app's name is not split
                app_row("nginx", 1000 / elapsed, 0, kind=RowKind.PIPE)]
        tally.add(snapshot(i, rows, processes=procs, time=T + i * 0.5, elapsed=elapsed))
        for p, (b_in, b_out) in parts.items():
            key = AppKey("nginx", "ip", p.container or None, p.unit or None)
            sums = want.setdefault(key, [0, 0])
            sums[0] += b_in
            sums[1] += b_out
        want.setdefault(AppKey("curl", "ip"), [0, 0])[0] += curl
        want.setdefault(AppKey("nginx", "payload"), [0, 0])[0] += 1000
    got: dict[AppKey, list[int]] = {}
    for r in tally.take():
        sums = got.setdefault(r.app, [0, 0])
        sums[0] += r.bytes_in
        sums[1] += r.bytes_out
    assert got == want
    assert AppKey("nginx", "ip", "web-a") in got and AppKey("nginx", "ip", "web-b") in got


def test_bytes_no_process_accounts_for_go_to_no_place_and_the_app_sum_stays_exact() -> None:
    assert split_exactly({("c", None): 70, ("d", None): 20}, 100) == {
        ("c", None): 70, ("d", None): 20, NOWHERE: 10}
    assert split_exactly({("c", None): 70, ("d", None): 50}, 100) == {
        ("c", None): 50, ("d", None): 50}
    assert split_exactly({("c", None): 5}, 0) == {}
    # an app row whose processes moved more than it (not expected: the sum is the app's)
    tally = MinuteTally()
    tally.add(snapshot(1, [app_row("a", 90, 0)], time=T, elapsed=1.0, processes=[
        process_row(proc(1, "a", "box"), "a", 60, 0),
        process_row(proc(2, "a", unit="a.service"), "a", 50, 0)]))
    rows = tally.take()
    assert sum(r.bytes_in for r in rows) == 90
    assert {r.app.container or r.app.service: r.bytes_in for r in rows} == {
        "box": 40, "a.service": 50}


def test_placed_rows_roll_up_exactly_and_group_by_container_and_unit(tmp_path: Path) -> None:
    keys = [AppKey("nginx", "ip", "web-a"), AppKey("nginx", "ip", "web-b"),
            AppKey("nginx", "ip", None, "nginx.service"), AppKey("nginx", "ip"),
            AppKey("db", "payload", "web-a", "db.service"), AppKey("ssh", "ip")]
    rng = random.Random(5)
    start, end = calendar.local_midnight(T - 90 * 86400), T
    rows = [MinuteBytes(m, rng.choice(keys), rng.randrange(1, 1 << 30), rng.randrange(0, 99))
            for m in range(start, end, 300)]
    # hours past 30 days, minutes past 48 h rolled up
    path = write_minutes(tmp_path, rows, Retention(48, 30, 0))
    conn = open_reader(path)
    assert conn.execute("SELECT min(t) FROM minutes").fetchone()[0] >= end - 49 * 3600

    def expect(group: str, pick: Selection, a: int, b: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in rows:
            k = r.app
            if not a <= r.minute < b:
                continue
            if any(want is not None and (have or "") != want for want, have in
                   ((pick.app, k.name), (pick.container, k.container),
                    (pick.unit, k.service))):
                continue
            name = {"app": k.name, "container": k.container or "",
                    "unit": k.service or ""}[group]
            out[name] = out.get(name, 0) + r.bytes_in + r.bytes_out
        return out

    # past retention a range counts whole hours (days) that start in it: edges on them there
    ranges = [(start, end), (end - 86400 * 7, end - 600), (end - 3 * 3600 + 120, end - 60)]
    picks = [Selection(), Selection("nginx"), Selection(container="web-a"),
             Selection(unit=""), Selection("nginx", container="")]
    for a, b in ranges:
        for pick in picks:
            for group in ("app", "container", "unit"):
                got = {t.name: t.total for t in
                       queries.top_apps(conn, a, b, by=group, only=pick)}  # type: ignore[arg-type]
                assert got == expect(group, pick, a, b), (a, b, pick, group)
    days = queries.per_day(conn, start, end, Selection(container="web-b"))
    assert sum(d.bytes_in + d.bytes_out for d in days) == expect(
        "app", Selection(container="web-b"), start, end)["nginx"]
    assert queries.names(conn, "container") == ["web-a", "web-b"]
    assert queries.names(conn, "unit") == ["db.service", "nginx.service"]


# The store as bwmon wrote it before places were recorded (schema 1, every place NULL).
OLD_SCHEMA = [
    "PRAGMA auto_vacuum = INCREMENTAL",
    "PRAGMA journal_mode = WAL",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE apps (id INTEGER PRIMARY KEY, name TEXT NOT NULL, unit TEXT NOT NULL, "
    "container TEXT, service TEXT)",
    "CREATE UNIQUE INDEX apps_key ON apps (name, unit, ifnull(container, ''), "
    "ifnull(service, ''))",
    *(f"CREATE TABLE {t} (t INTEGER NOT NULL, app INTEGER NOT NULL, bytes_in INTEGER NOT "
      f"NULL, bytes_out INTEGER NOT NULL, PRIMARY KEY (t, app)) WITHOUT ROWID"
      for t in ("minutes", "hours", "days")),
    "INSERT INTO meta VALUES ('schema', '1'), ('created', '1796000000')",
    "INSERT INTO apps (id, name, unit) VALUES (1, 'nginx', 'ip'), (2, 'ssh', 'ip')",
]


def test_a_store_written_before_places_opens_records_places_and_reports(
        tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    for statement in OLD_SCHEMA:
        old.execute(statement)
    minute = T - 3600
    day = calendar.local_midnight(minute)
    for table, t in (("minutes", minute), ("hours", minute // 3600 * 3600), ("days", day)):
        old.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?)",
                        [(t, 1, 1000, 10), (t, 2, 7, 0)])
    old.close()
    writer = StoreWriter(path, Retention())
    writer.open()
    writer.write([MinuteBytes(minute, AppKey("nginx", "ip"), 1, 1),  # the old key, added to
                  MinuteBytes(minute + 60, AppKey("nginx", "ip", "web-a"), 500, 5)])
    writer.close()
    conn = open_reader(path)
    a, b = T - 7200, T
    assert [(t.name, t.bytes_in) for t in queries.top_apps(conn, a, b)] == [
        ("nginx", 1501), ("ssh", 7)]
    assert [(t.name, t.bytes_in) for t in queries.top_apps(conn, a, b, by="container")] == [
        ("", 1008), ("web-a", 500)]
    assert conn.execute("SELECT count(*) FROM apps").fetchone()[0] == 3
