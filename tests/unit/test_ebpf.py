"""eBPF source: output parsing, availability on fixture /sys trees, and the run loop with a fake
bpftrace (a real subprocess printing what the probe would)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from bwmon.core.capabilities import ALL_BITS, CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN
from bwmon.core.model import ProcKey
from bwmon.core.sanitize import decode_comm
from bwmon.core.sources.ebpf import PROBE, EbpfOwners, Sighting, parse_line


def test_parse_ipv4_tcp_line() -> None:
    s = parse_line("S 4242 344846807377 6 4 10.0.0.1 46468 10.0.0.2 5555 345040723335 curl\n")
    assert s == Sighting(pid=4242, start=34484, comm="curl", proto="tcp", family=4,
                         local="10.0.0.1", lport=46468, remote="10.0.0.2", rport=5555,
                         time=345.040723335)
    assert s.key == ProcKey(4242, 34484)  # start in clock ticks, as /proc/PID/stat


def test_parse_keeps_a_comm_with_spaces() -> None:
    s = parse_line("S 1 0 6 4 1.1.1.1 1 2.2.2.2 2 3 Web Content\n")
    assert s is not None and s.comm == "Web Content"


def test_a_comm_cut_mid_character_or_holding_escapes_reads_as_from_proc() -> None:
    """The probe prints comm's raw bytes; decoded like /proc/PID/comm (sanitize.decode_comm)."""
    comm = "загрузчик-файлов".encode()[:13] + b"\x1b["  # 15 bytes, as the kernel keeps
    raw = b"S 1 0 6 4 1.1.1.1 1 2.2.2.2 2 3 " + comm + b"\n"
    s = parse_line(raw.decode("utf-8", "surrogateescape"))
    assert s is not None and s.comm == decode_comm(comm) == "загруз\\xd1\\x1b["


def test_ipv4_mapped_addresses_become_ipv4() -> None:
    s = parse_line("S 7 0 17 6 ::ffff:127.0.0.1 38362 ::ffff:127.0.0.1 5557 1 python3")
    assert s is not None
    assert (s.proto, s.family, s.local, s.remote) == ("udp", 4, "127.0.0.1", "127.0.0.1")


def test_ipv6_and_unconnected_udp() -> None:
    s = parse_line("S 7 0 6 6 fd00::1 80 fd00::2 4000 1 nginx")
    assert s is not None and (s.family, s.local, s.remote) == (6, "fd00::1", "fd00::2")
    u = parse_line("S 7 0 17 6 :: 55893 :: 0 1 dig")
    assert u is not None and (u.remote, u.rport, u.lport) == ("::", 0, 55893)


@pytest.mark.parametrize("line", [
    "", "ready\n", "Attaching 6 probes...", "S 1 2 3", "Lost 12 events",
    "S x 0 6 4 1.1.1.1 1 2.2.2.2 2 3 a",  # not a pid
    "S 1 0 132 4 1.1.1.1 1 2.2.2.2 2 3 a",  # SCTP: not ours
    "S 1 0 6 4 not-an-ip 1 2.2.2.2 2 3 a",
])
def test_garbage_is_ignored(line: str) -> None:
    assert parse_line(line) is None


def sys_tree(root: Path, *, btf: bool = True, tracefs: bool = True,
             btf_names: bool = True) -> Path:
    kernel = root / "kernel"
    (kernel / "btf").mkdir(parents=True)
    if btf:
        names = b"btf_trace_sock_send_length\0btf_trace_sock_recv_length\0" if btf_names else b""
        (kernel / "btf" / "vmlinux").write_bytes(b"\0" + names)
    (kernel / "tracing").mkdir()
    if tracefs:
        for tp in ("sock_send_length", "sock_recv_length"):
            (kernel / "tracing" / "events" / "sock" / tp).mkdir(parents=True)
    return root


def proc_tree(root: Path, *, tracefs_fs: bool = True) -> Path:
    root.mkdir()
    (root / "filesystems").write_text("nodev\tsysfs\n" + ("nodev\ttracefs\n" if tracefs_fs else ""))
    return root


def owners(tmp_path: Path, *, euid: int = 0, caps: int = ALL_BITS, bpftrace: str = "sh",
           **tree: bool) -> EbpfOwners:
    fs = tree.pop("tracefs_fs", True)
    return EbpfOwners(bpftrace=bpftrace, sys_root=sys_tree(tmp_path / "sys", **tree),
                      proc_root=proc_tree(tmp_path / "proc", tracefs_fs=fs), euid=euid,
                      caps=caps, netns_inode=4026532177)


def test_available_with_tracefs_mounted(tmp_path: Path) -> None:
    e = owners(tmp_path)
    assert e.available() is None
    assert e.argv() == ["sh", str(PROBE), "4026532177"]  # no private mount needed


def test_without_bpf_capabilities(tmp_path: Path) -> None:
    e = owners(tmp_path, euid=1000, caps=1 << CAP_PERFMON)  # CAP_BPF alone is not enough
    assert "needs CAP_BPF + CAP_PERFMON" in (e.available() or "")
    assert "CAP_BPF and CAP_PERFMON" in (e.fix() or "")
    (tmp_path / "old").mkdir()
    old_kernel_root = owners(tmp_path / "old", euid=0, caps=1 << CAP_SYS_ADMIN)
    assert old_kernel_root.available() is None  # before Linux 5.8, CAP_SYS_ADMIN stood for both


def test_bpftrace_wants_uid_0_even_with_the_capabilities(tmp_path: Path) -> None:
    e = owners(tmp_path, euid=1000, caps=1 << CAP_BPF | 1 << CAP_PERFMON)
    assert "uid 0" in (e.available() or "")


def test_no_btf(tmp_path: Path) -> None:
    assert "no BTF" in (owners(tmp_path, btf=False).available() or "")


def test_bpftrace_missing_names_the_package(tmp_path: Path) -> None:
    e = owners(tmp_path, bpftrace="no-such-bpftrace")
    assert "bpftrace missing" in (e.available() or "")
    assert e.fix() == "apt-get install bpftrace"


def test_tracepoints_missing(tmp_path: Path) -> None:
    e = owners(tmp_path, tracefs=False, btf_names=False)
    assert "tracepoints missing" in (e.available() or "")


def test_unmounted_tracefs_is_mounted_privately_for_bpftrace(tmp_path: Path) -> None:
    e = owners(tmp_path, tracefs=False)
    assert e.available() is None
    argv = e.argv()
    assert argv[:4] == ["unshare", "--mount", "--propagation", "private"]
    assert str(tmp_path / "sys" / "kernel" / "tracing") in argv


def test_unmounted_tracefs_without_kernel_support_names_the_mount(tmp_path: Path) -> None:
    e = owners(tmp_path, tracefs=False, tracefs_fs=False)
    assert "tracefs not mounted" in (e.available() or "")
    assert e.fix() == "mount -t tracefs tracefs /sys/kernel/tracing"


FAKE = """#!/bin/sh
# stands in for bpftrace: argv is PROBE NETNS_INODE
echo "Attaching 6 probes..."
echo ready
echo "S 4242 344846807377 6 4 10.0.0.1 46468 10.0.0.2 5555 345040723335 curl"
echo "garbage"
echo "S 4243 0 17 6 ::ffff:10.0.0.1 53000 ::ffff:10.0.0.9 53 345040723999 dig"
echo "ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK for bpftrace." >&2
echo "ERROR: failed to attach probe" >&2
exit 1
"""


async def test_run_reports_sightings_then_the_crash(tmp_path: Path) -> None:
    fake = tmp_path / "fake-bpftrace"
    fake.write_text(FAKE)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    e = owners(tmp_path, bpftrace=str(fake))
    seen: list[Sighting] = []
    problems: list[str] = []
    task = asyncio.create_task(e.run(seen.append, problems.append))
    for _ in range(200):
        if problems:
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(s.pid, s.proto, s.lport) for s in seen] == [(4242, "tcp", 46468), (4243, "udp", 53000)]
    assert len(problems) == 1
    assert "status 1" in problems[0] and "failed to attach probe" in problems[0]
    assert "RLIMIT_MEMLOCK" not in problems[0]  # benign noise is not shown
    assert e.status().active is False and e.sightings == 2


async def test_run_without_prerequisites_says_why_and_returns(tmp_path: Path) -> None:
    e = owners(tmp_path, euid=1000, caps=0)
    problems: list[str] = []
    await asyncio.wait_for(e.run(lambda s: None, problems.append), 5)
    assert problems and "needs CAP_BPF" in problems[0]
