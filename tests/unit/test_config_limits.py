"""Values that look like numbers but are none a setting can hold (issue 25, items 6 and 12):
inf, nan, negative shaping limits, `true` for a number, a phantom INI line, port 0 to connect to.

Each is checked through the command a user runs (`bwmon config check`, `bwmon pipe`), reading
its one-line message on stderr."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bwmon.cli import main
from bwmon.core.pipes.shaping import TokenBucket

LIMIT = "expected a finite number of kB/s greater than 0, found {}"


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    status = main(["config", "check", *args])
    return status, capsys.readouterr().err.splitlines()


PIPE_TOML = '[[monitors]]\nname = "p"\ntype = "pipe"\nport = 9000\ntarget_host = "127.0.0.1"\n'
PIPE_INI = "[P]\ntype = pipe\nport = 9000\nnewhost = 127.0.0.1\n"


@pytest.mark.parametrize("value", ["inf", "nan", "-5", "-inf"])
def test_a_shaping_limit_must_be_finite_and_positive_everywhere_with_one_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    toml = tmp_path / "bwmon.toml"
    toml.write_text(PIPE_TOML + f"shape_in = {value}\n")
    assert check(capsys, "--config", str(toml)) == (
        2, [f"bwmon: {toml}:6: monitors[0].shape_in: {LIMIT.format(value)}"])
    ini = tmp_path / "monitors.cfg"
    ini.write_text(PIPE_INI + f"shape_threshold = {value}\n")
    assert check(capsys, "--monitor-config", str(ini)) == (
        2, [f"bwmon: {ini}:5: [P] shape_threshold: {LIMIT.format(value)}"])
    for argv in (["-m", "bwmon", "pipe", f"--shape-in={value}", "9000", "127.0.0.1"],
                 ["-m", "bwmon.core.pipes.child", "--port", "9000", "--target-host",
                  "127.0.0.1", f"--shape-out={value}"]):
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=30)
        assert done.returncode == 2
        assert done.stderr.splitlines()[-1].endswith(f": {LIMIT.format(value)}"), done.stderr
    with pytest.raises(ValueError):
        TokenBucket(float(value) * 1024, 0.0)  # and the bucket itself never takes one


def test_true_is_not_a_number_and_inf_is_no_window_or_timeout(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml = tmp_path / "bwmon.toml"
    toml.write_text('[general]\ninterval = true\n[[alerts]]\nname = "a"\nmatch = "x"\n'
                    "window = inf\ntimeout = nan\n")
    assert check(capsys, "--config", str(toml)) == (2, [
        f"bwmon: {toml}:2: general.interval: expected a finite number greater than 0.05 and "
        "at most 3600, found true",
        f"bwmon: {toml}:6: alerts[0].window: expected a finite number greater than 0, found inf",
        f"bwmon: {toml}:7: alerts[0].timeout: expected a finite number greater than 0, "
        "found nan",
    ])


def test_an_ini_port_out_of_range_is_blamed_on_its_own_line_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini = tmp_path / "monitors.cfg"
    ini.write_text("[P]\ntype = pipe\nport = 70000\nnewhost = 127.0.0.1\n")
    assert check(capsys, "--monitor-config", str(ini)) == (
        2, [f"bwmon: {ini}:3: [P] port: expected an integer from 0 to 65535, found 70000"])


def test_a_pipe_never_connects_to_port_zero(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "bwmon", "pipe", "9000", "127.0.0.1", "0"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith("argument REMOTEPORT: port 0 is outside 1-65535")
    toml = tmp_path / "bwmon.toml"
    toml.write_text(PIPE_TOML.replace("9000", "0"))
    status, err = check(capsys, "--config", str(toml))
    assert status == 2 and len(err) == 1 and "needs target_port" in err[0], err
