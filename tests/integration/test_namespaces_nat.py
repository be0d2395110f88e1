"""A container behind NAT: its flow counted once, for its process; `(forwarded)` keeps only
traffic truly routed between namespaces bwmon does not measure.

Topology, all namespaces the test's own: a router R (forwarding on, MASQUERADE towards E,
tracking and accounting on) between a "container" C (no conntrack rule: it tracks nothing, as
containers usually do), a server namespace E (tracking on), and two namespaces X and Y that bwmon
is not told to measure, routed through R without NAT. bwmon runs in a namespace of its own and
measures C, R and E. The client in C must get the bytes R's table counted for its connection
(through its socket in C, found from R's masqueraded flow); the server in E its own end; the
host total must count that connection once plus the X→Y flow once (within 1 % of R's table),
and `(forwarded)` must hold the X→Y flow only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import pytest

from bwmon.core.sources.conntrack_parse import parse_conntrack
from tests.conftest import TRAFFIC
from tests.helpers.monitor import Monitor
from tests.helpers.netns import NetNS, link

pytestmark = [pytest.mark.privileged, pytest.mark.slow]


def _client(ns: NetNS, tag: str, host: str, port: int) -> subprocess.Popen[str]:
    return ns.popen([sys.executable, TRAFFIC, "client", "--tag", tag, "--host", host,
                     "--port", str(port), "--send", "2000000", "--recv", "300000",
                     "--hold", "1.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sink(ns: NetNS, port: int) -> subprocess.Popen[str]:
    sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", str(port)],
                    stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    return sink


def test_nat_flow_counts_once_for_the_container_process(tmp_path: Any) -> None:
    prefix = f"bwnn{os.getpid()}"
    config = tmp_path / "bwmon.toml"
    config.write_text(
        '[general]\nevents = false\nebpf = "off"\n\n'
        f'[namespaces]\nscope = "all"\ninclude = ["^{prefix}-"]\n\n'
        '[[groups]]\nname = "natgen"\npatterns = ["--tag natgen "]\n\n'
        '[[groups]]\nname = "routed"\npatterns = ["--tag routed "]\n')
    with NetNS(prefix="bwnh") as home, NetNS(prefix=prefix) as router, \
            NetNS(prefix=prefix, track=False) as box, NetNS(prefix=prefix) as server, \
            NetNS(prefix="bwnx", track=False) as x, NetNS(prefix="bwnx", track=False) as y:
        link(router, box, 0)
        link(router, server, 1)
        link(router, x, 2)
        link(router, y, 3)
        router.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        router.run("iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.231.0.0/24",
                   "-d", "10.231.1.0/24", "-j", "MASQUERADE")
        box.run("ip", "route", "add", "default", "via", "10.231.0.1")
        x.run("ip", "route", "add", "10.231.3.0/24", "via", "10.231.2.1")
        y.run("ip", "route", "add", "10.231.2.0/24", "via", "10.231.3.1")
        sinks = [_sink(server, 7500), _sink(y, 7501)]
        bwmon = Monitor(home, config)
        try:
            bwmon.wait_for("two ticks", lambda s: s["seq"] >= 2)
            clients = [_client(box, "natgen", "10.231.1.2", 7500),
                       _client(x, "routed", "10.231.3.2", 7501)]
            for c in clients:
                out, err = c.communicate(timeout=60)
                assert c.returncode == 0 and "done" in out, err
            table = parse_conntrack(router.conntrack_text())
            nat = [e for e in table if e.orig.dport == 7500]
            routed = [e for e in table if e.orig.dport == 7501]
            assert nat and routed and all(e.has_counters for e in nat + routed)
            assert nat[0].reply.dst == "10.231.1.1"  # masqueraded
            nat_sent = sum(e.orig_bytes or 0 for e in nat)
            nat_back = sum(e.reply_bytes or 0 for e in nat)
            routed_bytes = sum((e.orig_bytes or 0) + (e.reply_bytes or 0) for e in routed)
            truth = nat_sent + nat_back + routed_bytes

            def settled(s: dict[str, Any]) -> bool:
                host = s["host"]["total_in"] + s["host"]["total_out"]
                return host >= 0.99 * truth and s["apps"] and any(
                    a["name"] == "natgen" and a["total_out"] >= 0.99 * nat_sent
                    for a in s["apps"])
            snap = bwmon.wait_for("the bytes counted", settled)
            time.sleep(1.5)  # two more ticks: nothing more may come
            snap = bwmon.ticks[-1]
        finally:
            bwmon.stop()
            for s in sinks:
                s.kill()
                s.wait()
    apps = {a["name"]: a for a in snap["apps"]}
    summary = {n: (a["total_in"], a["total_out"]) for n, a in apps.items()}
    client = apps["natgen"]
    assert client["total_out"] == pytest.approx(nat_sent, rel=0.01), summary
    assert client["total_in"] == pytest.approx(nat_back, rel=0.01), summary
    procs = [p for p in snap["processes"] if p["app"] == "natgen"]
    assert procs and all(p["container"] == box.name for p in procs), procs
    host = snap["host"]["total_in"] + snap["host"]["total_out"]
    assert host == pytest.approx(truth, rel=0.01), (host, truth, summary)
    forwarded = snap["forwarded"]
    assert forwarded is not None
    assert forwarded["total_in"] + forwarded["total_out"] == pytest.approx(
        routed_bytes, rel=0.01), summary
    # the server's processes are grouped by their namespace's name (group_by: container)
    assert apps[server.name]["total_in"] == pytest.approx(nat_sent, rel=0.02), summary
    unattributed = snap["unattributed"]
    assert unattributed is None or unattributed["total_in"] + unattributed["total_out"] < (
        0.01 * truth), summary
