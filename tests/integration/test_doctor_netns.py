"""`bwmon doctor` against the real kernel, in a fresh namespace that tracks and counts nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, TRAFFIC
from tests.helpers.netns import NetNS

pytestmark = pytest.mark.privileged
PORT = 47811


def doctor(ns: NetNS, *flags: str) -> subprocess.CompletedProcess[str]:
    # (--fix without root is covered in tests/unit/test_doctor.py: this Python's
    # site-packages are not readable by an unprivileged user on the test machines)
    return ns.run(sys.executable, "-m", "bwmon", "doctor", *flags, check=False, cwd=REPO,
                  timeout=60)


def findings(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, object]]:
    return {f["check"]: f for f in json.loads(result.stdout)["findings"]}


def sysctl(ns: NetNS, name: str) -> str:
    return ns.run("cat", f"/proc/sys/net/netfilter/{name}").stdout.strip()


def test_fix_makes_a_fresh_namespace_measure() -> None:
    with NetNS(acct=False, track=False, events=2) as ns:
        before = doctor(ns, "--json")
        # the socket counters measure TCP: conntrack's fixes are upgrades, not blockers
        assert before.returncode == 0, before.stderr
        doc = json.loads(before.stdout)
        assert doc["conntrack_blocked"] and not doc["blocking"]
        assert {"accounting", "tracking-ipv4", "tracking-ipv6"} <= set(doc["upgrades"])
        f = findings(before)
        assert f["socket-counters"]["ok"]
        # UDP: measured by the eBPF probe where it runs, else said to be not measured
        assert f["udp"]["ok"] == f["ebpf"]["ok"]
        if not f["udp"]["ok"]:
            assert "UDP not measured" in str(f["udp"]["message"]) and "udp" in doc["upgrades"]
        assert f["accounting"]["fix"] == "sysctl -w net.netfilter.nf_conntrack_acct=1"
        assert str(f["tracking-ipv4"]["fix"]).startswith("iptables -I INPUT -m conntrack")
        assert str(f["tracking-ipv6"]["fix"]).startswith("ip6tables -I INPUT -m conntrack")
        assert f["events"]["fix"] == "sysctl -w net.netfilter.nf_conntrack_events=1"
        assert f["cap-net-admin"]["ok"] and f["conntrack-table"]["ok"]

        fixed = doctor(ns, "--fix", "--json")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert "sysctl -w net.netfilter.nf_conntrack_acct=1: ok" in json.loads(fixed.stdout)[
            "applied"]
        after = findings(fixed)  # diagnosed again after the fixes
        assert all(after[c]["ok"] for c in ("accounting", "tracking-ipv4", "tracking-ipv6",
                                             "events", "udp")), after
        assert sysctl(ns, "nf_conntrack_events") == "1"

        again = doctor(ns, "--fix", "--json")
        assert json.loads(again.stdout)["applied"] == []  # idempotent: no duplicate rules
        assert ns.run("iptables-save").stdout.count("bwmon: track flows") == 1

        # real traffic is now tracked and counted, over IPv4 and IPv6
        sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", str(PORT)],
                        stdout=subprocess.PIPE, text=True)
        try:
            assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
            for host in ("127.0.0.1", "::1"):
                ns.run(sys.executable, TRAFFIC, "client", "--tag", "doctor-fix", "--host", host,
                       "--port", str(PORT), "--proto", "udp", "--send", "3000", timeout=30)
            time.sleep(0.2)
            table = ns.conntrack_text()
        finally:
            sink.kill()
            sink.wait()
        for family in ("ipv4", "ipv6"):
            line = next(ln for ln in table.splitlines()
                        if ln.startswith(family) and f"dport={PORT} " in ln and " udp " in ln)
            sent = int(re.findall(r"bytes=(\d+)", line)[0])
            assert sent >= 3000, line  # the payload plus headers


def test_fix_runs_only_commands_where_ebpf_cannot_run() -> None:
    """Root without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN (eBPF cannot run): the udp check's
    fix is advice ("apply the conntrack fixes ..."), not a command; --fix ran it as one
    (user trial: `apply ...: failed: No such file or directory`)."""
    no_bpf = ("setpriv", "--bounding-set=-bpf,-perfmon,-sys_admin",
              "--inh-caps=-bpf,-perfmon,-sys_admin")
    with NetNS(acct=False, track=False, events=2) as ns:
        fixed = ns.run(*no_bpf, sys.executable, "-m", "bwmon", "doctor", "--fix", "--json",
                       check=False, cwd=REPO, timeout=60)
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        doc = json.loads(fixed.stdout)
        assert not findings(fixed)["ebpf"]["ok"]
        assert doc["applied"] and all(line.endswith(": ok") for line in doc["applied"]), doc
        assert findings(fixed)["udp"]["ok"]  # measured by conntrack now


def test_ebpf_off_in_the_settings_is_what_the_doctor_judges() -> None:
    """general.ebpf = "off": bwmon measures no UDP in a bare namespace (its header says
    "not measured: UDP"), and the doctor says so; it said the probe was available and UDP
    measured by it (user trial)."""
    with NetNS(acct=False, track=False) as ns:
        result = ns.run("env", "BWMON_GENERAL__EBPF=off", sys.executable, "-m", "bwmon",
                        "doctor", "--json", check=False, cwd=REPO, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        f = findings(result)
        assert not f["ebpf"]["ok"] and 'general.ebpf = "off"' in str(f["ebpf"]["message"])
        assert not f["udp"]["ok"] and "UDP not measured" in str(f["udp"]["message"])
        assert not str(f["ebpf"]["fix"]).startswith(("apt-get", "modprobe"))
        fixed = ns.run("env", "BWMON_GENERAL__EBPF=off", sys.executable, "-m", "bwmon",
                       "doctor", "--fix", "--json", check=False, cwd=REPO, timeout=60)
        assert all(line.endswith(": ok") for line in json.loads(fixed.stdout)["applied"])
