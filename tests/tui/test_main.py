"""The bwmon-tui command: user errors are one line and status 2; in a real terminal it draws,
quits on q, and leaves cleanly on SIGHUP (the SSH session dropped) without leftovers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from typing import Any

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


def test_every_line_of_a_config_with_several_mistakes_names_bwmon_tui(tmp_path: Any) -> None:
    """Found trying bwmon-tui with a config full of mistakes: the first line said
    "bwmon-tui:", every other one "bwmon:", as if another program had spoken."""
    config = tmp_path / "bwmon.toml"
    config.write_text('[general]\ninterval = "fast"\nlookbak = true\n'
                      'group_by = ["containers"]\n')
    result = run_cli("--config", str(config))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("bwmon-tui: ") for line in lines), lines


# in a real pseudo-terminal: run once, on python3 (the marker's rule; not the gc test below,
# whose subject is the interpreter's own collection at exit)
@pytest.mark.terminal
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


@pytest.mark.terminal
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


@pytest.mark.parametrize("stdin", [{"stdin": subprocess.DEVNULL}, {"input": ""}])
def test_without_a_terminal_it_says_so_instead_of_writing_escape_codes(
        stdin: dict[str, Any]) -> None:
    """Issue 23, item 10: run from a script, a pipe or `ssh host bwmon-tui` (no -t), it
    wrote its screen's escape codes into the pipe (and waited for keys that never came)."""
    result = subprocess.run([sys.executable, "-m", "bwmon.tui.main", "--demo"], text=True,
                            capture_output=True, timeout=60, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), **stdin)
    assert result.returncode == 2
    assert "\x1b" not in result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bwmon-tui: needs a terminal"), lines
    assert "ssh -t" in lines[0] and "bwmon monitor" in lines[0]


def test_quitting_skips_the_collection_over_the_whole_heap() -> None:
    """Issue 23, item 10: q took ~1.7 s on a loaded machine; most of the time after the screen
    was down went to the interpreter's final garbage collection over every object. Measured
    by what that collection reports (gc.DEBUG_STATS), not by a clock."""
    code = ("import gc, runpy, sys; gc.set_debug(gc.DEBUG_STATS); sys.argv[0] = 'bwmon-tui'; "
            "runpy.run_module('bwmon.tui.main', run_name='__main__')")
    app = PtyApp(["--demo"], size=(80, 24), command=(sys.executable, "-c", code))
    try:
        assert app.wait_for(b"firefox")
        app.read_for(1.0)
        start = len(app.output)
        app.send(b"q")
        assert app.wait_exit() == 0
        after = app.output[start:].decode(errors="replace")
    finally:
        app.close()
    counts = [sum(map(int, m.split())) for m in
              re.findall(r"objects in each generation: ([0-9 ]+)", after)]
    frozen = [int(n) for n in re.findall(r"objects in permanent generation: (\d+)", after)]
    assert counts and frozen, after[-500:]
    assert max(counts[-3:]) * 10 < frozen[-1], (counts[-3:], frozen[-1])
