"""Conntrack events: recorded `conntrack -E` lines, and the listener driving stand-in tools."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bwmon.core.sources.conntrack_events import ConntrackEvents, CtEvent, parse_event_line

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "conntrack"


def events(name: str) -> list[CtEvent]:
    lines = (FIX / name).read_text().splitlines()
    out = [parse_event_line(line) for line in lines]
    assert all(e is not None for e in out), "every recorded line is an event"
    return [e for e in out if e is not None]


def test_recorded_events_parse() -> None:
    evs = events("acct.events")
    assert {e.kind for e in evs} == {"NEW", "UPDATE", "DESTROY"}
    assert all(e.timestamp is not None and e.timestamp > 1e9 for e in evs)
    assert all(e.entry.ct_id is not None for e in evs)
    new = [e for e in evs if e.kind == "NEW"]
    assert all(not e.entry.has_counters and "UNREPLIED" in e.entry.flags for e in new)


def test_destroy_carries_final_counters_when_accounting_is_on() -> None:
    destroy = [e for e in events("acct.events") if e.kind == "DESTROY"]
    assert destroy and all(e.entry.has_counters for e in destroy)
    # the same flow's NEW and DESTROY share the flow id
    ids = {e.entry.ct_id for e in events("acct.events") if e.kind == "NEW"}
    assert {e.entry.ct_id for e in destroy} <= ids
    flushed = [e for e in destroy if "USERSPACE" in e.entry.flags]
    assert flushed, "flows deleted by `conntrack -F` are marked USERSPACE"
    udp6 = next(e for e in destroy if e.entry.family == 6 and e.entry.orig.dport == 9)
    assert udp6.entry.orig_bytes == 100 + 8 + 40  # one 100-byte datagram over IPv6


def test_destroy_without_accounting_has_no_counters() -> None:
    destroy = [e for e in events("noacct.events") if e.kind == "DESTROY"]
    assert destroy and not any(e.entry.has_counters for e in destroy)


@pytest.mark.parametrize("line", [
    "", "garbage", "NOTICE: Netlink socket buffer size has been set to 16777216 bytes.",
    "conntrack v1.4.7 (conntrack-tools): 3 flow events have been shown.",
    "[1700000000.1]\t[BOGUS] ipv4 2 udp 17 30 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2",
    "[notatime]\t[NEW] ipv4 2 udp 17 30 src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2",
    "[1700000000.1]\t[NEW] ipv4 2 udp 17 30 src=1.1.1.1",
    "[1700000000.1", "[NEW", "[]",
])
def test_non_events_are_none(line: str) -> None:
    assert parse_event_line(line) is None


def test_event_without_timestamp() -> None:
    ev = parse_event_line("    [NEW] ipv4     2 udp      17 30 src=10.0.0.1 dst=10.0.0.2 "
                          "sport=1 dport=2 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1")
    assert ev is not None and ev.kind == "NEW" and ev.timestamp is None
    assert ev.entry.orig.dst == "10.0.0.2"


def script(tmp_path: Path, body: str) -> Path:
    tool = tmp_path / "fake-conntrack"
    tool.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv.txt\n"
                    f"echo $$ >> {tmp_path}/pids\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool


async def collect(listener: ConntrackEvents, until: int, timeout: float = 10
                  ) -> tuple[list[CtEvent], list[str]]:
    """Run the listener until `until` events arrived, then cancel it."""
    got: list[CtEvent] = []
    problems: list[str] = []
    task = asyncio.create_task(listener.run(got.append, problems.append))
    for _ in range(int(timeout / 0.02)):
        if len(got) >= until:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return got, problems


async def test_listener_delivers_events_and_passes_its_options(tmp_path: Path) -> None:
    tool = script(tmp_path, f"echo 'NOTICE: buffer set' >&2\ncat {FIX / 'acct.events'}\n"
                            "exec sleep 30")
    listener = ConntrackEvents(str(tool), buffer_size=1 << 20)
    n = len((FIX / "acct.events").read_text().splitlines())
    got, problems = await collect(listener, n)
    assert len(got) == n and problems == []
    argv = (tmp_path / "argv.txt").read_text().split()
    assert argv == ["-E", "-e", "NEW,DESTROY", "-b", str(1 << 20), "-o", "extended,id,timestamp"]
    for pid in (tmp_path / "pids").read_text().split():  # cancelled: the tool is gone
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


async def test_enobufs_is_reported_as_overrun(tmp_path: Path) -> None:
    warning = ("WARNING: We have hit ENOBUFS! We are losing events.\\n"
               "This message means that the current netlink socket buffer size is too small.")
    tool = script(tmp_path, f"head -3 {FIX / 'acct.events'}\nprintf '{warning}\\n' >&2\n"
                            f"printf '{warning}\\n' >&2\ntail -2 {FIX / 'acct.events'}\n"
                            "exec sleep 30")
    got, problems = await collect(ConntrackEvents(str(tool)), 5)
    assert len(got) == 5  # the tool goes on after ENOBUFS: so does the listener
    assert len(problems) == 1 and problems[0].startswith("overrun")


async def test_tool_that_dies_is_restarted(tmp_path: Path) -> None:
    tool = script(tmp_path, f"head -2 {FIX / 'acct.events'}\n"
                            "echo 'failed to received netlink event: No buffer space available'"
                            " >&2\nexit 1")
    listener = ConntrackEvents(str(tool), restart_delay=0.05)
    got, problems = await collect(listener, 6)
    assert len(got) >= 6 and listener.restarts >= 2
    assert problems[0].startswith("overrun")
    deaths = [p for p in problems if "restarting" in p]
    assert len(deaths) >= 2 and all(p.startswith("overrun") for p in deaths)
    assert all("No buffer space available" in p for p in deaths)


async def test_missing_tool(tmp_path: Path) -> None:
    listener = ConntrackEvents(str(tmp_path / "no-such-conntrack"))
    reason = listener.available()
    assert reason is not None and "apt-get install conntrack" in reason
    problems: list[str] = []
    await asyncio.wait_for(listener.run(lambda e: None, problems.append), 5)
    assert len(problems) == 1 and "apt-get install conntrack" in problems[0]


def test_available_with_the_real_tool_as_root() -> None:
    if os.geteuid() != 0 or shutil.which("conntrack") is None:
        pytest.skip("needs root and the conntrack tool")
    assert ConntrackEvents(argv_prefix=("env",)).available() is None


def fake_proc(tmp_path: Path, cap_eff: str, events: str) -> Path:
    (tmp_path / "self").mkdir(parents=True)
    (tmp_path / "self" / "status").write_text(f"Name:\tbwmon\nCapEff:\t{cap_eff}\n")
    (tmp_path / "sys/net/netfilter").mkdir(parents=True)
    (tmp_path / "sys/net/netfilter/nf_conntrack_events").write_text(events + "\n")
    return tmp_path


def test_available_needs_cap_net_admin_and_events_switched_on(tmp_path: Path) -> None:
    tool = shutil.which("true")
    assert tool is not None
    all_caps = "000001ffffffffff"
    assert ConntrackEvents(tool, proc_root=fake_proc(tmp_path / "a", all_caps, "2")
                           ).available() is None
    no_caps = ConntrackEvents(tool, proc_root=fake_proc(tmp_path / "b", "0" * 16, "1"))
    assert "root" in (no_caps.available() or "")
    off = ConntrackEvents(tool, proc_root=fake_proc(tmp_path / "c", all_caps, "0"))
    assert "nf_conntrack_events=1" in (off.available() or "")


def test_the_tool_ends_when_the_process_reading_it_is_killed(tmp_path: Path) -> None:
    """The discovery worker runs `conntrack -E`; killed outright (SIGKILL, the OOM killer),
    it cannot stop the tool itself: the tool must not live on, orphaned."""
    tool = script(tmp_path, "exec sleep 60")
    reader = subprocess.Popen([sys.executable, "-c", (
        "import asyncio, sys\n"
        "from bwmon.core.sources.conntrack_events import ConntrackEvents\n"
        "asyncio.run(ConntrackEvents(sys.argv[1]).run(print, print))\n"), str(tool)])
    pids = tmp_path / "pids"
    try:
        deadline = time.monotonic() + 10
        while not pids.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pids.exists(), "the tool never started"
    finally:
        reader.kill()
        reader.wait()
    [pid] = [int(p) for p in pids.read_text().split()]
    deadline = time.monotonic() + 5
    while not _ended(pid):
        assert time.monotonic() < deadline, "the tool outlived its reader"
        time.sleep(0.05)


def _ended(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
