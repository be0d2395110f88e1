"""Notification commands really run: environment, placeholders, failures, timeouts, bursts."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bwmon.core.alerts.monitor import AlertMonitor
from bwmon.core.alerts.notifier import Notifier
from bwmon.core.alerts.rules import AlertEvent, EventKind
from bwmon.core.config.settings import AlertSettings, NotifySettings
from bwmon.core.eventlog import EventLog
from bwmon.core.feed import ManualFeed
from bwmon.core.model import Level
from tests.helpers.factories import app_row, snapshot

T0 = 1_700_000_000.0

# A tiny "user command": writes its argv and the BWMON_* environment to the file in argv[1].
RECORDER = (
    "import json, os, sys; "
    "json.dump({'argv': sys.argv[2:], 'env': {k: v for k, v in os.environ.items() "
    "if k.startswith('BWMON_')}}, open(sys.argv[1], 'w'))"
)


def event(app: str = "wget", kind: EventKind = "fired", average: float = 150 * 1024.0
          ) -> AlertEvent:
    return AlertEvent("downloads", app, "in", kind, average, 100 * 1024.0, 5.0, T0)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


class Ticker:
    """A stand-in tick loop: wakes every `period` s and records how late each wake-up was."""

    def __init__(self, period: float = 0.05) -> None:
        self.period = period
        self.lateness: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + self.period
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.lateness.append(loop.time() - due)
            due += self.period

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def notify_events(log: EventLog) -> list[dict[str, str]]:
    return [dict(e.data) | {"level": e.level.value, "message": e.message}
            for e in log.tail() if e.source == "notify"]


async def test_command_sees_environment_and_placeholders(tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    log = EventLog()
    notifier = Notifier(NotifySettings(), log)
    argv = [sys.executable, "-c", RECORDER, str(out), "{app} is {direction}", "{average}",
            "{threshold:.1f}", "{event}/{rule}/{window}", "{time}", "{nosuch}", "{unclosed", "{0}"]
    notifier.notify(event(), argv, timeout=10)
    await notifier.close(grace=10)
    seen = json.loads(out.read_text())
    assert seen["argv"][:4] == ["wget is in", "153600", "102400.0", "fired/downloads/5"]
    assert seen["argv"][4].startswith("2023-11-1")  # ISO local time of T0
    assert seen["argv"][5:] == ["{nosuch}", "{unclosed", "{0}"]
    env = seen["env"]
    assert env["BWMON_APP"] == "wget"
    assert env["BWMON_ALERT_NAME"] == "downloads"
    assert env["BWMON_DIRECTION"] == "in"
    assert env["BWMON_THRESHOLD"] == "102400"
    assert env["BWMON_AVERAGE"] == "153600"
    assert env["BWMON_WINDOW"] == "5"
    assert env["BWMON_EVENT"] == "fired"
    assert env["BWMON_TIME"] == seen["argv"][4]
    [outcome] = notify_events(log)
    assert outcome["level"] == "info" and outcome["status"] == "0"
    assert float(outcome["duration"]) > 0


async def test_arguments_are_not_interpreted_by_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    notifier = Notifier(NotifySettings(), EventLog())
    evil = event(app="x; touch pwned; $(id)")
    notifier.notify(evil, [sys.executable, "-c", RECORDER, str(out), "{app}"], timeout=10)
    await notifier.close(grace=10)
    assert json.loads(out.read_text())["argv"] == ["x; touch pwned; $(id)"]
    assert not (Path.cwd() / "pwned").exists()


async def test_failing_command_reports_status_and_start_of_stderr() -> None:
    log = EventLog()
    notifier = Notifier(NotifySettings(stderr_bytes=40), log)
    script = "import sys; sys.stderr.write('mail: cannot reach relay ' + 'x' * 5000); sys.exit(3)"
    notifier.notify(event(), [sys.executable, "-c", script], timeout=10)
    await notifier.close(grace=10)
    [outcome] = notify_events(log)
    assert outcome["level"] == "warning"
    assert outcome["status"] == "3"
    assert "exit status 3" in outcome["message"]
    assert "mail: cannot reach relay" in outcome["message"]
    assert len(outcome["stderr"]) == 40


async def test_missing_command_is_logged_not_raised() -> None:
    log = EventLog()
    notifier = Notifier(NotifySettings(), log)
    notifier.notify(event(), ["/nonexistent/bwmon-notify", "{app}"], timeout=5)
    await notifier.close(grace=5)
    [outcome] = notify_events(log)
    assert outcome["level"] == "error"
    assert "not found" in outcome["message"] and "/nonexistent/bwmon-notify" in outcome["message"]


async def test_hanging_command_is_killed_at_timeout_while_ticks_keep_pace(tmp_path: Path) -> None:
    log = EventLog()
    notifier = Notifier(NotifySettings(), log)
    pidfile = tmp_path / "pid"
    # The command starts a grandchild that hangs too: the whole group must die.
    hang = f"sleep 60 & echo $! > {pidfile}; sleep 60"
    with Ticker() as ticker:
        started = time.monotonic()
        notifier.notify(event(), ["sh", "-c", hang], timeout=0.5)
        await until(lambda: bool(notify_events(log)))
        took = time.monotonic() - started
    [outcome] = notify_events(log)
    assert outcome["status"] == "timeout"
    assert "timeout" in outcome["message"]
    assert 0.5 <= took < 3.0
    await until(lambda: gone(int(pidfile.read_text())), 3)
    assert max(ticker.lateness) < 0.25, ticker.lateness


async def test_fifty_simultaneous_alerts_do_not_stall_the_loop(tmp_path: Path) -> None:
    log = EventLog()
    rule = AlertSettings(name="burst", match=".", in_threshold=1,
                         command=["sh", "-c", f"sleep 0.1; echo $BWMON_APP >> {tmp_path}/ran"])
    monitor = AlertMonitor([rule], NotifySettings(max_concurrent=4), log)
    feed = ManualFeed()
    feed.subscribe(monitor.on_snapshot)
    apps = [app_row(f"app{i}", 1e6) for i in range(50)]
    with Ticker() as ticker:
        feed.push(snapshot(0, apps))
        begin = time.perf_counter()
        feed.push(snapshot(1, apps))
        publish_took = time.perf_counter() - begin
        await until(lambda: len(notify_events(log)) == 50, timeout=30)
    await monitor.close()
    assert publish_took < 0.1
    assert sorted((tmp_path / "ran").read_text().split()) == sorted(a.name for a in apps)
    assert monitor.notifier.peak == 4
    assert max(ticker.lateness) < 0.25, ticker.lateness
    assert [e.level for e in log.tail() if e.source == "alert"] == [Level.WARNING] * 50


async def test_a_flood_beyond_the_queue_is_dropped_with_a_log_line(tmp_path: Path) -> None:
    log = EventLog(capacity=5000)
    notifier = Notifier(NotifySettings(max_concurrent=1), log, max_queued=3)
    for i in range(10):
        notifier.notify(event(app=f"a{i}"), ["true"], timeout=5)
    assert notifier.pending == 3 and notifier.dropped == 7
    await notifier.close(grace=10)
    drops = [e for e in log.tail() if "dropped" in e.message]
    assert len(drops) == 7
    assert len([e for e in notify_events(log) if e.get("status") == "0"]) == 3


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its parent counts as ended)."""
    try:
        return "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True


async def test_a_grandchild_in_its_own_session_dies_at_the_timeout_too(tmp_path: Path) -> None:
    """Killing the command's process group misses what left it (setsid, a daemonising
    script): every descendant still below the command is killed as well."""
    log = EventLog()
    notifier = Notifier(NotifySettings(), log)
    pidfile = tmp_path / "pid"
    notifier.notify(event(), ["sh", "-c", f"setsid sleep 60 & echo $! > {pidfile}; sleep 60"],
                    timeout=0.5)
    await until(lambda: bool(notify_events(log)))
    assert [e["status"] for e in notify_events(log)] == ["timeout"]
    await until(lambda: gone(int(pidfile.read_text())), 3)


async def test_close_kills_commands_still_running() -> None:
    log = EventLog()
    notifier = Notifier(NotifySettings(), log)
    notifier.notify(event(), ["sleep", "60"], timeout=60)
    await until(lambda: notifier.running == 1)
    begin = time.monotonic()
    await notifier.close(grace=0.2)
    assert time.monotonic() - begin < 3
    assert notifier.pending == 0
    assert [e["status"] for e in notify_events(log)] == ["killed"]
