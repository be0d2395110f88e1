"""A secret in a process's argv never reaches an app name or a /metrics label, auto-group off
included, unless `general.cmdline_names` asks for command lines as names (bwmon 1.1's way)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, TRAFFIC
from tests.helpers.netns import NetNS

pytestmark = pytest.mark.privileged

SECRET = "password=hunter2"
HTTP_PORT = 9185
SINK_PORT = 5012
CONFIG = """\
[general]
interval = 0.25
auto_group = false
cmdline_names = {asked}
[[alerts]]
name = "busy-client"
match = "traffic\\\\.py client"
out_threshold = 1
window = 0.5
"""


def fetch(ns: NetNS, path: str) -> str:
    return ns.get(f"http://127.0.0.1:{HTTP_PORT}{path}") or ""


def until(what: str, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(0.2)


def label_values(metrics: str) -> set[str]:
    return {value for family in text_string_to_metric_families(metrics)
            for sample in family.samples for value in sample.labels.values()}


def test_a_secret_in_argv_stays_out_of_names_and_labels(tmp_path: Path) -> None:
    config = tmp_path / "bwmon.toml"
    config.write_text(CONFIG.format(asked="false"))
    with NetNS() as ns:
        sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", str(SINK_PORT)],
                        stdout=subprocess.PIPE, text=True)
        agent = ns.popen([sys.executable, "-m", "bwmon", "serve", "--config", str(config),
                          "--http", f"127.0.0.1:{HTTP_PORT}"], cwd=REPO,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        client = None
        try:
            assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
            until("agent", lambda: fetch(ns, "/api/v1/snapshot"))
            client = ns.popen([sys.executable, TRAFFIC, "client", "--tag", SECRET, "--host",
                               "127.0.0.1", "--port", str(SINK_PORT), "--send", "3000000",
                               "--hold", "60"], stdout=subprocess.DEVNULL)
            name = f"traffic.py[{client.pid}]"  # the process on its own: program[pid]

            def fired() -> bool:  # from the alert log: it stays when the burst is over
                events = json.loads(fetch(ns, "/api/v1/alerts?source=alert") or "{}")
                return any(e["data"].get("app") == name and e["data"].get("event") == "fired"
                           for e in events.get("events", []))
            until("alert on the client's own row", fired)
            until("the alert's series", lambda: any(
                s.name == "bwmon_alert_active" and s.labels["app"] == name
                for family in text_string_to_metric_families(fetch(ns, "/metrics"))
                for s in family.samples))
            metrics = fetch(ns, "/metrics")
            apps = {a["name"] for a in json.loads(fetch(ns, "/api/v1/snapshot"))["apps"]}
            alerts = fetch(ns, "/api/v1/alerts")
            assert SECRET not in metrics and not any(SECRET in v for v in label_values(metrics))
            assert not any(SECRET in a for a in apps), apps
            assert SECRET not in alerts

            # asked for: the command line is the name, secret and all
            config.write_text(CONFIG.format(asked="true"))
            agent.send_signal(signal.SIGHUP)
            until("the command line as a name", lambda: any(
                SECRET in v for v in label_values(fetch(ns, "/metrics"))))
        finally:
            agent.send_signal(signal.SIGTERM)
            _, err = agent.communicate(timeout=20)
            for proc in (client, sink):
                if proc is not None:
                    proc.kill()
                    proc.wait()
    assert agent.returncode == 0 and "Traceback" not in err, err
    assert SECRET not in err.split("settings reloaded")[0]  # the journal had no secret before
