"""Every long-lived container of the core has a bound: fed churn, it shrinks back.

Each test feeds what a busy host produces (processes and flows that come and go), moves time
on, and checks that what is remembered falls back — while what a user sees (app totals) stays.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bwmon.core.accounting import Accounting
from bwmon.core.attribution import discovery_worker
from bwmon.core.attribution.attributor import (
    SWEEP_TICKS,
    Attributor,
    EndKey,
    EndUsage,
)
from bwmon.core.attribution.discovery_worker import _dispatch
from bwmon.core.attribution.flows import TOMBSTONE_TICKS, VANISHED_TICKS, FlowTracker
from bwmon.core.config.settings import Settings
from bwmon.core.engine import EXPIRE_TICKS, Engine
from bwmon.core.grouping import Grouper
from bwmon.core.history import History
from bwmon.core.model import AppRow, ConntrackEntry, ProcessInfo, ProcKey
from bwmon.core.row_state import END_LINGER_SECONDS
from tests.helpers.factories import app_row, conntrack_entry, process_info
from tests.unit.test_scale_tick import Tree

LINGER = 120.0


def _entry(sport: int, orig: int = 100, reply: int = 1000) -> ConntrackEntry:
    return conntrack_entry("192.0.2.10", sport, "198.51.100.7", 443, orig, reply,
                           state="ESTABLISHED")


def _usage(pid: int, sport: int, d_in: int) -> EndUsage:
    end = EndKey("tcp", "192.0.2.10", sport, "198.51.100.7", 443)
    return EndUsage(_entry(sport), end, ProcKey(pid, 1), d_in, 0, False, True)


def _info(key: ProcKey) -> ProcessInfo:
    return process_info("fetch", f"fetch --job {key.pid}", pid=key.pid, start=key.start)


def _churned(n: int) -> tuple[Accounting, list[EndUsage]]:
    """`n` processes of one program, each moving 100 bytes on one flow at t=0, closed at t=10."""
    acc = Accounting(Grouper([], auto_group=True), linger=LINGER)
    usages = [_usage(1000 + i, 40000 + i, 100) for i in range(n)]
    acc.step_changes(usages, [], [], _info, 0.0, 1.0)
    acc.step_changes([], usages, [], _info, 10.0, 1.0)
    return acc, usages


def _fetch_total(acc: Accounting, now: float) -> int:
    """The `fetch` app's total in after one more byte from its live process (pid 1000)."""
    apps, _, _, _ = acc.step_changes([_usage(1000, 50000, 1)], [], [], _info, now, 1.0)
    return next(a.total_in for a in apps if a.name == "fetch")


def test_exited_processes_are_forgotten_once_idle_for_linger_and_keep_their_bytes() -> None:
    acc, _ = _churned(50)
    assert acc.forget_exited(10.0 + LINGER / 2, lambda key: False) == 0  # still shown
    asked: list[ProcKey] = []

    def alive(key: ProcKey) -> bool:
        asked.append(key)
        return key.pid == 1000

    assert acc.forget_exited(11.0 + LINGER, alive) == 49
    assert acc.live_processes() == [ProcKey(1000, 1)]
    assert len(acc._info) == 1 and len(acc._shown) == 1  # their facts went with them
    assert len(asked) == 50
    assert _fetch_total(acc, 12.0 + LINGER) == 50 * 100 + 1  # the app still counts their bytes


def test_a_process_with_an_open_flow_is_never_forgotten() -> None:
    acc = Accounting(Grouper([], auto_group=True), linger=LINGER)
    acc.step_changes([_usage(7, 40000, 100)], [], [], _info, 0.0, 1.0)
    assert acc.forget_exited(10 * LINGER, lambda key: False) == 0
    assert acc.live_processes() == [ProcKey(7, 1)]


def test_silent_rows_and_their_facts_are_forgotten_after_ten_lingers() -> None:
    acc, _ = _churned(50)
    acc.step_changes([], [], [], _info, 11.0 + 10 * LINGER, 1.0)
    assert acc.live_processes() == []
    assert len(acc._info) == 0 and len(acc._shown) == 0
    assert len(acc._ends) == 0


def test_closed_flow_ends_are_forgotten_after_the_end_linger_not_the_row_linger() -> None:
    """Nothing lists a closed end: its totals stay only END_LINGER_SECONDS (a late usage of
    the same end adds to them), while its process's row stays for the whole row linger."""
    acc = Accounting(Grouper([], auto_group=True), linger=120.0)
    usages = [_usage(1000 + i, 40000 + i, 100) for i in range(50)]
    acc.step_changes(usages, [], [], _info, 0.0, 1.0)
    acc.step_changes([], usages, [], _info, 1.0, 1.0)
    acc.step_changes([], [], [], _info, END_LINGER_SECONDS / 2, 1.0)
    assert len(acc._ends) == 50
    acc.step_changes([], [], [], _info, 2.0 + END_LINGER_SECONDS + 120.0 / 8, 1.0)
    assert len(acc._ends) == 0
    assert len(acc.live_processes()) == 50  # their rows still shown


def test_history_forgets_rows_unseen_for_its_capacity() -> None:
    h = History(capacity=10)
    for t in range(30):  # a new app every tick, plus one that stays
        h.record(float(t), [_row("keep"), _row(f"gone-{t}")])
    for t in range(30, 41):
        h.record(float(t), [_row("keep")])
    assert h.names() == ["keep"]
    assert len(h.points("keep")) == 10


def _row(name: str) -> AppRow:
    return app_row(name, 1.0, 1.0, 1, 1, flows=1)


def test_flow_tracker_forgets_vanished_flows_and_tombstones() -> None:
    tracker = FlowTracker(lookback=True)
    tracker.read([_entry(p) for p in range(40000, 40100)], 1)
    tracker.read([], 2)  # all left the table
    assert len(tracker) == 0 and len(tracker._vanished) == 100
    tracker.finish([_entry(p, 200, 2000) for p in range(41000, 41100)], 3)  # DESTROY events
    assert len(tracker._tombstones) == 100
    tracker.read([], 3 + max(TOMBSTONE_TICKS, VANISHED_TICKS))
    assert tracker._vanished == {} and tracker._tombstones == {}


def test_owner_memory_forgets_ends_not_needed_for_memory_ticks() -> None:
    attr = Attributor(memory_ticks=10)
    for port in range(5000):
        attr.remember(EndKey("tcp", "192.0.2.10", port, "198.51.100.7", 443), ProcKey(9, 1), 1)
    attr.attribute([], {}, 4 * SWEEP_TICKS)  # owner memory is swept every SWEEP_TICKS ticks
    assert len(attr) == 0


def test_worker_reports_intern_the_facts_of_processes_of_one_program() -> None:
    got: list[ProcessInfo] = []

    class Sink:
        def remember_owner(self, end: EndKey, owner: ProcKey,
                           info: ProcessInfo | None = None) -> None:
            assert info is not None
            got.append(info)

        def flow_ended(self, entry: ConntrackEntry) -> None: ...
        def set_source_status(self, status: object) -> None: ...

    for pid in (1, 2):
        line = {"o": ["tcp", "127.0.0.1", 40000 + pid, "127.0.0.1", 7001], "p": [pid, 5],
                "i": ["curl", "curl -s http://x/", "root", 0, "curl"]}
        _dispatch(json.dumps(line).encode(), Sink(), lambda *a: None)  # type: ignore[arg-type]
    a, b = got
    assert a.cmdline is b.cmdline and a.name is b.name and a.user is b.user


def test_worker_reports_share_one_key_per_owner(monkeypatch: pytest.MonkeyPatch) -> None:
    """Owner memory keeps an entry per end; the ends of one owner share its key object."""
    monkeypatch.setattr(discovery_worker, "OWNERS_MAX", 8)
    monkeypatch.setattr(discovery_worker, "_owners", {})
    owners: list[ProcKey] = []

    class Sink:
        def remember_owner(self, end: EndKey, owner: ProcKey,
                           info: ProcessInfo | None = None) -> None:
            owners.append(owner)

        def flow_ended(self, entry: ConntrackEntry) -> None: ...
        def set_source_status(self, status: object) -> None: ...

    for port in range(40000, 40100):  # one busy owner, and a new process every 10 ends
        for pid in (7, port // 10):
            line = {"o": ["tcp", "127.0.0.1", port, "127.0.0.1", 7001], "p": [pid, 5], "i": None}
            _dispatch(json.dumps(line).encode(), Sink(), lambda *a: None)  # type: ignore[arg-type]
    sevens = [o for o in owners if o.pid == 7]
    assert all(o == ProcKey(7, 5) for o in sevens)
    assert len({id(o) for o in sevens}) <= 100 // 8 + 1  # shared, re-made only after a clear
    assert len(discovery_worker._owners) <= 8


async def test_engine_forgets_exited_clients_after_linger(tmp_path: Path) -> None:
    """The real tick on a fixture procfs: clients that exited leave no row and no cached
    facts behind once their rows are gone, while their app keeps its total."""
    tree = Tree(tmp_path)
    for pid in range(201, 211):
        tree.process(pid, "fetch")
        tree.open(40000 + pid, pid)
    tree.write()
    now = [0.0]
    settings = Settings()
    settings.general.proc_root = tree.root
    e = Engine(settings, clock=lambda: now[0], wall=lambda: now[0])
    snap = await e.tick()
    assert snap.app("fetch") is not None and snap.app("fetch").flows == 10  # type: ignore[union-attr]
    for pid in range(201, 211):  # every client exits, its flow leaves the table
        tree.kill(pid)
        del tree.flows[40000 + pid]
    tree.write()
    now[0] = 1.0
    snap = await e.tick()
    assert snap.app("fetch").total_in == 10 * 1000  # type: ignore[union-attr]
    assert len(e.accounting.live_processes()) == 10  # shown for `linger` after their last byte
    now[0] = 2.0 + e.accounting.linger
    while e.tick_count % EXPIRE_TICKS:
        await e.tick()
    assert e.accounting.live_processes() == []
    assert e.procs._info == {}


def test_app_cache_stays_bounded_under_command_line_churn() -> None:
    from bwmon.core.grouping import APP_CACHE_MAX, Grouper

    grouper = Grouper([], auto_group=True)
    for i in range(APP_CACHE_MAX * 2 + 10):  # a job with a unique command line each run
        info = process_info("job", f"/usr/bin/job --run {i}", pid=i, start=i)
        assert grouper.app_of(info) == "job"
    assert len(grouper._cache) <= APP_CACHE_MAX
