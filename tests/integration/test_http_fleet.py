"""A fleet check: two `bwmon serve` agents in two namespaces, scraped like Prometheus would.

Each namespace runs its own traffic (different sizes) between a sink and a client on its own
loopback; the test scrapes both agents' `/metrics`, sums per app across the two "hosts", and
checks the sum equals what each agent reported and covers the payload really sent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, TRAFFIC
from tests.helpers.netns import NetNS

PORT = 9100  # each namespace has its own port space
SINK_PORT = 5001
CONFIG = """
[general]
interval = 0.25
[[groups]]
name = "fleet-client"
patterns = ["traffic\\\\.py client"]
[[groups]]
name = "fleet-sink"
patterns = ["traffic\\\\.py sink"]
"""


class Agent:
    """One namespace with a sink, a `bwmon serve` agent and a way to reach its HTTP port."""

    def __init__(self, ns: NetNS, config: Path) -> None:
        self.ns = ns
        self.sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", str(SINK_PORT)],
                             stdout=subprocess.PIPE, text=True)
        assert self.sink.stdout is not None and self.sink.stdout.readline().strip() == "ready"
        self.proc = ns.popen(
            [sys.executable, "-m", "bwmon", "serve", "--config", str(config),
             "--http", f"127.0.0.1:{PORT}"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 30
        while self.fetch("/api/v1/snapshot") is None:
            assert self.proc.poll() is None, self.stop()
            assert time.monotonic() < deadline, "agent did not answer within 30 s"
            time.sleep(0.2)

    def fetch(self, path: str) -> str | None:
        return self.ns.get(f"http://127.0.0.1:{PORT}{path}")

    def client(self, send: int, recv: int) -> None:
        self.ns.run(sys.executable, TRAFFIC, "client", "--tag", "fleet", "--host", "127.0.0.1",
                    "--port", str(SINK_PORT), "--send", str(send), "--recv", str(recv),
                    "--count", "2", "--hold", "0.6", "--linger", "0.6", timeout=60)

    def metrics(self) -> dict[tuple[str, str], float]:
        """bwmon_app_bytes_total by (app, direction), parsed by prometheus-client."""
        text = self.fetch("/metrics")
        assert text is not None
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "bwmon_app_bytes_total":
                    out[(s.labels["app"], s.labels["direction"])] = s.value
        return out

    def settled(self, app: str, at_least: int) -> dict[tuple[str, str], float]:
        """Scrape until `app` has sent `at_least` bytes and two scrapes in a row agree."""
        last: dict[tuple[str, str], float] = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            # only the test's apps: the scrapes themselves (python, bwmon) keep adding traffic
            now = {k: v for k, v in self.metrics().items() if k[0].startswith("fleet-")}
            if now.get((app, "out"), 0) >= at_least and now == last:
                return now
            last = now
            time.sleep(0.6)
        raise AssertionError(f"{app} never settled at ≥ {at_least} bytes out: {last}")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.sink.kill()
        self.sink.wait()
        return str(err)


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[tuple[Agent, Agent]]:
    config = tmp_path / "bwmon.toml"
    config.write_text(CONFIG)
    with NetNS(events=1) as a, NetNS(events=1) as b:
        started: list[Agent] = []
        try:
            started.append(Agent(a, config))
            started.append(Agent(b, config))
            yield started[0], started[1]
        finally:
            for agent in started:
                if agent.proc.poll() is None:
                    agent.stop()


@pytest.mark.privileged
def test_two_agents_sum_per_app_across_hosts(agents: tuple[Agent, Agent]) -> None:
    a, b = agents
    sent = {"a": 300_000, "b": 700_000}  # per connection; two connections each
    got = {"a": 20_000, "b": 50_000}
    a.client(sent["a"], got["a"])
    b.client(sent["b"], got["b"])
    per_host = {"a": a.settled("fleet-client", 2 * sent["a"]),
                "b": b.settled("fleet-client", 2 * sent["b"])}
    fleet: dict[tuple[str, str], float] = {}
    for host in per_host.values():  # what `sum by (app, direction) (...)` computes
        for key, value in host.items():
            fleet[key] = fleet.get(key, 0) + value
    for key in ("fleet-client", "out"), ("fleet-client", "in"), ("fleet-sink", "in"):
        assert fleet[key] == per_host["a"].get(key, 0) + per_host["b"].get(key, 0), key
    # each agent counted its own host's traffic (whole IP packets ≥ payload), not the other's
    for host in ("a", "b"):
        assert per_host[host][("fleet-client", "out")] >= 2 * sent[host]
        assert per_host[host][("fleet-client", "in")] >= 2 * got[host]
        assert per_host[host][("fleet-sink", "in")] >= 2 * sent[host]
    assert per_host["a"][("fleet-client", "out")] < 2 * sent["b"]
    assert fleet[("fleet-client", "out")] >= 2 * (sent["a"] + sent["b"])
    # the counters agree with each agent's own JSON snapshot
    for agent, host in ((a, "a"), (b, "b")):
        snap = json.loads(agent.fetch("/api/v1/snapshot") or "{}")
        row = next(r for r in snap["apps"] if r["name"] == "fleet-client")
        assert row["total_out"] == per_host[host][("fleet-client", "out")]
    err = a.stop()
    assert a.proc.returncode == 0 and "bwmon: stopped" in err, err
