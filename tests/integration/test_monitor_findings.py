"""When nothing can be measured, `bwmon monitor` says why and what fixes it (the doctor's
findings), instead of printing an empty table. Checked in a fresh namespace: accounting off and
no ruleset that makes the kernel track flows."""

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


def _monitor(ns: NetNS, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return ns.run(sys.executable, "-m", "bwmon", "monitor", "--interval", "0.2", "--count", "1",
                  *flags, env=env, timeout=60, check=False)


def test_fresh_namespace_shows_findings_with_fixes() -> None:
    with NetNS(acct=False, track=False) as ns:
        done = _monitor(ns)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert "Nothing can be measured" in done.stdout
        assert "net.netfilter.nf_conntrack_acct=1" in done.stdout
        assert "iptables" in done.stdout  # the command that makes the kernel track flows

        doc = json.loads(_monitor(ns, "--json").stdout.splitlines()[-1])
        fixes = [f["fix"] or "" for f in doc["findings"]]
        assert any("nf_conntrack_acct=1" in f for f in fixes)


def test_measurable_namespace_shows_no_findings() -> None:
    with NetNS() as ns:
        doc = json.loads(_monitor(ns, "--json").stdout.splitlines()[-1])
        assert doc["findings"] == []
