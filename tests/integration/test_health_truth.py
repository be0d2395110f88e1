"""Health that tells the truth: a real `bwmon serve` whose conntrack counts nothing (accounting
off) and that has no socket counters says `bwmon_up 0`, though it ticks; with the socket counters
(the default) it measures TCP and says 1; in a namespace where conntrack counts it says 1."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO
from tests.helpers.netns import NetNS

pytestmark = pytest.mark.privileged
HTTP_PORT = 9186


def health(acct: bool, sockets: bool = True) -> dict[tuple[str, str], float]:
    """(sample name, its one label value or "") → value, once the agent has ticked twice."""
    env = {**os.environ, "BWMON_GENERAL__SOCKET_COUNTERS": "true" if sockets else "false",
           "BWMON_GENERAL__EBPF": "auto" if sockets else "off"}  # no per-socket byte source
    with NetNS(acct=acct) as ns:
        agent = ns.popen([sys.executable, "-m", "bwmon", "serve", "--interval", "0.2",
                          "--http", f"127.0.0.1:{HTTP_PORT}"], cwd=REPO, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while True:
                page = ns.get(f"http://127.0.0.1:{HTTP_PORT}/metrics")
                samples = {(s.name, next(iter(s.labels.values()), "")): s.value
                           for f in text_string_to_metric_families(page)
                           for s in f.samples} if page is not None else {}
                if samples.get(("bwmon_ticks_total", ""), 0) >= 2:
                    return samples
                assert agent.poll() is None and time.monotonic() < deadline, agent.stderr
                time.sleep(0.2)
        finally:
            agent.terminate()
            agent.wait(timeout=20)


def test_accounting_off_reads_as_down_on() -> None:
    off = health(acct=False, sockets=False)
    assert off[("bwmon_up", "")] == 0  # ticking, but counting nothing
    assert off[("bwmon_source_up", "conntrack-file")] == 0
    assert off[("bwmon_check_ok", "accounting")] == 0
    assert off[("bwmon_check_ok", "tracking-ipv4")] == 1
    tcp = health(acct=False)  # the socket counters measure TCP all the same
    assert tcp[("bwmon_up", "")] == 1
    assert tcp[("bwmon_source_up", "conntrack-file")] == 0
    assert tcp[("bwmon_source_up", "tcp_info")] == 1
    on = health(acct=True)
    assert on[("bwmon_up", "")] == 1
    assert on[("bwmon_source_up", "conntrack-file")] == 1
    assert on[("bwmon_check_ok", "accounting")] == 1
    assert on[("bwmon_tree_processes", "")] >= 1
