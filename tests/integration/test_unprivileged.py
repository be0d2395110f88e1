"""bwmon as an unprivileged user holding only the capabilities it needs, as the hardened systemd
unit runs it (contrib/bwmon.service), without systemd: `setpriv` gives user nobody the unit's
AmbientCapabilities (read from the unit file), with no new privileges, and /proc is mounted
with hidepid=invisible as the unit's ProtectProc=invisible does. It measures root's traffic,
and the doctor judges by capabilities, not by the uid. PATH lacks /usr/sbin, as an ordinary
user's does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bwmon.core.capabilities import ALL
from bwmon.core.sources.conntrack_parse import parse_conntrack
from tests.conftest import REPO, TRAFFIC
from tests.helpers.netns import NetNS

pytestmark = pytest.mark.privileged

UNIT = REPO / "contrib" / "bwmon.service"
NOBODY = "65534"
PORT = 47833


def unit_setting(name: str) -> list[str]:
    """The words of one setting in contrib/bwmon.service."""
    for line in UNIT.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1].split()
    raise AssertionError(f"{UNIT} has no {name}=")


# what the unit grants, as setpriv spells capabilities ("net_admin")
SERVICE_CAPS = tuple(c.removeprefix("CAP_").lower() for c in unit_setting("AmbientCapabilities"))


def as_nobody(caps: tuple[str, ...]) -> list[str]:
    """The prefix that runs bwmon as the unit does: user nobody with exactly `caps`, ambient,
    no new privileges, other users' processes hidden in /proc unless ptrace may reach them
    (hidepid=invisible, ProtectProc=invisible), and a user's PATH without the sbin
    directories."""
    wanted = ",".join(f"+{c}" for c in caps)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t proc -o hidepid=invisible proc /proc && exec "$@"', "sh",
            "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "--no-new-privs", f"--inh-caps=-all,{wanted}", f"--ambient-caps=-all,{wanted}",
            "env", "-i", "PATH=/usr/bin:/bin", f"PYTHONPATH={REPO}", "HOME=/nonexistent",
            sys.executable, "-m", "bwmon"]


def test_the_unit_grants_exactly_the_capabilities_the_doctor_checks() -> None:
    names = {n for cap in ALL for n in cap.name.split(" + ")}
    assert set(unit_setting("AmbientCapabilities")) == names
    assert set(unit_setting("CapabilityBoundingSet")) == names
    assert unit_setting("ProtectProc") == ["invisible"]  # what as_nobody() reproduces


def doctor(ns: NetNS, caps: tuple[str, ...]) -> tuple[int, dict[str, dict[str, object]]]:
    done = ns.run(*as_nobody(caps), "doctor", "--json", check=False, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, {f["check"]: f for f in json.loads(done.stdout)["findings"]}


def test_nobody_with_the_service_capabilities_measures_roots_traffic(tmp_path: Path) -> None:
    config = tmp_path / "bwmon.toml"
    config.write_text('[[groups]]\nname = "generator"\npatterns = ["--tag unpriv-gen "]\n')
    config.chmod(0o644)
    tmp_path.chmod(0o755)
    with NetNS() as ns:
        # the monitor runs as nobody; sink and client run as root: another user's processes
        monitor = ns.popen([*as_nobody(SERVICE_CAPS), "monitor", "--json", "--no-lookback",
                            "--interval", "0.5", "--config", str(config)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", str(PORT)],
                        stdout=subprocess.PIPE, text=True)
        try:
            assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
            time.sleep(1.5)  # the monitor's first read: its baseline
            ns.run(sys.executable, TRAFFIC, "client", "--tag", "unpriv-gen", "--host",
                   "127.0.0.1", "--port", str(PORT), "--proto", "tcp", "--send", "400000",
                   "--recv", "100000", "--hold", "1.0", timeout=60)
            time.sleep(1.5)
            truth = [e for e in parse_conntrack(ns.conntrack_text()) if e.orig.dport == PORT]
            status, checks = doctor(ns, SERVICE_CAPS)
        finally:
            monitor.terminate()
            out, err = monitor.communicate(timeout=20)
            sink.kill()
            sink.wait()
    assert monitor.returncode == 0 and "Traceback" not in err, err
    last = json.loads(out.strip().splitlines()[-1])
    row = next((a for a in last["apps"] if a["name"] == "generator"), None)
    assert row is not None, (last["apps"], err)
    sent = sum(e.orig_bytes or 0 for e in truth)
    assert sent > 400_000
    assert row["total_out"] == pytest.approx(sent, rel=0.01)
    # nobody's bwmon mapped root's sockets to root's process (while it ran: an exited process
    # is no longer listed with its row)
    users = {p["user"] for snap in map(json.loads, out.strip().splitlines())
             for a in snap["apps"] if a["name"] == "generator"
             for p in snap["processes"] if p["pid"] in a["pids"]}
    assert users == {"root"}
    # the eBPF socket probe runs too: CAP_BPF + CAP_PERFMON suffice, uid 0 is not needed
    assert any(s["name"] == "ebpf" and s["active"] for s in last["sources"]), last["sources"]

    # the doctor, as that same user, finds nothing missing that the service grants
    for cap in ALL:
        assert checks[cap.check]["ok"], checks[cap.check]
    assert checks["ebpf"]["ok"], checks["ebpf"]
    assert "root" not in checks
    assert checks["conntrack-table"]["ok"], checks["conntrack-table"]
    assert checks["conntrack-tool"]["ok"] and "/usr/sbin/" in str(
        checks["conntrack-tool"]["message"])  # not "missing": it is in /usr/sbin
    assert checks["tracking-ipv4"]["ok"], checks["tracking-ipv4"]  # iptables-save read the rules
    assert status in (0, 1)  # nothing blocks measuring


def test_the_doctor_names_each_missing_capability() -> None:
    with NetNS() as ns:
        # CAP_DAC_READ_SEARCH only (this Python lives under root's 0700 home on test machines)
        status, checks = doctor(ns, ("dac_read_search",))
    assert checks["cap-dac-read-search"]["ok"]
    for check, name in (("cap-net-admin", "CAP_NET_ADMIN"), ("cap-sys-ptrace", "CAP_SYS_PTRACE"),
                        ("cap-bpf", "CAP_BPF + CAP_PERFMON")):
        assert not checks[check]["ok"]
        assert name in str(checks[check]["message"]) and name in str(checks[check]["fix"])
    assert checks["conntrack-table"]["ok"]  # CAP_DAC_READ_SEARCH reads the root-only table
    assert "CAP_NET_ADMIN" in str(checks["tracking-ipv4"]["message"])  # cannot read the rules
    assert status == 0  # warnings only: conntrack and the socket counters measure
