"""Adaptive polling: ticks are spaced out to fit the CPU budget, only while events report ends."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bwmon.core.config.settings import Settings
from bwmon.core.engine import Engine
from bwmon.core.model import Level, SourceStatus
from bwmon.core.runtime.pacing import TickPacer


def test_cheap_ticks_keep_the_interval() -> None:
    pacer = TickPacer(interval=1.0, budget=0.1, max_interval=10.0)
    assert pacer.observe(0.02, events=True, entries=50_000) == 1.0
    assert not pacer.stretched


def test_costly_ticks_are_spaced_to_fit_the_budget_up_to_the_cap() -> None:
    pacer = TickPacer(interval=1.0, budget=0.1, max_interval=10.0)
    # 0.4 s of CPU every 4 s = 10 % of a core
    assert pacer.observe(0.4, events=True, entries=50_000) == 4.0
    assert pacer.stretched
    for _ in range(20):
        spacing = pacer.observe(3.0, events=True, entries=50_000)
    assert spacing == 10.0  # never beyond max_interval


def test_without_events_or_budget_every_interval() -> None:
    pacer = TickPacer(interval=1.0, budget=0.1, max_interval=10.0)
    # without events, short flows would be missed
    assert pacer.observe(0.9, events=False, entries=50_000) == 1.0
    off = TickPacer(interval=1.0, budget=0.0, max_interval=10.0)
    assert off.observe(0.9, events=True, entries=50_000) == 1.0


def test_one_slow_tick_is_smoothed() -> None:
    pacer = TickPacer(interval=1.0, budget=0.1, max_interval=10.0)
    pacer.observe(0.05, events=True, entries=50_000)
    # not the full 5 s at once
    assert 1.0 < pacer.observe(0.5, events=True, entries=50_000) < 5.0


def test_small_tables_are_read_every_interval() -> None:
    pacer = TickPacer(interval=1.0, budget=0.1, max_interval=10.0)
    assert pacer.observe(0.9, events=True, entries=2_000) == 1.0  # a costly start-up tick


def _engine(tmp_path: Path, budget: float) -> Engine:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "nf_conntrack").write_text("")
    (tmp_path / "net" / "tcp").write_text("  sl  local_address rem_address   st\n")
    settings = Settings()
    g = settings.general
    g.proc_root, g.interval, g.events, g.ebpf = tmp_path, 0.1, False, "off"
    g.cpu_budget, g.max_interval = budget, 0.5
    engine = Engine(settings)
    engine.pacer.min_entries = 0  # the fixture's table is empty
    return engine


async def _ticks_in(engine: Engine, seconds: float) -> int:
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(seconds)
    engine.stop()
    await task
    return engine.tick_count


async def test_run_spaces_ticks_while_events_report_ends(tmp_path: Path) -> None:
    engine = _engine(tmp_path, budget=1e-6)  # any tick is over this budget
    engine.set_source_status(SourceStatus("events", True, "conntrack -E"))
    ticks = await _ticks_in(engine, 1.3)
    assert 3 <= ticks <= 5  # two start-up ticks, then every 0.5 s (max_interval), not 0.1 s
    assert engine.pacer.stretched
    ct = engine._sources([])[0]  # the status the header and API show
    assert "read every 0.5 s" in ct.detail
    said = [e.message for e in engine.log.tail(50) if e.level is Level.INFO]
    assert any("cpu_budget" in m for m in said)


async def test_run_keeps_the_interval_when_events_are_down(tmp_path: Path) -> None:
    engine = _engine(tmp_path, budget=1e-6)
    engine.set_source_status(SourceStatus("events", False, "conntrack tool missing"))
    assert await _ticks_in(engine, 1.3) >= 8
    assert not engine.pacer.stretched
