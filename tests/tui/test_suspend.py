"""Ctrl+Z suspends bwmon-tui like any terminal program (issue 23, item 5): in a real tmux
(TERM=xterm-256color) with a job-control shell, Ctrl+Z gives the shell back with the terminal
restored (the typed command echoes, the process is stopped), and `fg` brings the whole picture
back."""

from __future__ import annotations

import os
import shutil
import sys
import time

import psutil
import pytest

from tests.helpers.terminal import REPO, Tmux

pytestmark = pytest.mark.terminal


def tui_pid(marker: str) -> int | None:
    """The bwmon-tui started in the shell (its argv carries `marker`)."""
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if marker in cmd and "bwmon.tui.main" in cmd:
            return proc.pid
    return None


def test_ctrl_z_stops_with_the_terminal_restored_and_fg_draws_it_again() -> None:
    if shutil.which("tmux") is None or shutil.which("bash") is None:
        pytest.fail("needs tmux and bash (Debian: tmux bash)", pytrace=False)
    shell = ("env -u COLUMNS -u LINES TERM=xterm-256color PS1='shell$ ' "
             "bash --norc --noprofile -i")
    marker = f"--interval={0.5 + os.getpid() % 97 / 1000:.3f}"  # tells this run's process apart
    with Tmux(f"bwmon-suspend-{os.getpid()}", shell, (80, 24)) as tmux:
        tmux.wait(lambda s: "shell$" in s, timeout=10)
        tmux.keys(f"cd {REPO} && {sys.executable} -m bwmon.tui.main --demo 12 {marker}", "Enter")
        tmux.wait(lambda s: "firefox" in s and "q Quit" in s, timeout=60)
        pid = tui_pid(marker)
        assert pid is not None
        tmux.keys("C-z")
        try:
            screen = tmux.wait(lambda s: "Stopped" in s and s.rstrip().endswith("shell$"),
                               timeout=10)
        except AssertionError as exc:
            raise AssertionError(f"Ctrl+Z did not give the shell back: {exc}") from None
        assert "firefox" not in screen  # the main screen is left, the shell's screen is back
        assert psutil.Process(pid).status() == psutil.STATUS_STOPPED
        tmux.keys("echo typed-$((6*7))", "Enter")  # cooked mode again: echo and line editing
        tmux.wait(lambda s: "echo typed-$((6*7))" in s and "typed-42" in s, timeout=10)
        tmux.keys("fg", "Enter")
        screen = tmux.wait(lambda s: "firefox" in s and "q Quit" in s, timeout=20)
        time.sleep(1.0)  # a full frame, not a partial repaint
        rows = tmux.screen().splitlines()
        assert rows[0].lstrip().startswith("In "), rows[0]
        assert "─" * 80 in rows, "\n".join(rows)
        assert rows[-1].startswith("q Quit"), rows[-1]
        assert psutil.Process(pid).status() != psutil.STATUS_STOPPED
        tmux.keys("q")
        tmux.wait(lambda s: s.rstrip().endswith("shell$"), timeout=20)
        assert tui_pid(marker) is None
