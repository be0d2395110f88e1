"""`bwmon serve` behaves as a daemon under systemd: SIGHUP reloads the configuration, log lines
carry journald priorities when stderr is the journal, and `general.log_level` drops the rest.

systemd is not needed: it tells a service its stderr is the journal by `JOURNAL_STREAM=dev:ino`
of that stream, which the test sets for a file it reads back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, TRAFFIC
from tests.helpers.netns import NetNS

HTTP_PORT = 9184
SINK_PORT = 5011
CONFIG = """\
[general]
interval = 0.25
log_level = "info"
[[groups]]
name = "{name}"
patterns = ["--tag daemon-gen "]
"""


def write_same_size_and_time(path: Path, text: str) -> None:
    """Change the file so that the reloader's poll (mtime and size) cannot see it: only a
    SIGHUP makes bwmon read it."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def serve(ns: NetNS, config: Path, stderr_file: Path, journal: bool) -> subprocess.Popen[str]:
    handle = stderr_file.open("w")
    st = os.fstat(handle.fileno())
    env = {k: v for k, v in os.environ.items() if not k.startswith("BWMON_")}
    env.update(BWMON_GENERAL__EBPF="off",
               JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}" if journal else f"{st.st_dev}:1")
    try:
        return ns.popen([sys.executable, "-m", "bwmon", "serve", "--config", str(config),
                         "--http", f"127.0.0.1:{HTTP_PORT}"], cwd=REPO, env=env,
                        stdout=subprocess.DEVNULL, stderr=handle, text=True)
    finally:
        handle.close()


def fetch(ns: NetNS, path: str) -> str | None:
    return ns.get(f"http://127.0.0.1:{HTTP_PORT}{path}")


def wait_for(what: str, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(0.2)


def app_names(ns: NetNS) -> set[str]:
    text = fetch(ns, "/api/v1/snapshot")
    return {a["name"] for a in json.loads(text)["apps"]} if text else set()


@pytest.mark.privileged
def test_sighup_reloads_and_the_journal_gets_priorities(tmp_path: Path) -> None:
    config = tmp_path / "bwmon.toml"
    config.write_text(CONFIG.format(name="befor1"))
    log = tmp_path / "stderr"
    with NetNS() as ns:
        sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", str(SINK_PORT)],
                        stdout=subprocess.PIPE, text=True)
        agent = serve(ns, config, log, journal=True)
        client = None
        try:
            assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
            wait_for("answer", lambda: fetch(ns, "/api/v1/snapshot") is not None)
            client = ns.popen([sys.executable, TRAFFIC, "client", "--tag", "daemon-gen",
                               "--host", "127.0.0.1", "--port", str(SINK_PORT), "--send",
                               "50000", "--hold", "30"], stdout=subprocess.DEVNULL)
            wait_for("group befor1", lambda: "befor1" in app_names(ns))

            write_same_size_and_time(config, CONFIG.format(name="after1"))
            time.sleep(2.5)  # the poll (every 2 s) would have applied a change it could see
            assert "after1" not in app_names(ns)
            agent.send_signal(signal.SIGHUP)
            wait_for("group after1 after SIGHUP", lambda: "after1" in app_names(ns))
            assert agent.poll() is None  # SIGHUP reloads; it does not stop the agent

            write_same_size_and_time(config, CONFIG.format(name="after1").replace(
                "interval = 0.25", "interval = 'x!'"))
            agent.send_signal(signal.SIGHUP)  # a broken file: a warning, settings kept
            wait_for("warning", lambda: "not reloaded" in log.read_text())
            assert "after1" in app_names(ns) and agent.poll() is None
        finally:
            agent.send_signal(signal.SIGTERM)
            status = agent.wait(timeout=20)
            for proc in (client, sink):
                if proc is not None:
                    proc.kill()
                    proc.wait()
    lines = log.read_text().splitlines()
    assert status == 0, lines
    assert any(ln.startswith("<6>bwmon: serving http://127.0.0.1:") for ln in lines), lines
    assert any(ln.startswith("<6>bwmon: info: config: settings reloaded") for ln in lines)
    warning = [ln for ln in lines if "not reloaded" in ln]
    assert len(warning) == 1 and warning[0].startswith("<4>bwmon: warning: config: "), lines
    assert "general.interval" in warning[0]
    assert lines[-1] == "<6>bwmon: stopped"
    assert all(ln.startswith(("<3>", "<4>", "<6>")) for ln in lines), lines


@pytest.mark.privileged
def test_plain_stderr_has_no_prefixes_and_log_level_drops_info(tmp_path: Path) -> None:
    config = tmp_path / "bwmon.toml"
    config.write_text(CONFIG.format(name="quiet1").replace('"info"', '"warning"'))
    log = tmp_path / "stderr"
    with NetNS() as ns:
        agent = serve(ns, config, log, journal=False)  # JOURNAL_STREAM names another file
        try:
            wait_for("answer", lambda: fetch(ns, "/api/v1/snapshot") is not None)
            config.write_text(config.read_text().replace("interval = 0.25", "interval = -1"))
            agent.send_signal(signal.SIGHUP)
            wait_for("warning", lambda: "not reloaded" in log.read_text())
        finally:
            agent.send_signal(signal.SIGTERM)
            status = agent.wait(timeout=20)
    lines = log.read_text().splitlines()
    assert status == 0
    assert lines and all(ln.startswith("bwmon: warning: ") for ln in lines), lines
