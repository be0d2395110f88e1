"""PipeSupervisor bookkeeping against scripted fake children (no sockets, no relay).

The supervisor runs `PYTHON -m bwmon.core.pipes.child …`; here PYTHON is a shell script that prints
canned JSON-lines reports and exits, so restarts, offsets and log entries are deterministic.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

from bwmon.core.config.settings import MonitorSettings
from bwmon.core.eventlog import EventLog
from bwmon.core.model import Level
from bwmon.core.pipes.supervisor import PipeSupervisor


def fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


def report(n_in: int, n_out: int, **extra: object) -> str:
    fields = {"in": n_in, "out": n_out, "connections": 1, "clients": [], "events": [],
              "error": None} | extra  # fmt: skip
    return "echo '" + json.dumps(fields) + "'\n"


def pipe(name: str = "web", **kw: object) -> MonitorSettings:
    return MonitorSettings.model_validate(
        {"name": name, "type": "pipe", "port": 8080, "target_host": "example.org"} | kw
    )


async def until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_dead_child_is_restarted_and_counters_continue(tmp_path: Path) -> None:
    python = fake_python(
        tmp_path, report(100, 10) + "sleep 0.1\n" + report(300, 30) + "sleep 0.1\nexit 3\n"
    )
    log = EventLog()
    sup = PipeSupervisor([pipe()], log, python=python)
    seen: list[tuple[int, int]] = []
    await sup.start()
    try:
        deaths = lambda: sum("exited with status 3" in e.message for e in log.tail())  # noqa: E731
        while deaths() < 2:
            (c,) = sup.counters()
            seen.append((c.bytes_in, c.bytes_out))
            await asyncio.sleep(0.01)
        await until(lambda: sup.counters()[0].bytes_in >= 2 * 300 + 100)
    finally:
        await sup.stop()
    # never backwards (no negative rate), and each child's bytes counted exactly once
    assert all(a <= b for a, b in itertools.pairwise(seen))
    assert (600, 60) in seen  # two dead children's last reports, nothing from the third yet
    assert set(seen) <= {(0, 0), (100, 10), (300, 30), (400, 40), (600, 60), (700, 70)}
    events = [e for e in log.tail() if e.source == "pipe:web"]
    assert any(e.level is Level.WARNING and "restarting in 0.5 s" in e.message for e in events)
    assert any(e.level is Level.WARNING and "restarting in 1 s" in e.message for e in events)
    assert any(e.level is Level.INFO and "restarted" in e.message for e in events)


async def test_a_child_that_cannot_listen_is_reported_down_with_its_reason(tmp_path: Path) -> None:
    error = "cannot listen on 127.0.0.1:8080: Address already in use (pick another port)"
    python = fake_python(tmp_path, report(0, 0, error=error) + "exit 2\n")
    log = EventLog()
    sup = PipeSupervisor([pipe()], log, python=python)
    await sup.start()
    try:
        await until(lambda: any(e.level is Level.ERROR for e in log.tail()))
        (c,) = sup.counters()
    finally:
        await sup.stop()
    assert not c.up
    assert c.error is not None and "Address already in use" in c.error
    assert (c.name, c.listen, c.target) == ("web", "127.0.0.1:8080", "example.org:8080")


async def test_child_events_reach_the_alert_log(tmp_path: Path) -> None:
    message = "client 127.0.0.1:5000 closed: cannot reach target example.org:80: refused"
    python = fake_python(tmp_path, report(0, 0, events=[message]) + "exec cat >/dev/null\n")
    log = EventLog()
    sup = PipeSupervisor([pipe()], log, python=python)
    await sup.start()
    try:
        await until(lambda: any(e.message == message for e in log.tail()))
        (c,) = sup.counters()
    finally:
        await sup.stop()
    assert c.up and c.error is None
    assert [e.source for e in log.tail() if e.message == message] == ["pipe:web"]


async def test_stop_ends_children_that_ignore_stdin(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "echo $$ > " + str(tmp_path / "pid") + "\n" + report(1, 1)
                         + "trap '' TERM\nexec sleep 60\n")  # fmt: skip
    sup = PipeSupervisor([pipe()], EventLog(), python=python)
    await sup.start()
    await until(lambda: sup.counters()[0].up)
    started = time.monotonic()
    await sup.stop()
    pid = int((tmp_path / "pid").read_text())
    assert time.monotonic() - started < 5
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


async def test_child_argv_carries_the_settings(tmp_path: Path) -> None:
    argv_file = tmp_path / "argv"
    python = fake_python(
        tmp_path, f'echo "$@" > {argv_file}\n' + report(0, 0) + "exec cat >/dev/null\n"
    )
    m = pipe(listen="::1", target_port=80, shape_in=100, max_connections=7)
    sup = PipeSupervisor([m], EventLog(), python=python)
    await sup.start()
    try:
        await until(argv_file.exists)
        await until(lambda: "--control" in argv_file.read_text())
    finally:
        await sup.stop()
    argv = argv_file.read_text().split()
    flags = {flag: argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag.startswith("--")}
    assert argv[:2] == ["-m", "bwmon.core.pipes.child"]
    assert flags["--listen"] == "::1" and flags["--port"] == "8080"
    assert flags["--target-host"] == "example.org" and flags["--target-port"] == "80"
    assert flags["--shape-in"] == "100.0" and flags["--max-connections"] == "7"
    assert "--shape-out" not in flags
    assert "--control" in argv and flags["--parent-death"].isdigit()
