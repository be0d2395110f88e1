"""Command-line manners with real pipes: a reader that stops reading (`| head`) ends bwmon
quietly, with status 0 and no traceback; an unreadable HOME gives one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.netns import NetNS

BWMON = [sys.executable, "-m", "bwmon"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.mark.privileged
@pytest.mark.parametrize("command", ["monitor", "run"])
def test_json_lines_into_head_end_quietly(command: str) -> None:
    """`bwmon monitor --json | head -c 10`: head exits after 10 bytes, bwmon follows."""
    with NetNS() as ns:
        bwmon = ns.popen([*BWMON, command, "--json", "--interval", "0.2"], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        head = subprocess.Popen(["head", "-c", "10"], stdin=bwmon.stdout, stdout=subprocess.PIPE)
        assert bwmon.stdout is not None and bwmon.stderr is not None
        bwmon.stdout.close()  # only head reads it now
        out, _ = head.communicate(timeout=30)
        try:
            status = bwmon.wait(timeout=30)  # it stops by itself once head is gone
        finally:
            bwmon.kill()
        err = bwmon.stderr.read().decode()
    assert len(out) == 10 and out.startswith(b"{")
    assert status == 0 and "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.parametrize("argv", [["doctor", "--json"], ["doctor"], ["config", "show"],
                                  ["--help"], ["monitor", "--help"]])
def test_a_closed_stdout_ends_quietly(argv: list[str]) -> None:
    """The reader is gone before bwmon writes a byte."""
    proc = subprocess.Popen([*BWMON, *argv], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert "Traceback" not in err.decode() and "Exception ignored" not in err.decode(), err
    assert proc.returncode == 0


def test_bwmon_tui_help_into_a_closed_pipe() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bwmon.tui.main", "--help"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and not err, err


@pytest.mark.privileged
@pytest.mark.parametrize("argv", [["config", "show"], ["monitor", "--count", "1"],
                                  ["doctor", "--json"]])
def test_an_unreadable_home_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    """HOME belongs to another user and is mode 0700. Root would read it anyway, so this root
    runs with no capabilities at all (setpriv), as an ordinary user would meet it."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, 65534, 65534)
    env = {**ENV, "HOME": str(home)}
    env.pop("XDG_CONFIG_HOME", None)
    done = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", *BWMON, *argv],
                          env=env, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(home) in lines[0] and "--config" in lines[0], done.stderr
