"""The history store: exact sums through writes and roll-ups, local days across DST and a
change of time zone, ranges cut into days, hours and minutes, and the tally's bytes."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bwmon.core.model import Unit
from bwmon.core.store import calendar, queries
from bwmon.core.store.location import default_path
from bwmon.core.store.retention import Retention
from bwmon.core.store.schema import open_reader
from bwmon.core.store.tally import AppKey, MinuteBytes, MinuteTally
from bwmon.core.store.writer import StoreWriter
from tests.helpers.factories import app_row, snapshot

BERLIN = "CET-1CEST,M3.5.0,M10.5.0/3"  # POSIX rules: no time zone files needed
NEW_YORK = "EST5EDT,M3.2.0,M11.1.0"


@pytest.fixture
def zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Set the process's time zone (TZ + tzset) for one test, restored after."""

    def use(tz: str) -> None:
        monkeypatch.setenv("TZ", tz)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


def local(text: str) -> int:
    """Epoch seconds of a local `YYYY-MM-DD HH:MM` in the current TZ."""
    return int(time.mktime(time.strptime(text, "%Y-%m-%d %H:%M")))


def test_tally_counts_each_ticks_bytes_exactly_and_skips_the_baseline() -> None:
    tally = MinuteTally()
    t = local("2026-12-07 10:00")
    tally.add(snapshot(1, [app_row("a", 0, 0, 5000, 0)], time=t, elapsed=0))  # lookback
    sent = 0
    rng = random.Random(7)
    for i in range(1, 200):
        b = rng.randrange(0, 10**9)
        elapsed = rng.uniform(0.2, 3.0)
        sent += b
        tally.add(snapshot(i + 1, [app_row("a", b / elapsed, 0, unit=Unit.IP)],
                           time=t + i, elapsed=elapsed))
    rows = tally.take()
    assert sum(r.bytes_in for r in rows) == sent
    assert {r.minute for r in rows} == {t + 60 * k for k in range(4)}
    assert rows[0].app == AppKey("a", "ip")
    assert tally.take() == []


def test_tally_keeps_at_most_cap_rows_dropping_the_oldest() -> None:
    tally = MinuteTally(cap=3)
    tally.add_rows([MinuteBytes(60 * k, AppKey("a", "ip"), 1, 1) for k in range(5)])
    assert [r.minute for r in tally.take()] == [120, 180, 240]
    assert tally.dropped == 2


def write_minutes(tmp_path: Path, rows: list[MinuteBytes], keep: Retention,
                  roll_every: int = 86400) -> Path:
    """Write rows in order as the recorder would (a roll-up after each `roll_every`)."""
    path = tmp_path / "h.sqlite"
    writer = StoreWriter(path, keep)
    writer.open()
    batch: list[MinuteBytes] = []
    for r in rows:
        if batch and r.minute // roll_every != batch[-1].minute // roll_every:
            writer.write(batch)
            writer.roll_up(batch[-1].minute + 60)
            batch = []
        batch.append(r)
    writer.write(batch)
    writer.roll_up(batch[-1].minute + 60)
    writer.close()
    return path


def test_months_of_minutes_roll_up_to_exact_local_days_across_dst(zone, tmp_path) -> None:
    zone(BERLIN)
    start, end = local("2026-02-20 00:00"), local("2026-11-05 00:00")
    rng = random.Random(1)
    rows: list[MinuteBytes] = []
    expected_day: dict[tuple[int, int, int], list[int]] = {}
    expected_app: dict[str, int] = {}
    for minute in range(start, end, 60):
        apps = []
        if minute % 3600 == 0:  # one byte per hour: a day's total is its length in hours
            apps.append(("clock", 1, 0))
        if rng.random() < 0.04:
            apps.append((rng.choice(["firefox", "apt", "ssh"]), rng.randrange(1, 1 << 40),
                         rng.randrange(0, 1 << 30)))
        for name, b_in, b_out in apps:
            rows.append(MinuteBytes(minute, AppKey(name, "ip"), b_in, b_out))
            day = expected_day.setdefault(time.localtime(minute)[:3], [0, 0])
            day[0] += b_in
            day[1] += b_out
            expected_app[name] = expected_app.get(name, 0) + b_in + b_out
    path = write_minutes(tmp_path, rows, Retention(48, 60, 0))
    conn = open_reader(path)
    days = queries.per_day(conn, start, end)
    assert [time.localtime(d.start)[:3] for d in days] == sorted(expected_day)
    assert {time.localtime(d.start)[:3]: [d.bytes_in, d.bytes_out] for d in days} == expected_day
    clock = {calendar.day_label(d.start): d.bytes_in
             for d in queries.per_day(conn, start, end, "clock")}
    assert clock["2026-03-29"] == 23  # spring forward
    assert clock["2026-10-25"] == 25  # fall back
    assert clock["2026-06-01"] == 24
    assert calendar.day_label(local("2026-03-29 00:00")) == "2026-03-29"
    totals = {a.name: a.total for a in queries.top_apps(conn, start, end)}
    assert totals == expected_app
    months = queries.per_month(conn, start, end)
    assert sum(m.bytes_in for m in months) == sum(v[0] for v in expected_day.values())
    assert [calendar.month_label(m.start) for m in months][:3] == ["2026-02", "2026-03",
                                                                   "2026-04"]
    # rolled up: no minute older than 48 h, no hour older than 60 days
    oldest_minute = conn.execute("SELECT min(t) FROM minutes").fetchone()[0]
    oldest_hour = conn.execute("SELECT min(t) FROM hours").fetchone()[0]
    assert oldest_minute >= end - 49 * 3600
    assert oldest_hour >= end - 61 * 86400
    assert conn.execute("SELECT count(*) FROM minutes").fetchone()[0] < 3 * 24 * 60


def test_a_range_with_uneven_edges_counts_exactly_its_minutes(zone, tmp_path) -> None:
    zone(NEW_YORK)
    start = local("2026-10-31 00:00")
    end = start + 3 * 86400 + 3600  # across the fall-back night of 2026-11-01
    rng = random.Random(2)
    rows = [MinuteBytes(m, AppKey(rng.choice("abc"), "payload"), rng.randrange(1, 1000), 0)
            for m in range(start, end, 60)]
    path = write_minutes(tmp_path, rows, Retention(24 * 30, 60, 0))
    conn = open_reader(path)
    for _ in range(40):
        a = rng.randrange(start - 600, end + 600) // 60 * 60
        b = rng.randrange(a, end + 1200) // 60 * 60
        want = sum(r.bytes_in for r in rows if a <= r.minute < b)
        got = sum(t.bytes_in for t in queries.top_apps(conn, a, b))
        assert got == want, (calendar.local_text(a), calendar.local_text(b))
    tables = {table for table, _, _ in queries.pieces(start + 90, end - 90)}
    assert tables == {"days", "hours", "minutes"}


def test_days_follow_the_zone_the_minutes_were_recorded_in(zone, tmp_path) -> None:
    zone(NEW_YORK)
    utc_0430 = 1796617800  # 2026-12-07 04:30 UTC = 2026-12-06 23:30 in New York
    path = write_minutes(tmp_path, [MinuteBytes(utc_0430, AppKey("a", "ip"), 7, 0)],
                         Retention())
    conn = open_reader(path)
    days = queries.per_day(conn, utc_0430 - 86400, utc_0430 + 86400)
    assert [(calendar.day_label(d.start), d.bytes_in) for d in days] == [("2026-12-06", 7)]
    assert calendar.iso_local(utc_0430) == "2026-12-06T23:30:00-05:00"
    zone("UTC0")
    assert calendar.day_label(utc_0430) == "2026-12-07"


def test_writes_add_to_what_a_minute_already_holds(tmp_path: Path) -> None:
    key = AppKey("a", "ip")
    path = write_minutes(tmp_path, [MinuteBytes(600, key, 1, 2)], Retention(10**4, 3000, 0))
    writer = StoreWriter(path, Retention(10**4, 3000, 0))
    writer.open()
    writer.write([MinuteBytes(600, key, 10, 20), MinuteBytes(660, AppKey("b", "ip"), 5, 5)])
    writer.close()
    conn = open_reader(path)
    assert [(a.name, a.bytes_in, a.bytes_out) for a in queries.top_apps(conn, 0, 10**6)] == [
        ("a", 11, 22), ("b", 5, 5)]
    for table in ("minutes", "hours", "days"):
        assert conn.execute(f"SELECT sum(bytes_in) FROM {table}").fetchone()[0] == 16


@pytest.mark.parametrize(("env", "euid", "expected"), [
    ({"STATE_DIRECTORY": "/var/lib/bwmon", "HOME": "/root"}, 61234, "/var/lib/bwmon"),
    ({"XDG_STATE_HOME": "/home/u/state", "HOME": "/home/u"}, 1000, "/home/u/state/bwmon"),
    ({"XDG_STATE_HOME": "relative", "HOME": "/home/u"}, 1000, "/home/u/.local/state/bwmon"),
    ({"HOME": "/home/u"}, 1000, "/home/u/.local/state/bwmon"),
    ({"HOME": "/root"}, 0, "/var/lib/bwmon"),
    ({"HOME": "/root", "XDG_STATE_HOME": "/root/s"}, 0, "/root/s/bwmon"),
])
def test_the_store_lives_where_the_manual_says(env: dict[str, str], euid: int,
                                               expected: str) -> None:
    assert default_path(env, euid) == Path(expected) / "history.sqlite"


def test_a_roll_up_that_frees_a_quarter_of_the_file_gives_the_pages_back(tmp_path: Path) -> None:
    now = 1_796_600_000 // 3600 * 3600
    keep = Retention(48, 60, 0)
    path = tmp_path / "h.sqlite"
    writer = StoreWriter(path, keep)
    writer.open()
    old = range(now - 4 * 86400, now - 3 * 86400, 60)  # a day of minutes past 48 h
    writer.write([MinuteBytes(m, AppKey(f"app-{i}", "ip"), 1 << 20, 1 << 10)
                  for m in old for i in range(60)])
    writer.write([MinuteBytes(now - 60, AppKey("app-0", "ip"), 5, 5)])
    conn = writer.conn
    assert conn is not None
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = path.stat().st_size
    assert writer.roll_up(now) == 60 * len(old)  # the minutes (their hours stay)
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert path.stat().st_size < before * 0.7
    writer.close()
    assert [(a.name, a.bytes_in) for a in queries.top_apps(open_reader(path), now - 3600, now)
            ] == [("app-0", 5)]
