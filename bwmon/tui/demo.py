"""Deterministic, made-up snapshots: for screenshots, the benchmark, tests and `--demo`.

Every figure is a pure function of (tick, row index), so pictures and measurements repeat
exactly. Nothing here touches the system.
"""

from __future__ import annotations

import math

from bwmon.core.feed import ManualFeed
from bwmon.core.model import (
    UNATTRIBUTED,
    AppRow,
    Connection,
    Finding,
    HostTotals,
    Level,
    LogEvent,
    ProcessInfo,
    ProcessRow,
    ProcKey,
    RowKind,
    Snapshot,
    SourceStatus,
    Totals,
    Unit,
)

T0 = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC: fixed so screenshots repeat
_NAMES = ("firefox", "apt", "ssh", "syncthing", "docker", "python3", "curl", "chromium",
          "rsync", "spotify", "thunderbird", "git", "node", "postgres", "nginx", "dnsmasq")
_USERS = ("alice", "root", "bob")


def _app_name(i: int) -> str:
    return _NAMES[i] if i < len(_NAMES) else f"worker-{i:02d}"


def demo_process(i: int, j: int = 0) -> ProcessInfo:
    name = _app_name(i)
    pid = 1000 + 37 * i + j
    return ProcessInfo(ProcKey(pid, 5000 + i), name[:15], f"/usr/bin/{name} --profile p{j}",
                       _USERS[(i + j) % len(_USERS)], 1000 + (i % 3), name)


def _rate(tick: int, i: int, phase: float) -> float:
    base = 400_000.0 / (i + 1) ** 1.3
    wave = 0.5 + 0.5 * math.sin(tick / 7.0 + i * 1.7 + phase)
    return float(round(base * (0.3 + wave), 1))


def demo_row(tick: int, i: int, interval: float = 1.0) -> AppRow:
    """Row `i` of the demo at `tick`: rates vary smoothly, totals are their running sums."""
    name = _app_name(i)
    r_in, r_out = _rate(tick, i, 0.0), _rate(tick, i, 2.0) / 3
    tot_in = int(sum(_rate(t, i, 0.0) for t in range(tick + 1)) * interval)
    tot_out = int(sum(_rate(t, i, 2.0) / 3 for t in range(tick + 1)) * interval)
    nproc = 1 + i % 3
    procs = tuple(demo_process(i, j) for j in range(nproc))
    conns = tuple(
        Connection("tcp", f"192.168.1.10:{40000 + 10 * i + k}", f"203.0.113.{10 + i}:443",
                   tot_in // (k + 2), tot_out // (k + 2), "ESTABLISHED")
        for k in range(1 + i % 4)
    )
    return AppRow(name, RowKind.APP, Unit.IP, r_in, r_out, tot_in, tot_out, len(conns),
                  procs, conns)


def demo_snapshot(tick: int, rows: int = 8, *, interval: float = 1.0,
                  findings: tuple[Finding, ...] = ()) -> Snapshot:
    apps = [demo_row(tick, i, interval) for i in range(rows)]
    apps.append(AppRow(UNATTRIBUTED, RowKind.UNATTRIBUTED, Unit.IP, 120.0, 80.0,
                       (tick + 1) * 120, (tick + 1) * 80, 1))
    procs = tuple(
        ProcessRow(p, a.name, a.rate_in / len(a.processes), a.rate_out / len(a.processes),
                   a.total_in // len(a.processes), a.total_out // len(a.processes), a.flows)
        for a in apps for p in a.processes
    )
    host = HostTotals(sum(a.rate_in for a in apps), sum(a.rate_out for a in apps),
                      sum(a.total_in for a in apps), sum(a.total_out for a in apps), 0, 0.0)
    events = (
        LogEvent(T0 + 3, Level.WARNING, "alert", "firefox above 300 kB/s in (312 kB/s)"),
        LogEvent(T0 + 4, Level.INFO, "notify", "ran notify-send: exit 0"),
    ) if tick >= 4 else ()
    return Snapshot(
        seq=tick, time=T0 + tick * interval, elapsed=0.0 if tick == 0 else interval,
        apps=tuple(apps), processes=procs, host=host,
        filtered=Totals(10.0, 5.0, 4096 * (tick + 1), 2048 * (tick + 1)),
        sources=(SourceStatus("conntrack-file", True, counts_bytes=True),
                 SourceStatus("events", True)),
        findings=findings, events=events,
    )


def demo_feed(ticks: int, rows: int = 8) -> ManualFeed:
    """A ManualFeed that has already published `ticks` demo snapshots (history filled)."""
    feed = ManualFeed()
    for tick in range(ticks):
        snap = demo_snapshot(tick, rows)
        for event in snap.events:
            if event not in feed.log.tail():
                feed.log.append(event)
        feed.push(snap)
    return feed


def demo_processes(rows: int = 8) -> list[ProcessInfo]:
    return [demo_process(i, j) for i in range(rows) for j in range(1 + i % 3)]


NO_CONNTRACK = (
    Finding("conntrack-readable", False,
            "/proc/net/nf_conntrack is not readable: bwmon needs root (or CAP_NET_ADMIN).",
            None),
    Finding("conntrack-acct", False,
            "conntrack byte accounting is off, so flows have no byte counters.",
            "sysctl -w net.netfilter.nf_conntrack_acct=1"),
)
