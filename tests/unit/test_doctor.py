"""`bwmon doctor` checks on fixture /proc trees, with fake ruleset tools (real subprocesses)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bwmon.cli import doctor as doctor_cli
from bwmon.core import capabilities, doctor
from bwmon.core.capabilities import (
    ALL_BITS,
    CAP_BPF,
    CAP_DAC_READ_SEARCH,
    CAP_NET_ADMIN,
    CAP_PERFMON,
    CAP_SYS_PTRACE,
)
from bwmon.core.doctor import (
    apply_fixes,
    blocking,
    diagnose,
    fix_commands,
    fixable,
    tracking_rules,
)
from bwmon.core.errors import UserError
from bwmon.core.model import Finding
from bwmon.core.sources import tools
from bwmon.core.sources.conntrack_read import tool_argv
from bwmon.core.sources.ebpf import EbpfOwners

IPTABLES_TRACKING = """\
*filter
:INPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
"""
IPTABLES_PLAIN = """\
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp --dport 22 -j ACCEPT
COMMIT
"""
NFT_INET = """\
table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tct state established,related accept
\t}
}
"""
NFT_IP_ONLY = """\
table ip6 plain {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 22 accept
\t}
}
table ip nat {
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\toifname "eth0" masquerade
\t}
}
"""
FLOW4 = ("ipv4     2 tcp      6 117 TIME_WAIT src=127.0.0.1 dst=127.0.0.1 sport=1 dport=2 "
         "packets=3 bytes=180 src=127.0.0.1 dst=127.0.0.1 sport=2 dport=1 packets=2 bytes=112 "
         "[ASSURED] mark=0 zone=0 use=1\n")


def proc_tree(root: Path, *, acct: str | None = "1", events: str | None = "1",
              table: str | None = "") -> Path:
    """A fake /proc: netfilter sysctls and the conntrack file (None = absent)."""
    nf = root / "sys" / "net" / "netfilter"
    nf.mkdir(parents=True)
    for name, value in (("nf_conntrack_acct", acct), ("nf_conntrack_events", events)):
        if value is not None:
            (nf / name).write_text(value + "\n")
    (root / "net").mkdir()
    (root / "net" / "tcp").write_text("  sl  local_address rem_address   st\n")  # a procfs
    if table is not None:
        (root / "net" / "nf_conntrack").write_text(table)
    (root / "filesystems").write_text("nodev\ttracefs\n")
    return root


def rulesets(tmp_path: Path, ipv4: str = "", ipv6: str = "", nft: str = "") -> list[list[str]]:
    cmds = []
    for name, text in (("v4", ipv4), ("v6", ipv6), ("nft", nft)):
        f = tmp_path / f"{name}.rules"
        f.write_text(text)
        cmds.append(["cat", str(f)])
    return cmds


class NoEbpf(EbpfOwners):
    def available(self) -> str | None:
        self._fix = "apt-get install libbpf1"
        return "libbpf missing: no libbpf.so.1"


def by_check(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings}


async def run_diagnose(proc: Path, tmp_path: Path, **kw: object) -> dict[str, Finding]:
    rules = kw.pop("rules", None)
    if rules is None:
        rules = rulesets(tmp_path, IPTABLES_TRACKING, IPTABLES_TRACKING)
    found = await diagnose(proc, ruleset_commands=rules, ebpf=NoEbpf(),  # type: ignore[arg-type]
                           caps=kw.pop("caps", ALL_BITS), **kw)  # type: ignore[arg-type]
    return by_check(found)


async def test_healthy_tree_passes_everything_but_ebpf(tmp_path: Path) -> None:
    f = await run_diagnose(proc_tree(tmp_path / "proc"), tmp_path, conntrack_command="true")
    # a fixture tree describes no kernel whose sockets could be asked
    assert [c for c, x in f.items() if not x.ok] == ["socket-counters", "ebpf"]
    assert f["ebpf"].fix == "apt-get install libbpf1"
    assert not blocking(list(f.values()))


async def test_accounting_off_blocks_and_names_the_sysctl(tmp_path: Path) -> None:
    f = await run_diagnose(proc_tree(tmp_path / "proc", acct="0"), tmp_path)
    assert not f["accounting"].ok
    assert f["accounting"].fix == "sysctl -w net.netfilter.nf_conntrack_acct=1"
    assert "before" in f["accounting"].message  # old flows stay uncounted
    assert blocking(list(f.values()))


async def test_module_not_loaded_suggests_modprobe(tmp_path: Path) -> None:
    proc = proc_tree(tmp_path / "proc", acct=None, events=None, table=None)
    f = await run_diagnose(proc, tmp_path)
    assert f["conntrack-table"].fix == "modprobe nf_conntrack"
    assert f["accounting"].fix == "modprobe nf_conntrack"


async def test_missing_file_falls_back_to_the_tool(tmp_path: Path) -> None:
    proc = proc_tree(tmp_path / "proc", table=None)
    f = await run_diagnose(proc, tmp_path, conntrack_command="true")
    assert f["conntrack-table"].ok and "-L" in f["conntrack-table"].message
    f = await run_diagnose(proc, tmp_path, conntrack_command="false")
    assert not f["conntrack-table"].ok
    f = await run_diagnose(proc, tmp_path, conntrack_command="no-such-conntrack-tool")
    assert f["conntrack-table"].fix == "apt-get install conntrack"
    assert f["conntrack-tool"].fix == "apt-get install conntrack"
    assert blocking(list(f.values()))


async def test_missing_tool_is_only_a_warning_when_the_file_exists(tmp_path: Path) -> None:
    f = await run_diagnose(proc_tree(tmp_path / "proc"), tmp_path,
                           conntrack_command="no-such-conntrack-tool")
    assert f["conntrack-table"].ok
    assert not f["conntrack-tool"].ok
    assert not blocking(list(f.values()))


@pytest.mark.parametrize(("value", "word"), [("2", "auto"), ("0", "off")])
async def test_events_not_1_recommends_1(tmp_path: Path, value: str, word: str) -> None:
    f = await run_diagnose(proc_tree(tmp_path / "proc", events=value), tmp_path)
    assert not f["events"].ok and word in f["events"].message
    assert f["events"].fix == "sysctl -w net.netfilter.nf_conntrack_events=1"
    assert not blocking(list(f.values()))


async def test_no_tracking_rules_and_empty_table_fails_both_families(tmp_path: Path) -> None:
    rules = rulesets(tmp_path, IPTABLES_PLAIN, IPTABLES_PLAIN)
    f = await run_diagnose(proc_tree(tmp_path / "proc"), tmp_path, rules=rules)
    assert "iptables -I INPUT -m conntrack" in (f["tracking-ipv4"].fix or "")
    assert (f["tracking-ipv6"].fix or "").startswith("ip6tables -I INPUT -m conntrack")
    assert blocking(list(f.values()))


async def test_flows_in_the_table_prove_tracking(tmp_path: Path) -> None:
    rules = rulesets(tmp_path)
    f = await run_diagnose(proc_tree(tmp_path / "proc", table=FLOW4), tmp_path, rules=rules)
    assert f["tracking-ipv4"].ok
    assert not f["tracking-ipv6"].ok
    assert not blocking(list(f.values()))  # IPv4 still measurable


async def test_failing_ruleset_tool_counts_as_no_rules(tmp_path: Path) -> None:
    rules = [["false"], ["no-such-ip6tables-save"], ["false"]]
    f = await run_diagnose(proc_tree(tmp_path / "proc"), tmp_path, rules=rules)
    assert not f["tracking-ipv4"].ok and not f["tracking-ipv6"].ok


def test_tracking_rules_reads_iptables_and_nft_families() -> None:
    assert tracking_rules(IPTABLES_TRACKING, IPTABLES_PLAIN, "") == {4}
    assert tracking_rules("", IPTABLES_TRACKING, "") == {6}
    assert tracking_rules("", "", NFT_INET) == {4, 6}
    assert tracking_rules("", "", NFT_IP_ONLY) == {4}  # nat needs conntrack; plain ip6 does not
    assert tracking_rules(IPTABLES_PLAIN, IPTABLES_PLAIN, "") == set()


async def test_capabilities_not_uid_decide_and_each_says_what_it_adds(tmp_path: Path) -> None:
    proc = proc_tree(tmp_path / "proc")
    everything = await run_diagnose(proc, tmp_path, caps=(1 << CAP_NET_ADMIN | 1 << CAP_SYS_PTRACE
                                    | 1 << CAP_DAC_READ_SEARCH | 1 << CAP_BPF | 1 << CAP_PERFMON))
    assert all(everything[cap.check].ok for cap in capabilities.ALL)
    assert "root" not in everything  # no check of the uid
    assert "conntrack -E" in everything["cap-net-admin"].message  # held: what it gives
    nothing = await run_diagnose(proc, tmp_path, caps=0)
    for cap in capabilities.ALL:
        finding = nothing[cap.check]
        assert not finding.ok and cap.name in finding.message and cap.adds in finding.message
        assert cap.name in (finding.fix or "") and not doctor.fixable(finding)
    assert "/proc/PID/fd" in nothing["cap-sys-ptrace"].message
    half = await run_diagnose(proc, tmp_path, caps=1 << CAP_BPF)  # CAP_PERFMON missing
    assert not half["cap-bpf"].ok and "CAP_BPF + CAP_PERFMON" in half["cap-bpf"].message


async def test_without_net_admin_unreadable_rules_are_not_called_untracked(
        tmp_path: Path) -> None:
    rules = [["false"], ["false"], ["false"]]  # iptables-save refuses without CAP_NET_ADMIN
    f = await run_diagnose(proc_tree(tmp_path / "proc"), tmp_path, caps=0, rules=rules)
    assert "cannot tell" in f["tracking-ipv4"].message
    assert "CAP_NET_ADMIN" in f["tracking-ipv4"].message
    assert not doctor.fixable(f["tracking-ipv4"])  # no rule is added on a guess


def test_fix_commands_split_and_keep_quotes() -> None:
    cmds = fix_commands('iptables -I INPUT -m comment --comment "bwmon: track flows" && true')
    assert cmds == [["iptables", "-I", "INPUT", "-m", "comment", "--comment",
                     "bwmon: track flows"], ["true"]]


async def test_apply_fixes_refuses_without_root(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "changed"
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    with pytest.raises(PermissionError, match="sudo bwmon doctor --fix"):
        await apply_fixes([Finding("x", False, "broken", f"touch {marker}")])
    assert not marker.exists()


async def test_apply_fixes_runs_each_failing_fix_once_and_reports(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 0)
    a, b, c = (tmp_path / n for n in "abc")
    findings = [
        Finding("one", False, "m", f"touch {a} && touch {b}"),
        Finding("two", False, "m", f"touch {a} && touch {b}"),  # same fix: once
        Finding("ok", True, "fine", f"touch {c}"),  # passing: not run
        Finding("user", False, "m", "run bwmon as root (sudo)"),  # advice only
        Finding("bad", False, "m", "false"),
    ]
    report = await apply_fixes(findings)
    assert a.exists() and b.exists() and not c.exists()
    assert report == [f"touch {a}: ok", f"touch {b}: ok", "false: failed (status 1): no output"]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    doctor_cli.add_parser(parser.add_subparsers())
    return parser.parse_args(["doctor", *argv])


def test_cli_fix_without_root_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_cli.os, "geteuid", lambda: 1000)
    with pytest.raises(UserError, match="needs root; nothing was changed"):
        doctor_cli.run(_args("--fix"))


def test_cli_json_reports_fixes_and_exit_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    proc = proc_tree(tmp_path / "proc", acct="0")
    monkeypatch.setenv("BWMON_GENERAL__PROC_ROOT", str(proc))
    status = doctor_cli.run(_args("--json"))
    out = json.loads(capsys.readouterr().out)
    assert status == 3 and out["blocking"] is True
    acct = next(f for f in out["findings"] if f["check"] == "accounting")
    assert acct == {"check": "accounting", "ok": False, "message": acct["message"],
                    "fix": "sysctl -w net.netfilter.nf_conntrack_acct=1"}


def test_cli_text_shows_fix_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BWMON_GENERAL__PROC_ROOT", str(proc_tree(tmp_path / "proc", acct="0")))
    doctor_cli.run(_args())
    out = capsys.readouterr().out
    assert "FAIL  accounting" in out
    assert "fix: sysctl -w net.netfilter.nf_conntrack_acct=1" in out
    assert "bwmon doctor --fix" in out


async def test_tools_outside_path_are_found_in_sbin(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's PATH often lacks /usr/sbin, where conntrack lives: it is not "missing"."""
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    tool = sbin / "conntrack"
    tool.write_text("#!/bin/sh\necho 0\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(tools, "SBIN_DIRS", (str(sbin),))
    proc = proc_tree(tmp_path / "proc", table=None)
    f = await run_diagnose(proc, tmp_path, conntrack_command="conntrack")
    assert f["conntrack-tool"].ok and str(tool) in f["conntrack-tool"].message
    assert f["conntrack-table"].ok  # `conntrack -C` ran from sbin
    assert tool_argv("conntrack", ("ip", "netns", "exec", "x")) == [
        "ip", "netns", "exec", "x", str(tool)]


async def test_nft_only_hosts_get_an_nft_tracking_fix(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_find = doctor.find_tool
    monkeypatch.setattr(doctor, "find_tool",
                        lambda name: None if name == "iptables" else real_find(name))
    rules = rulesets(tmp_path)
    f = await run_diagnose(proc_tree(tmp_path / "proc"), tmp_path, rules=rules)
    fix6 = f["tracking-ipv6"].fix or ""
    assert fix_commands(fix6)[0] == ["nft", "add", "table", "ip6", "bwmon"]
    assert fix_commands(fix6)[-1][-4:] == ["ct", "state", "established,related", "counter"]
    # and what it creates is recognised as tracking
    assert tracking_rules("", "", "table ip6 bwmon {\n\tchain track {\n\t\tct state "
                          "established,related counter\n\t}\n}\n") == {6}


async def test_a_proc_root_that_is_no_procfs_is_named_not_blamed_on_conntrack(
        tmp_path: Path) -> None:
    """general.proc_root without net/tcp: the doctor suggested `modprobe nf_conntrack` and the
    engine died with FileNotFoundError (issue 25, item 9)."""
    empty = tmp_path / "proc"
    empty.mkdir()
    f = await run_diagnose(empty, tmp_path)
    assert list(f) == [*(c.check for c in capabilities.ALL), "procfs"] and not f["procfs"].ok
    assert "general.proc_root" in f["procfs"].message and not fixable(f["procfs"])
    assert blocking(list(f.values()))
    config = tmp_path / "bwmon.toml"
    config.write_text(f'[general]\nproc_root = "{empty}"\n')
    done = subprocess.run([sys.executable, "-m", "bwmon", "monitor", "--count", "1",
                           "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"bwmon: general.proc_root is {empty}, which is not a procfs")
