"""Notification commands that leave a process behind, and what they may see (issue 25, items
9, 10 and 11): the command's own exit ends the wait, shutdown while one runs is quiet, and no
secret of bwmon's environment reaches it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bwmon.core.alerts.notifier import Notifier
from bwmon.core.config.settings import NotifySettings
from bwmon.core.eventlog import EventLog
from tests.helpers.hostile import named_sender, socat_sink
from tests.helpers.netns import NetNS
from tests.integration.test_notifier import event, until

REPO = Path(__file__).resolve().parents[2]


def leave_behind(pid_file: Path) -> list[str]:
    """`sh -c 'setsid sleep 300 & echo started'`: exits at once, its child keeps stderr open."""
    return ["sh", "-c", f"setsid sleep 300 & echo $! > {pid_file}; echo started >&2"]


def kill_left(pid_file: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


async def test_the_commands_own_exit_ends_the_wait(tmp_path: Path) -> None:
    """It was reported killed at the 30 s timeout and held a concurrency slot all along."""
    log = EventLog()
    notifier = Notifier(NotifySettings(max_concurrent=1), log)
    pid_file = tmp_path / "left.pid"
    try:
        started = time.monotonic()
        notifier.notify(event(), leave_behind(pid_file), 30.0)
        await until(lambda: notifier.pending == 0, timeout=5)
        assert time.monotonic() - started < 5
        (done,) = log.tail()
        assert done.message.endswith(": ok"), done.message
        assert dict(done.data)["status"] == "0"
        assert pid_file.exists() and os.path.exists(f"/proc/{pid_file.read_text().strip()}")
    finally:
        kill_left(pid_file)
        await notifier.close()


async def test_a_command_gets_a_clean_environment(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """BWMON_HTTP__TOKEN (and any other secret bwmon runs with) stays out; the event's BWMON_*
    variables and what a program needs to run (PATH, locale) are there."""
    monkeypatch.setenv("BWMON_HTTP__TOKEN", "s3cret-token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-secret")
    monkeypatch.setenv("LC_TIME", "C.UTF-8")
    out = tmp_path / "env.json"
    log = EventLog()
    notifier = Notifier(NotifySettings(), log)
    notifier.notify(event(), [sys.executable, "-c", "import json, os, sys; "
                              "json.dump(dict(os.environ), open(sys.argv[1], 'w'))", str(out)], 10)
    await until(lambda: notifier.pending == 0)
    env = json.loads(out.read_text())
    assert "s3cret-token" not in json.dumps(env) and "also-secret" not in json.dumps(env)
    assert env["BWMON_APP"] == "wget" and env["PATH"] == os.environ["PATH"]
    assert env["LC_TIME"] == "C.UTF-8"
    assert {k for k in env if k.startswith("BWMON_")} == {
        "BWMON_ALERT_NAME", "BWMON_APP", "BWMON_DIRECTION", "BWMON_THRESHOLD", "BWMON_AVERAGE",
        "BWMON_WINDOW", "BWMON_TIME", "BWMON_EPOCH", "BWMON_EVENT"}


@pytest.mark.privileged
def test_sigterm_while_a_command_runs_ends_quietly(tmp_path: Path) -> None:
    """`bwmon run` stopped by SIGTERM while notification commands (which left a process
    holding their stderr) ran printed "RuntimeError: Event loop is closed" tracebacks."""
    pid_file = tmp_path / "left.pid"
    config = tmp_path / "bwmon.toml"
    command = json.dumps(leave_behind(pid_file))
    config.write_text('[[alerts]]\nname = "any"\nmatch = "."\nout_threshold = 0.001\n'
                      f"window = 0.5\ncooldown = 1\ncommand = {command}\n")
    with NetNS() as ns:
        socat_sink(ns, 6001)
        named_sender(ns, b"sender", 6001)
        run = ns.popen([sys.executable, "-m", "bwmon", "run", "--config", str(config),
                        "--interval", "0.5"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        try:
            deadline = time.monotonic() + 30
            while not pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert pid_file.exists(), "no notification command ran"
            run.send_signal(signal.SIGTERM)
            _, err = run.communicate(timeout=20)
        finally:
            kill_left(pid_file)
    assert run.returncode == 0, err
    assert "Traceback" not in err and "Event loop is closed" not in err, err


def test_the_manuals_examples_take_no_options_from_an_app_name() -> None:
    """With `--no-auto-group` an app is named by its argv: `-nevil.invalid` made the manual's
    `logger` example send to the host evil.invalid. Every example command, in the manual and in
    bwmon.toml.example, puts `--` before an argument that starts with a placeholder."""
    import ast
    import re

    from bwmon.core.alerts.notifier import expand, placeholders

    texts = [(REPO / "docs" / "sections" / "alerts.html").read_text(),
             (REPO / "bwmon.toml.example").read_text()]
    found = [ast.literal_eval(m[1]) for text in texts
             for m in re.finditer(r"command = (\[.+\])", text.replace("&gt;", ">"))]
    examples = [argv for argv in found if argv]
    assert len(examples) >= 5
    values = placeholders(event(app="-nevil.invalid"))
    for argv in examples:
        expanded = [expand(a, values) for a in argv]
        ends = argv.index("--") if "--" in argv else len(argv)
        for i, (written, arg) in enumerate(zip(argv, expanded, strict=True)):
            if written.startswith("{") and arg.startswith("-"):
                assert i > ends, f"{argv}: {arg!r} would be read as an option"
