"""The fleet kit against a real Prometheus server (Debian's `prometheus`).

Two `bwmon serve` agents in two namespaces: A on its loopback, B on a veth address (so with
the token, as a fleet runs it). Prometheus runs in A and scrapes both every second, with the
rules `bwmon config export-rules` generated from the agents' bwmon.toml (checked by promtool
first). B's client sends well above the rule's threshold, A's well below: the alert fires for
B's client only, then clears once the traffic stops. Every query of the Grafana dashboard in
contrib/ is valid PromQL and the two application panels find the traffic.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, TRAFFIC
from tests.helpers.netns import NetNS, link

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

AGENT_PORT = 9184
PROM_PORT = 9090
SINK_PORT = 5021
TOKEN = "fleet-test-token"
DASHBOARD = REPO / "contrib" / "grafana-bwmon.json"
BWMON_TOML = """\
[general]
interval = 0.25
[[groups]]
name = "fleet-client"
patterns = ['traffic\\.py client']
[[groups]]
name = "fleet-sink"
patterns = ['traffic\\.py sink']
[[alerts]]
name = "client budget"
match = "client"
out_threshold = 100
window = 2
"""
PROMETHEUS_YML = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [{rules}]
scrape_configs:
  - job_name: bwmon
    authorization:
      type: Bearer
      credentials_file: {token}
    static_configs:
      - targets: ["127.0.0.1:{port}", "{b}:{port}"]
"""


def tool(name: str) -> str:
    found = shutil.which(name)
    assert found is not None, f"{name} missing: ./dev installs the Debian package prometheus"
    return found


class Fleet:
    def __init__(self, tmp: Path, a: NetNS, b: NetNS) -> None:
        self.a, self.b = a, b
        self.procs: list[subprocess.Popen[str]] = []
        self.stop_file = tmp / "stop-clients"
        _, self.b_addr = link(a, b, index=7)
        config = tmp / "bwmon.toml"
        config.write_text(BWMON_TOML)
        self.rules = tmp / "bwmon-rules.yml"
        done = subprocess.run([sys.executable, "-m", "bwmon", "config", "export-rules",
                               "--config", str(config), "--scrape-interval", "1",
                               "--output", str(self.rules)], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        token = tmp / "token"
        token.write_text(TOKEN)
        prom_config = tmp / "prometheus.yml"
        prom_config.write_text(PROMETHEUS_YML.format(rules=self.rules, token=token,
                                                     port=AGENT_PORT, b=self.b_addr))
        for cmd in (["check", "rules", str(self.rules)], ["check", "config", str(prom_config)]):
            checked = subprocess.run([tool("promtool"), *cmd], capture_output=True, text=True,
                                     timeout=60)
            assert checked.returncode == 0, checked.stdout + checked.stderr
        env = {"BWMON_HTTP__TOKEN": TOKEN, "BWMON_GENERAL__EBPF": "off"}
        for ns, addr in ((a, "127.0.0.1"), (b, self.b_addr)):
            self.start(ns, [sys.executable, TRAFFIC, "sink", "--port", str(SINK_PORT)])
            self.start(ns, ["env", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m",
                            "bwmon", "serve", "--config", str(config), "--http",
                            f"{addr}:{AGENT_PORT}"])
        self.start(a, [tool("prometheus"), f"--config.file={prom_config}",
                       f"--storage.tsdb.path={tmp / 'tsdb'}",
                       f"--web.listen-address=127.0.0.1:{PROM_PORT}"])
        self.until("both targets up", lambda: sorted(
            r["value"][1] for r in self.query("up")) == ["1", "1"], 60)

    def start(self, ns: NetNS, argv: list[str]) -> None:
        self.procs.append(ns.popen(argv, cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, text=True))

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{PROM_PORT}{path}?{urllib.parse.urlencode(params)}"
        page = self.a.get(url)
        if page is None:
            return None
        reply = json.loads(page)
        assert reply["status"] == "success", reply
        return reply["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("/api/v1/query", query=expr)
        return [] if data is None else list(data["result"])

    def firing(self) -> list[dict[str, str]]:
        data = self.api("/api/v1/alerts")
        return [a["labels"] for a in (data or {"alerts": []})["alerts"]
                if a["state"] == "firing"]

    def until(self, what: str, check: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert all(p.poll() is None for p in self.procs), f"a process died before {what}"
            assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
            time.sleep(0.5)

    def client(self, ns: NetNS, host: str, each: int, count: int) -> subprocess.Popen[str]:
        """At most `count` connections of `each` bytes, one every ~0.25 s, until `stop()`."""
        return ns.popen([sys.executable, TRAFFIC, "client", "--tag", "fleet", "--host", host,
                         "--port", str(SINK_PORT), "--send", str(each), "--count", str(count),
                         "--hold", "0.25", "--stop-file", str(self.stop_file)],
                        stdout=subprocess.DEVNULL, text=True)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with NetNS(events=1) as a, NetNS(events=1) as b:
        started = Fleet(tmp_path, a, b)
        try:
            yield started
        finally:
            started.stop()


def test_an_exported_rule_fires_in_prometheus_from_real_traffic(fleet: Fleet) -> None:
    b_instance = f"{fleet.b_addr}:{AGENT_PORT}"
    quiet = fleet.client(fleet.a, "127.0.0.1", 2_000, 40)  # ~8 kB/s out, under 100 kB/s
    busy = fleet.client(fleet.b, "127.0.0.1", 400_000, 40)  # ~1.6 MB/s for 10 s, over it
    fleet.until("the alert firing for B's client", lambda: any(
        a.get("app") == "fleet-client" and a.get("instance") == b_instance
        for a in fleet.firing()))
    firing = fleet.firing()
    assert all(a["instance"] == b_instance and a["app"] == "fleet-client"
               and a["direction"] == "out" and a["rule"] == "client budget"
               for a in firing), firing  # not A's quiet client, not the sink (in, not out)
    # the recorded rate is bytes/s: above 100 kB/s = 102,400 B/s, not 100,000
    rates = fleet.query('bwmon:alert_rate_bytes_per_second{direction="out"}')
    assert any(float(r["value"][1]) > 102_400 for r in rates
               if r["metric"]["instance"] == b_instance), rates

    # every panel query of the dashboard is valid PromQL against this server
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert len(exprs) >= 10
    values = {"$job": ".*", "$instance": b_instance, "$app": "fleet-client",
              "$__rate_interval": "4s"}
    results = {}
    for expr in exprs:
        for name, value in values.items():
            expr = expr.replace(name, value)
        results[expr] = fleet.query(expr)  # a parse error fails in api()
    top = next(r for e, r in results.items() if e.startswith("topk(10"))
    assert "fleet-client" in {r["metric"].get("app") for r in top}, top
    # A's quiet client is in the fleet panel too, once its series has the two samples a rate
    # needs (B's alert can fire before that on a slow machine)
    across = next(e for e in results if e.startswith("sum by (instance, direction)"))
    fleet.until("both agents' clients in the fleet panel", lambda: {
        r["metric"]["instance"] for r in fleet.query(across)} == {"127.0.0.1:9184", b_instance},
        timeout=8)

    fleet.stop_file.touch()  # all seen: the traffic stops (it would within 10 s anyway)
    for proc in (quiet, busy):
        assert proc.wait(timeout=60) == 0
    fleet.until("the alert clearing after the traffic", lambda: not fleet.firing())
