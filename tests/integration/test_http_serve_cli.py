"""`bwmon serve` as a user runs it: refusals are one line, the agent serves and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BWMON_")}
    full_env.update({"BWMON_GENERAL__EBPF": "off", "BWMON_GENERAL__INTERVAL": "0.2"})
    full_env.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "bwmon", "serve", *args], cwd=REPO,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def refusal(*args: str) -> str:
    proc = serve(*args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_serve_without_an_address_says_how_to_give_one() -> None:
    assert "--http" in refusal()


def test_serve_off_loopback_without_a_token_refuses_before_starting() -> None:
    err = refusal("--http", "0.0.0.0:9")
    assert "BWMON_HTTP__TOKEN" in err and "http.token" in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:  # not listening yet
        return 0


@pytest.mark.privileged
def test_serve_runs_with_a_token_from_the_environment_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = serve("--http", f"127.0.0.1:{port}", env={"BWMON_HTTP__TOKEN": "from-env"})
    url = f"http://127.0.0.1:{port}/api/v1/snapshot"
    try:
        deadline = time.monotonic() + 30
        while fetch(url, "from-env") != 200:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "bwmon serve did not answer within 30 s"
            time.sleep(0.2)
        assert fetch(url) == 401  # a token, once set, is required even on loopback
        assert fetch(f"http://127.0.0.1:{port}/metrics", "from-env") == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"serving http://127.0.0.1:{port}/" in err and "bwmon: stopped" in err
    assert "Traceback" not in err
