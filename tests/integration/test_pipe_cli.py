"""`bwmon pipe` as a user runs it: live lines, JSON lines, Ctrl-C totals, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.integration.test_pipe_helpers import REPO, Target, exchange, free_port


def bwmon(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bwmon", "pipe", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


def started(proc: subprocess.Popen[str]) -> int:
    """Wait for the 'bwmon pipe: ADDR → TARGET' banner; the port it listens on."""
    assert proc.stderr is not None
    banner = proc.stderr.readline()
    assert banner.startswith("bwmon pipe: "), banner
    return int(banner.split()[2].rsplit(":", 1)[1])


def test_json_lines_and_ctrl_c_final_totals(target: Target) -> None:
    proc = bwmon("0", "127.0.0.1", str(target.port), "--json", "--interval", "0.2")
    port = started(proc)
    got, _ = exchange("127.0.0.1", port, 2000, 300_000)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in out.splitlines()]
    assert proc.returncode == 0 and got == 300_000
    assert lines[-1]["final"] is True
    assert (lines[-1]["in"], lines[-1]["out"]) == (2008, 300_000)
    assert all(line["rate_in"] >= 0 and line["rate_out"] >= 0 for line in lines)
    assert any(line["rate_out"] > 0 for line in lines[:-1]) or len(lines) <= 2
    assert "Traceback" not in err


def test_plain_lines_with_binary_units_when_piped(target: Target) -> None:
    proc = bwmon("0", "localhost", str(target.port), "--interval", "0.2")
    port = started(proc)
    exchange("127.0.0.1", port, 0, 3 * 1024 * 1024)
    assert proc.stdout is not None
    live = [proc.stdout.readline()]
    while "out 3.0 MiB" not in live[-1]:  # a line per interval, until it shows the download
        live.append(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "\r" not in out + "".join(live) and "\x1b" not in out  # no terminal tricks
    assert live[0].startswith("in 0 B (0 B/s)  out 0 B (0 B/s)  connections 0")
    assert out.splitlines()[-1] == "total: in 8 B, out 3.0 MiB, 1 connection served"


def test_busy_port_is_one_clean_line_and_status_2() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        proc = bwmon(str(busy.getsockname()[1]), "127.0.0.1", "80")
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert err.count("\n") == 1 and "Address already in use" in err and "another port" in err


def test_unknown_host_is_one_clean_line_and_status_2() -> None:
    proc = bwmon(str(free_port()), "no-such-host.invalid", "80")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.count("\n") == 1 and "cannot resolve target host" in err


def test_remote_port_defaults_to_the_local_port(target: Target) -> None:
    proc = bwmon(str(target.port), "127.0.0.1", "--listen", "::1", "--interval", "0.2")
    assert started(proc) == target.port
    got, _ = exchange("::1", target.port, 1, 2)  # [::1]:P → 127.0.0.1:P
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and got == 2
    assert out.splitlines()[-1] == "total: in 9 B, out 2 B, 1 connection served"
