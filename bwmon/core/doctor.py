"""Prerequisite checks behind `bwmon doctor`: can conntrack measure anything here, and why not.

Each check yields a `Finding` with the exact command that fixes it; `apply_fixes` runs those
commands (root only). Sysctls are read under `<proc_root>/sys/net/netfilter/` so fixture trees
work. All checks concern the network namespace bwmon runs in. Privilege is judged by the
capabilities the process holds (bwmon.core.capabilities), never by its uid: a service user with
the right ambient capabilities measures as root does.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from bwmon.core import capabilities
from bwmon.core.capabilities import DAC_READ_SEARCH, NET_ADMIN, Capability, holds
from bwmon.core.model import Finding
from bwmon.core.sources.ebpf import EbpfOwners
from bwmon.core.sources.tools import find_tool, resolved

# checks whose failure leaves conntrack with nothing to measure
BLOCKING = frozenset({"procfs", "conntrack-table", "accounting"})
SOCKETS = "socket-counters"
# what conntrack adds where the socket counters already measure TCP (a failed check is then an
# upgrade, not a blocker)
CONNTRACK_ADDS = ("IP-level bytes (headers included), forwarded and NAT traffic, and UDP "
                  "without eBPF")
TRACKING = ("tracking-ipv4", "tracking-ipv6")
RULESET_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("iptables-save",),
    ("ip6tables-save",),
    ("nft", "list", "ruleset"),
)
_TRACK_COMMENT = '"bwmon: track flows"'
# iptables-save: matches and targets that make the kernel track the table's family
_XT_CT = re.compile(
    r"^-A .*(-m (conntrack|state|connmark|connbytes|connlimit|helper)\b"
    r"|-j (CT|MASQUERADE|SNAT|DNAT|REDIRECT|NETMAP|CONNMARK)\b)",
    re.M,
)
_NFT_CT = re.compile(
    r"\bct (state|status|mark|direction|zone|original|reply|helper|label|count|expiration"
    r"|bytes|packets|avgpkt|id|l3proto|protocol)\b|\b(masquerade|snat|dnat|redirect)\b"
    r'|xt match "(conntrack|state)"|type nat hook'
)


async def _output(argv: Sequence[str], timeout: float = 10.0) -> tuple[int, str]:
    """Exit status and stdout of a command; 127 when it cannot start."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *resolved(argv), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return 127, exc.strerror or ""
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, "timed out"
    text = out.decode(errors="replace")
    return proc.returncode or 0, text if proc.returncode == 0 else err.decode(errors="replace")


def _sysctl(proc_root: Path, name: str) -> str | None:
    try:
        return (proc_root / "sys" / "net" / "netfilter" / name).read_text().strip()
    except OSError:
        return None


def tracking_rules(iptables_save: str, ip6tables_save: str, nft_ruleset: str) -> set[int]:
    """Address families (4, 6) for which a ruleset needs conntrack, so the kernel tracks flows."""
    families: set[int] = set()
    if _XT_CT.search(iptables_save):
        families.add(4)
    if _XT_CT.search(ip6tables_save):
        families.add(6)
    # nft: split into tables and look at the family of each table that uses conntrack
    for match in re.finditer(r"^table (\w+) \S+ \{(.*?)^\}", nft_ruleset, re.M | re.S):
        family, body = match.group(1), match.group(2)
        if _NFT_CT.search(body):
            families |= {"ip": {4}, "ip6": {6}, "inet": {4, 6}}.get(family, set())
    return families


def _families_in_table(path: Path) -> set[int] | None:
    """Families with at least one flow in the conntrack file; None when it cannot be read."""
    seen: set[int] = set()
    try:
        with path.open("rb") as f:
            while len(seen) < 2 and (chunk := f.read(1 << 16)):
                if b"ipv4 " in chunk:
                    seen.add(4)
                if b"ipv6 " in chunk:
                    seen.add(6)
    except OSError:
        return None
    return seen


def _track_fix(family: int) -> str:
    if find_tool("iptables") is None and find_tool("nft") is not None:
        nft_family = "ip" if family == 4 else "ip6"
        return (f"nft add table {nft_family} bwmon && nft add chain {nft_family} bwmon track "
                f"'{{ type filter hook input priority 0; }}' && "
                f"nft add rule {nft_family} bwmon track ct state established,related counter")
    tool = "iptables" if family == 4 else "ip6tables"
    return (f"{tool} -I INPUT -m conntrack --ctstate ESTABLISHED,RELATED "
            f"-m comment --comment {_TRACK_COMMENT}")


def check_procfs(proc_root: Path) -> Finding:
    """Whether `proc_root` (general.proc_root) is a procfs: bwmon reads sockets, processes and
    conntrack's settings there."""
    if (proc_root / "net" / "tcp").is_file():
        return Finding("procfs", True, f"{proc_root} is a procfs")
    return Finding("procfs", False, f"general.proc_root is {proc_root}, which is not a procfs "
                   f"(no {proc_root / 'net' / 'tcp'}): nothing can be read there",
                   "set general.proc_root to where procfs is mounted (normally /proc), "
                   f"or mount it: mount -t proc proc {proc_root}")


GRANT = ("run bwmon as root, or grant it {cap} (AmbientCapabilities= in its systemd unit, or "
         "setpriv --ambient-caps)")


def _check_capability(cap: Capability, mask: int) -> Finding:
    if holds(cap, mask):
        return Finding(cap.check, True, f"{cap.name} held: {cap.adds}")
    return Finding(cap.check, False, f"no {cap.name}: without it, no {cap.adds}",
                   GRANT.format(cap=cap.name))


def _readable(path: Path) -> bool:
    """Whether this process can read `path` (by trying: capabilities decide, not the uid)."""
    try:
        with path.open("rb") as f:
            f.read(1)
    except OSError:
        return False
    return True


async def _check_table(proc_root: Path, conntrack: str, mask: int) -> tuple[Finding, Finding]:
    """The conntrack table (file or tool) and the conntrack tool itself."""
    tool = find_tool(conntrack)
    tool_finding = (
        Finding("conntrack-tool", True, f"conntrack tool found ({tool})") if tool else
        Finding("conntrack-tool", False, f"the conntrack tool ({conntrack}) is missing: needed "
                "where /proc/net/nf_conntrack is absent and for NEW/DESTROY events",
                "apt-get install conntrack"))
    path = proc_root / "net" / "nf_conntrack"
    if path.exists():
        if _readable(path):
            return Finding("conntrack-table", True, f"{path} is readable"), tool_finding
        need = "" if holds(DAC_READ_SEARCH, mask) else ": it needs CAP_DAC_READ_SEARCH"
        return Finding("conntrack-table", False, f"{path} is not readable (root only{need})",
                       GRANT.format(cap=DAC_READ_SEARCH.name)), tool_finding
    if _sysctl(proc_root, "nf_conntrack_acct") is None:
        return Finding("conntrack-table", False, "connection tracking is not loaded "
                       "(no nf_conntrack module)", "modprobe nf_conntrack"), tool_finding
    if tool is None:
        return Finding("conntrack-table", False, f"{path} is missing (kernel without "
                       "CONFIG_NF_CONNTRACK_PROCFS) and so is the conntrack tool",
                       "apt-get install conntrack"), tool_finding
    status, text = await _output([tool, "-C"])
    if status == 0:
        return Finding("conntrack-table", True,
                       f"{path} is missing; the table is read with `{conntrack} -L`"), tool_finding
    need = "" if holds(NET_ADMIN, mask) else " (it needs CAP_NET_ADMIN)"
    return Finding("conntrack-table", False, f"`{conntrack} -C` failed{need}: "
                   f"{text.strip()[:200]}", GRANT.format(cap=NET_ADMIN.name)), tool_finding


def _check_accounting(proc_root: Path) -> Finding:
    value = _sysctl(proc_root, "nf_conntrack_acct")
    if value == "1":
        return Finding("accounting", True, "byte accounting is on (nf_conntrack_acct=1)")
    if value is None:
        return Finding("accounting", False, "no net.netfilter.nf_conntrack_acct: conntrack is "
                       "not loaded", "modprobe nf_conntrack")
    return Finding("accounting", False, f"byte accounting is off (nf_conntrack_acct={value}): "
                   "conntrack counts no bytes; flows created before it is switched on stay "
                   "uncounted", "sysctl -w net.netfilter.nf_conntrack_acct=1")


def _check_events(proc_root: Path) -> Finding:
    value = _sysctl(proc_root, "nf_conntrack_events")
    if value == "1":
        return Finding("events", True, "conntrack events on for all flows (nf_conntrack_events=1)")
    fix = "sysctl -w net.netfilter.nf_conntrack_events=1"
    if value == "2":
        return Finding("events", False, "nf_conntrack_events=2 (auto): flows that existed before "
                       "bwmon started give no DESTROY event, so their last bytes may be missed",
                       fix)
    return Finding("events", False, f"conntrack events are off (nf_conntrack_events={value}): "
                   "connections shorter than a tick may go unseen", fix)


async def _check_tracking(
    proc_root: Path, commands: Sequence[Sequence[str]], mask: int
) -> list[Finding]:
    outputs = await asyncio.gather(*(_output(c) for c in commands))
    texts = [text if status == 0 else "" for status, text in outputs]
    texts += [""] * (3 - len(texts))
    by_rules = tracking_rules(*texts[:3])
    in_table = _families_in_table(proc_root / "net" / "nf_conntrack") or set()
    findings = []
    for family, check in zip((4, 6), TRACKING, strict=True):
        name = f"IPv{family}"
        if family in by_rules:
            findings.append(Finding(check, True, f"{name} flows are tracked (a firewall rule "
                                    "uses conntrack)"))
        elif family in in_table:
            findings.append(Finding(check, True, f"{name} flows are tracked (the table holds "
                                    f"{name} flows)"))
        elif not holds(NET_ADMIN, mask):
            findings.append(Finding(check, False, f"cannot tell whether {name} flows are tracked: "
                                    "reading the firewall rules needs CAP_NET_ADMIN",
                                    "run bwmon doctor as root (sudo)"))
        else:
            findings.append(Finding(check, False, f"{name} flows are not tracked: since Linux "
                                    "4.10 the kernel tracks nothing until a rule in this network "
                                    "namespace uses conntrack", _track_fix(family)))
    return findings


def check_socket_counters(proc_root: Path) -> Finding:
    """Whether TCP is measured from per-socket counters: a sock_diag dump with tcp_info (no
    privilege needed) and the destroy broadcasts for closing sockets."""
    from bwmon.core.sources.sock_diag import DestroyFeed, SockDiagError, dump_tcp_bytes

    if proc_root != Path("/proc"):
        return Finding(SOCKETS, False, f"socket counters not checked: general.proc_root is "
                       f"{proc_root}, not the running kernel's /proc")
    try:
        dump_tcp_bytes()
    except SockDiagError as exc:
        return Finding(SOCKETS, False, f"TCP socket counters unavailable: {exc}",
                       "modprobe inet_diag tcp_diag")
    try:
        DestroyFeed().close()
    except SockDiagError as exc:
        return Finding(SOCKETS, True, "TCP measured from per-socket counters (tcp_info through "
                       f"sock_diag), but closing sockets' last bytes are not seen: {exc}")
    return Finding(SOCKETS, True, "TCP measured from per-socket counters (tcp_info through "
                   "sock_diag, payload bytes), closing sockets from the destroy broadcasts: no "
                   "firewall rule or sysctl needed")


def _check_udp(findings: Sequence[Finding]) -> Finding:
    """Whether UDP is measured: by conntrack, or by the eBPF probe's byte sums; say so if not.
    Conntrack counts in its own namespace only; the probe sees every namespace's sockets."""
    ebpf = any(f.check == "ebpf" and f.ok for f in findings)
    if not blocking(findings):
        if ebpf:
            return Finding("udp", True, "UDP measured by conntrack (IP bytes), and by the eBPF "
                           "probe's byte sums (payload) where a namespace's conntrack does not "
                           "count it")
        return Finding("udp", True, "UDP measured by conntrack (IP bytes) in this namespace; in "
                       "other namespaces only where their own conntrack counts it (the eBPF "
                       "probe would measure it in every namespace)")
    if ebpf:
        return Finding("udp", True, "UDP measured by the eBPF probe's byte sums (payload), in "
                       "every network namespace")
    return Finding("udp", False, "UDP not measured: conntrack counts nothing here and the eBPF "
                   "probe does not run; UDP traffic shows as not measured, not as zero",
                   "apply the conntrack fixes (accounting and a tracking rule), or those of "
                   "the ebpf check")


async def diagnose(
    proc_root: Path = Path("/proc"),
    *,
    conntrack_command: str = "conntrack",
    ruleset_commands: Sequence[Sequence[str]] = RULESET_COMMANDS,
    ebpf: EbpfOwners | None = None,
    caps: int | None = None,
    ebpf_setting: str = "auto",
) -> list[Finding]:
    """Run every check; findings in the order their fixes should be applied. `caps` is the
    capability mask to judge by (default: this process's); `ebpf_setting` is general.ebpf
    ("off": bwmon never starts the probe, so it measures nothing, whatever the kernel allows)."""
    mask = capabilities.effective(proc_root) if caps is None else caps
    findings = [_check_capability(cap, mask) for cap in capabilities.ALL]
    procfs = check_procfs(proc_root)
    if not procfs.ok:  # every other check reads it: their hints would mislead
        return [*findings, procfs]
    table, tool = await _check_table(proc_root, conntrack_command, mask)
    findings += [table, tool, _check_accounting(proc_root)]
    findings += await _check_tracking(proc_root, ruleset_commands, mask)
    findings.append(_check_events(proc_root))
    owners = ebpf or EbpfOwners(proc_root=proc_root, caps=mask)
    reason = None if ebpf_setting == "off" else owners.available()
    if ebpf_setting == "off":
        findings.append(Finding("ebpf", False, 'eBPF socket probe off (general.ebpf = "off"): '
                                "short connections rely on conntrack events and polling",
                                'set general.ebpf = "auto" in bwmon.toml (or '
                                "BWMON_GENERAL__EBPF=auto)"))
    elif reason is None:
        findings.append(Finding("ebpf", True, "eBPF socket probe available (libbpf, on "
                                "sock_send_length/sock_recv_length): owners of short "
                                "connections, UDP bytes"))
    else:
        findings.append(Finding("ebpf", False, f"eBPF attribution unavailable ({reason}); "
                                "short connections rely on conntrack events and polling",
                                owners.fix()))
    # what is measured without conntrack goes first: its checks are upgrades to it
    at = len(capabilities.ALL)
    findings[at:at] = [check_socket_counters(proc_root), _check_udp(findings)]
    return findings


def blocking(findings: Sequence[Finding]) -> bool:
    """True when conntrack can measure nothing: no table, no accounting, or no family tracked."""
    failed = {f.check for f in findings if not f.ok}
    return bool(failed & BLOCKING) or tracks_nothing(findings)


def tracks_nothing(findings: Sequence[Finding]) -> bool:
    """True when the tracking checks ran and no address family is tracked (no rule in this
    namespace uses conntrack): the kernel then makes no conntrack entries, so no events."""
    tracked = [f for f in findings if f.check in TRACKING]
    return bool(tracked) and not any(f.ok for f in tracked)


def measuring(findings: Sequence[Finding]) -> bool:
    """True when something is measured: conntrack counts, or the socket counters measure TCP."""
    return not blocking(findings) or any(f.check == SOCKETS and f.ok for f in findings)


def upgrade(finding: Finding, findings: Sequence[Finding]) -> bool:
    """A failed conntrack check while the socket counters measure: fixing it adds something
    (CONNTRACK_ADDS), nothing stops without it."""
    if finding.ok or not any(f.check == SOCKETS and f.ok for f in findings):
        return False
    return finding.check in BLOCKING or finding.check in TRACKING or finding.check in (
        "udp", "events", "conntrack-tool")


def fix_commands(fix: str) -> list[list[str]]:
    """The argv of each command in a fix line (`a && b`); no shell is involved."""
    return [shlex.split(part) for part in fix.split(" && ")]


def advice(fix: str) -> bool:
    """Whether a fix is words asking the user to act ("run bwmon as root, or grant it …",
    "apply the conntrack fixes …") rather than a command line."""
    return fix.startswith(("run ", "set ", "apply "))


def fixable(finding: Finding) -> bool:
    """Whether `apply_fixes` can run this finding's fix (rather than ask the user to act)."""
    return (not finding.ok and finding.fix is not None
            and not finding.fix.startswith("sudo ") and not advice(finding.fix))


async def apply_fixes(findings: Sequence[Finding]) -> list[str]:
    """Run the fix of each failing finding, in order; one line per command with its outcome.

    Raises PermissionError when not root, before changing anything. A fix shared by several
    findings (e.g. `modprobe nf_conntrack`) runs once.
    """
    if os.geteuid() != 0:
        raise PermissionError("applying fixes needs root: run `sudo bwmon doctor --fix`")
    done: set[str] = set()
    report: list[str] = []
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for finding in findings:
        if not fixable(finding) or finding.fix in done:
            continue
        assert finding.fix is not None
        done.add(finding.fix)
        for argv in fix_commands(finding.fix):
            if argv[:2] == ["apt-get", "install"]:
                argv = [*argv[:2], "-y", *argv[2:]]
            report.append(await _run_fix(argv, env))
    return report


async def _run_fix(argv: list[str], env: dict[str, str]) -> str:
    line = shlex.join(argv)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env,
        )
    except OSError as exc:
        return f"{line}: failed: {exc.strerror}"
    out, _ = await proc.communicate()
    if proc.returncode == 0:
        return f"{line}: ok"
    tail = out.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    return f"{line}: failed (status {proc.returncode}): {tail[0]}"
