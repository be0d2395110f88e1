"""eBPF socket probe, the parts that need no kernel: record decoding (the probe's binary layout),
availability on fixture /sys trees, the byte source over a stand-in map, and the shipped object
matching its source (and rebuilding from it)."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from bwmon.core.capabilities import ALL_BITS, CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN
from bwmon.core.model import ByteSource, ProcKey
from bwmon.core.sanitize import decode_comm
from bwmon.core.sources.bpf import loader, records
from bwmon.core.sources.ebpf import EbpfOwners, Sighting, sighting
from bwmon.core.sources.ebpf_bytes import EbpfBytes

BPF_DIR = Path(loader.__file__).parent
NETNS = 4026532177


def v4(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, a) + bytes(12)


def v6(a: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, a)


def record(*, pid: int = 4242, start_ns: int = 344_846_807_377, nsecs: int = 345_040_723_335,
           netns: int = NETNS, uid: int = 1000, family: int = 2, proto: int = 6,
           lport: int = 46468, rport: int = 5555, laddr: bytes | None = None,
           raddr: bytes | None = None, comm: bytes = b"curl", cookie: int = 77) -> bytes:
    """A struct sighting as the probe writes it."""
    laddr = v4("10.0.0.1") if laddr is None else laddr
    raddr = v4("10.0.0.2") if raddr is None else raddr
    return records.SIGHTING.pack(cookie, start_ns, nsecs, pid, netns, uid, family, proto, lport,
                                 rport, laddr, raddr, comm.ljust(16, b"\0"))


def test_layouts_match_the_c_structs() -> None:
    """96 and 112 bytes, as socket_probe.bpf.c's struct sighting and struct sock_bytes."""
    assert records.SIGHTING.size == 96
    assert records.SOCK_BYTES_SIZE == 112


def test_an_ipv4_tcp_sighting() -> None:
    s = sighting(record(), clk_tck=100)
    assert s == Sighting(pid=4242, start=34484, comm="curl", proto="tcp", family=4,
                         local="10.0.0.1", lport=46468, remote="10.0.0.2", rport=5555,
                         time=345.040723335, netns=NETNS, cookie=77, uid=1000)
    assert s.key == ProcKey(4242, 34484)  # start in clock ticks, as /proc/PID/stat


def test_a_comm_is_bytes_not_a_line() -> None:
    """A newline, an escape or a forged record inside a comm stays inside the name: the record
    is binary, the name decoded like /proc/PID/comm (sanitize.decode_comm)."""
    forged = b"ok\nS 1 0 6 4 1"  # 15 bytes, as the kernel keeps
    s = sighting(record(comm=forged))
    assert s is not None and s.comm == decode_comm(forged) == "ok\\x0aS 1 0 6 4 1"
    cut = "загрузчик-файлов".encode()[:13] + b"\x1b["  # cut mid-character, then an escape
    s = sighting(record(comm=cut))
    assert s is not None and s.comm == decode_comm(cut) == "загруз\\xd1\\x1b["


def test_ipv4_mapped_addresses_become_ipv4() -> None:
    s = sighting(record(family=10, proto=17, laddr=v6("::ffff:127.0.0.1"),
                        raddr=v6("::ffff:127.0.0.1")))
    assert s is not None
    assert (s.proto, s.family, s.local, s.remote) == ("udp", 4, "127.0.0.1", "127.0.0.1")


def test_ipv6_and_unconnected_udp() -> None:
    s = sighting(record(family=10, laddr=v6("fd00::1"), raddr=v6("fd00::2")))
    assert s is not None and (s.family, s.local, s.remote) == (6, "fd00::1", "fd00::2")
    u = sighting(record(family=10, proto=17, laddr=v6("::"), raddr=v6("::"), rport=0))
    assert u is not None and (u.remote, u.rport, u.family) == ("::", 0, 6)
    m = sighting(record(family=10, proto=17, laddr=v6("::ffff:10.0.0.1"), raddr=v6("::"),
                        rport=0))
    assert m is not None and (m.family, m.local, m.remote) == (4, "10.0.0.1", "0.0.0.0")


@pytest.mark.parametrize("raw", [b"", b"\0" * 40, record(family=1), record()[:95]])
def test_what_is_not_a_sighting_is_ignored(raw: bytes) -> None:
    assert sighting(raw) is None


def test_other_protocols_are_named() -> None:
    assert [sighting(record(proto=p)).proto for p in (17, 1, 58, 132, 99)] == [  # type: ignore[union-attr]
        "udp", "icmp", "icmpv6", "sctp", "proto99"]


# -- availability -------------------------------------------------------------------------------

def sys_tree(root: Path, *, btf: bool = True, btf_names: bool = True) -> Path:
    (root / "kernel" / "btf").mkdir(parents=True, exist_ok=True)
    if btf:
        names = b"btf_trace_sock_send_length\0btf_trace_sock_recv_length\0" if btf_names else b""
        (root / "kernel" / "btf" / "vmlinux").write_bytes(b"\0" + names)
    return root


def owners(tmp_path: Path, *, caps: int = ALL_BITS, **tree: bool) -> EbpfOwners:
    return EbpfOwners(sys_root=sys_tree(tmp_path / "sys", **tree), proc_root=tmp_path,
                      caps=caps, netns_inode=NETNS)


def test_available_with_btf_and_the_tracepoints(tmp_path: Path) -> None:
    assert owners(tmp_path).available() is None


def test_capabilities_suffice_without_uid_0(tmp_path: Path) -> None:
    """libbpf needs CAP_BPF + CAP_PERFMON, not root (bpftrace wanted uid 0 as well)."""
    assert owners(tmp_path, caps=1 << CAP_BPF | 1 << CAP_PERFMON).available() is None
    e = owners(tmp_path, caps=1 << CAP_PERFMON)  # CAP_BPF alone is not enough
    assert "needs CAP_BPF + CAP_PERFMON" in (e.available() or "")
    assert "CAP_BPF and CAP_PERFMON" in (e.fix() or "")
    (tmp_path / "old").mkdir()
    old_kernel_root = owners(tmp_path / "old", caps=1 << CAP_SYS_ADMIN)
    assert old_kernel_root.available() is None  # before Linux 5.8, CAP_SYS_ADMIN stood for both


def test_no_btf(tmp_path: Path) -> None:
    assert "no BTF" in (owners(tmp_path, btf=False).available() or "")


def test_tracepoints_missing(tmp_path: Path) -> None:
    assert "tracepoints missing" in (owners(tmp_path, btf_names=False).available() or "")


def test_libbpf_missing_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "LIBBPF", "libbpf-no-such.so.1")
    e = owners(tmp_path)
    assert "libbpf missing" in (e.available() or "")
    assert e.fix() == "apt-get install libbpf1"
    with pytest.raises(loader.ProbeError, match="libbpf missing"):
        loader.load()


async def test_run_without_prerequisites_says_why_and_returns(tmp_path: Path) -> None:
    e = owners(tmp_path, caps=0)
    problems: list[str] = []
    await e.run(lambda s: None, problems.append)
    assert problems and "needs CAP_BPF" in problems[0]


# -- the byte source over a stand-in map ---------------------------------------------------------

class FakeMap:
    """Stands in for a loaded probe's byte-sum map: cookie → (in, out, first sighting)."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[int, int, bytes]] = {}
        self.taken: list[int] = []

    def put(self, cookie: int, bytes_in: int, bytes_out: int, **first: object) -> None:
        self.entries[cookie] = (bytes_in, bytes_out, record(cookie=cookie, **first))  # type: ignore[arg-type]

    def _raw(self, cookie: int) -> bytes:
        i, o, first = self.entries[cookie]
        return records.SOCK_BYTES.pack(i, o) + first

    def sockets_now(self) -> list[tuple[int, bytes]]:
        return [(c, self._raw(c)) for c in self.entries]

    def take(self, cookie: int) -> bytes | None:
        self.taken.append(cookie)
        raw = self._raw(cookie)
        del self.entries[cookie]
        return raw

    def lost_sightings(self) -> int:
        return 3

    def close(self) -> None:
        pass


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def source(fake: FakeMap, clock: Clock, **kw: object) -> EbpfBytes:
    return EbpfBytes(fake, netns=frozenset({NETNS}), clk_tck=100, retire_after=30.0,  # type: ignore[arg-type]
                     clock=clock, **kw)  # type: ignore[arg-type]


def proc_with(root: Path, pid: int = 4242, start_ticks: int = 34484) -> Path:
    """A /proc holding one process (record()'s owner: start_ns 344_846_807_377 at 100 Hz)."""
    (root / str(pid)).mkdir(parents=True, exist_ok=True)
    (root / str(pid) / "stat").write_bytes(
        f"{pid} (curl) S 1 {pid} {pid} 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start_ticks} 0 0"
        .encode())
    return root


def by_cookie(rows: Sequence[object] | None) -> dict[int, object]:
    assert rows is not None
    return {r.cookie: r for r in rows}  # type: ignore[attr-defined]


async def test_sockets_are_reported_with_their_owner_and_namespace() -> None:
    fake, clock = FakeMap(), Clock()
    fake.put(1, 500, 7000, proto=17, rport=0, raddr=v4("0.0.0.0"), lport=53000)
    fake.put(2, 10, 20, proto=17, netns=NETNS + 1)  # another namespace
    rows = await source(fake, clock).read()
    assert rows is not None and len(rows) == 1
    r = rows[0]
    assert (r.source, r.proto, r.bytes_in, r.bytes_out, r.closed) == (
        ByteSource.EBPF, "udp", 500, 7000, False)
    assert (r.local, r.lport, r.remote, r.rport) == ("10.0.0.1", 53000, "", 0)
    assert r.owner == ProcKey(4242, 34484) and r.uid == 1000 and r.netns == NETNS
    everywhere = EbpfBytes(fake, all_namespaces=True, clk_tck=100, clock=clock)  # type: ignore[arg-type]
    assert set(by_cookie(await everywhere.read())) == {1, 2}


async def test_an_idle_socket_is_retired_with_its_final_counters(tmp_path: Path) -> None:
    fake, clock = FakeMap(), Clock()
    src = source(fake, clock, proc_root=proc_with(tmp_path))
    fake.put(1, 0, 100, proto=17)
    fake.put(2, 0, 100, proto=17)
    await src.read()
    clock.now += 20
    fake.put(2, 0, 250, proto=17)  # 2 keeps talking
    await src.read()
    clock.now += 15  # 1 has been still for 35 s, 2 for 15 s
    rows = by_cookie(await src.read())
    assert rows[1].closed and rows[1].bytes_out == 100  # type: ignore[attr-defined]
    assert not rows[2].closed  # type: ignore[attr-defined]
    assert fake.taken == [1] and set(fake.entries) == {2}
    fake.put(1, 0, 40, proto=17)  # it spoke again: a fresh entry, counting from zero
    rows = by_cookie(await src.read())
    assert not rows[1].closed and rows[1].bytes_out == 40  # type: ignore[attr-defined]


async def test_an_idle_socket_of_an_exited_owner_is_retired_at_once(tmp_path: Path) -> None:
    """UDP has no close to see: an idle entry waits 30 s, but not when the process that
    used it has exited (or its pid now names another process): rows counted an exited
    program's sockets and the program itself for half a minute."""
    fake, clock = FakeMap(), Clock()
    root = proc_with(tmp_path)
    src = source(fake, clock, proc_root=root)
    fake.put(1, 0, 100, proto=17)  # its owner, 4242, runs
    fake.put(2, 0, 100, proto=17, pid=4343)  # its owner has exited
    fake.put(3, 0, 100, proto=17, pid=4444)  # its owner's pid now names a later process
    proc_with(root, 4444, start_ticks=99999)
    rows = by_cookie(await src.read())
    assert not any(r.closed for r in rows.values())  # type: ignore[attr-defined]
    fake.put(2, 0, 150, proto=17, pid=4343)  # still talking: not retired, whoever owns it
    clock.now += 1
    rows = by_cookie(await src.read())
    assert not rows[1].closed and not rows[2].closed  # type: ignore[attr-defined]
    assert rows[3].closed and rows[3].bytes_out == 100  # type: ignore[attr-defined]
    clock.now += 1
    rows = by_cookie(await src.read())
    assert not rows[1].closed and rows[2].closed  # type: ignore[attr-defined]
    assert fake.taken == [3, 2] and set(fake.entries) == {1}


async def test_status_says_what_is_measured_and_what_was_lost() -> None:
    fake, clock = FakeMap(), Clock()
    src = source(fake, clock)
    fake.put(1, 0, 100, proto=17)
    await src.read()
    st = src.status()
    assert st.active and st.counts_bytes and "UDP" in st.detail
    assert "1 in the kernel map" in st.detail and "ring full 3 times" in st.detail
    assert src.protos >= {"udp", "icmp"} and "tcp" not in src.protos


# -- the shipped object ------------------------------------------------------------------------

def test_the_shipped_object_was_built_from_this_source() -> None:
    """build.sh records the source's hash beside the object: editing the source without
    rebuilding (and committing) the object fails here."""
    recorded = (BPF_DIR / "socket_probe.bpf.sha256").read_text().split()[0]
    assert hashlib.sha256((BPF_DIR / "socket_probe.bpf.c").read_bytes()).hexdigest() == recorded


def _sections(obj: Path) -> set[str]:
    out = subprocess.run(["llvm-objdump", "-h", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    rows = [line.split() for line in out.splitlines()]
    return {row[1] for row in rows if len(row) > 2 and row[0].isdigit()}


def test_the_object_rebuilds_from_its_recipe(tmp_path: Path) -> None:
    """A reviewer can rebuild it: build.sh in a copy yields an object with the same programs
    and maps (clang, llvm and libbpf-dev come with ./dev's TEST_DEBS)."""
    for tool in ("clang", "llvm-strip", "llvm-objdump"):
        assert shutil.which(tool), f"{tool} missing: ./dev installs clang and llvm"
    for name in ("build.sh", "socket_probe.bpf.c"):
        shutil.copy2(BPF_DIR / name, tmp_path / name)
    subprocess.run(["sh", str(tmp_path / "build.sh")], check=True, capture_output=True)
    rebuilt = tmp_path / "socket_probe.bpf.o"
    assert _sections(rebuilt) == _sections(BPF_DIR / "socket_probe.bpf.o")
    assert {"tp_btf/sock_send_length", "tp_btf/sock_recv_length", ".maps", ".BTF"} <= _sections(
        rebuilt)
