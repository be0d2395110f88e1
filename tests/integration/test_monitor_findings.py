"""When nothing can be measured, `bwmon monitor` says why and what fixes it (the doctor's
findings), instead of printing an empty table; when the socket counters measure TCP, it says
what is not measured. Checked in a fresh namespace: accounting off and no ruleset that makes the
kernel track flows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.netns import NetNS

pytestmark = pytest.mark.privileged
REPO = Path(__file__).resolve().parents[2]


def _monitor(ns: NetNS, *flags: str,
             env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return ns.run(sys.executable, "-m", "bwmon", "monitor", "--interval", "0.2", "--count", "1",
                  *flags, env=env, timeout=60, check=False)


def test_fresh_namespace_measures_tcp_and_says_udp_is_not_measured() -> None:
    """The socket counters measure TCP with no rule and no accounting: no findings, but without
    eBPF the header says UDP is not measured (never a silent zero)."""
    no_ebpf = {"BWMON_GENERAL__EBPF": "off"}  # the probe would measure UDP
    with NetNS(acct=False, track=False) as ns:
        done = _monitor(ns, env_extra=no_ebpf)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert "Nothing can be measured" not in done.stdout
        assert "not measured: UDP" in done.stdout
        doc = json.loads(_monitor(ns, "--json", env_extra=no_ebpf).stdout.splitlines()[-1])
        assert doc["findings"] == [] and doc["not_measured"] == ["udp"]


@pytest.mark.parametrize(("ebpf", "headline"), [("off", "Nothing can be measured yet:"),
                                               ("auto", "Not measured yet: TCP:")])
def test_fresh_namespace_without_socket_counters_shows_findings_with_fixes(
        ebpf: str, headline: str) -> None:
    """Without TCP's counters and with conntrack counting nothing, TCP is not measured: the
    findings and their fixes show, headed by what is missing (eBPF's sums still measure UDP)."""
    env = {"BWMON_GENERAL__SOCKET_COUNTERS": "false", "BWMON_GENERAL__EBPF": ebpf}
    with NetNS(acct=False, track=False) as ns:
        done = _monitor(ns, env_extra=env)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert headline in done.stdout
        assert "net.netfilter.nf_conntrack_acct=1" in done.stdout
        assert "iptables" in done.stdout  # the command that makes the kernel track flows

        doc = json.loads(_monitor(ns, "--json", env_extra=env).stdout.splitlines()[-1])
        fixes = [f["fix"] or "" for f in doc["findings"]]
        assert any("nf_conntrack_acct=1" in f for f in fixes)


def test_measurable_namespace_shows_no_findings() -> None:
    with NetNS() as ns:
        doc = json.loads(_monitor(ns, "--json").stdout.splitlines()[-1])
        assert doc["findings"] == []
