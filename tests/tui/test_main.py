"""The bwmon-tui command: user errors are one line and status 2; in a real terminal it draws,
quits on q, and leaves cleanly on SIGHUP (the SSH session dropped) without leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.helpers.terminal import REPO, PtyApp


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bwmon.tui.main", *args], text=True,
                          capture_output=True, timeout=60, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


@pytest.mark.parametrize(("args", "says"), [
    (["--interval", "-1"], "--interval"),
    (["--config", "/nonexistent/bwmon.toml"], "/nonexistent/bwmon.toml"),
    (["--include", "fire(fox"], "invalid regular expression"),
    (["--demo", "0"], "--demo"),
])
def test_user_errors_are_one_line_and_status_2(args: list[str], says: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]  # argparse puts its usage above
    assert last.startswith("bwmon-tui: ") and says in last


def test_draws_quits_on_q_and_leaves_on_sighup() -> None:
    app = PtyApp(["--demo", "5", "--no-mouse"], size=(80, 24))
    try:
        assert app.wait_for(b"firefox"), app.output[-2000:]
        assert b"\x1b[?1000h" not in app.output  # --no-mouse: no mouse reporting asked
        app.send(b"q")
        assert app.wait_exit() == 0
    finally:
        app.close()
    app = PtyApp(["--demo", "5"], size=(120, 40))
    try:
        assert app.wait_for(b"firefox")
        os.killpg(app.proc.pid, signal.SIGHUP)
        assert app.wait_exit() == 0, "no clean exit after SIGHUP"
        assert b"Traceback" not in app.output
    finally:
        app.close()


def test_no_redraws_between_snapshots() -> None:
    """Refresh is driven by snapshots: with none arriving, the terminal receives nothing."""
    app = PtyApp(["--demo", "20"], size=(120, 40), env={"BWMON_GENERAL__INTERVAL": "60"})
    try:
        assert app.wait_for(b"firefox")
        app.read_for(1.5)  # the first frame's tail
        assert app.read_for(3.0) < 100
        app.send(b"3")  # a key press redraws at once, then quiet again
        assert app.read_for(1.0) > 500
        assert app.read_for(2.0) < 100
    finally:
        app.close()
