"""The socket table and socket → process mapping on this machine's real kernel (loopback only).

Sockets are the test process's own, so no root is needed except for the namespace test.
"""

from __future__ import annotations

import ast
import os
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bwmon.core.model import ProcKey, SocketEntry
from bwmon.core.sources.proc_text import parse_start
from bwmon.core.sources.processes import ProcessTable
from bwmon.core.sources.sock_diag import dump_sockets, dump_tcp_counters, lookup_socket
from bwmon.core.sources.socket_table import SocketIndex, read_proc_sockets
from tests.helpers.netns import NetNS

PROC = Path("/proc")


def inode(s: socket.socket) -> int:
    return os.fstat(s.fileno()).st_ino


def me() -> ProcKey:
    return ProcKey(os.getpid(), parse_start(Path(f"/proc/{os.getpid()}/stat").read_bytes()))


class Sockets:
    """A TCP connection over IPv4 loopback, one over IPv6 to a dual-stack server, and UDP."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.client = socket.create_connection(self.server.getsockname())
        self.accepted, _ = self.server.accept()
        self.dual = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
        self.mapped_client = socket.create_connection(("127.0.0.1", self.dual.getsockname()[1]))
        self.mapped_accepted, _ = self.dual.accept()
        self.udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.udp.bind(("::", 0))
        self.udp_client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp_client.connect(("127.0.0.1", self.udp.getsockname()[1]))

    def all(self) -> list[socket.socket]:
        return [self.server, self.client, self.accepted, self.dual, self.mapped_client,
                self.mapped_accepted, self.udp, self.udp_client]

    def close(self) -> None:
        for s in self.all():
            s.close()


@pytest.fixture
def socks() -> Iterator[Sockets]:
    s = Sockets()
    yield s
    s.close()


def mine(entries: list[SocketEntry], socks: Sockets) -> dict[int, SocketEntry]:
    wanted = {inode(s) for s in socks.all()}
    return {e.inode: e for e in entries if e.inode in wanted}


async def test_sockdiag_and_proc_agree_on_our_sockets(socks: Sockets) -> None:
    diag = mine(dump_sockets(), socks)
    proc = mine(await read_proc_sockets(PROC), socks)
    assert len(diag) == len(socks.all())
    assert diag == proc
    port = socks.dual.getsockname()[1]
    accepted = diag[inode(socks.mapped_accepted)]
    assert (accepted.local, accepted.lport) == ("127.0.0.1", port)  # mapped → plain IPv4


async def test_owners_maps_our_sockets_to_this_process(socks: Sockets) -> None:
    inodes = {inode(s) for s in socks.all()}
    table = ProcessTable(PROC)
    got = await table.owners(inodes, uids={os.geteuid()})
    assert got == dict.fromkeys(inodes, me())
    info = table.info(me())
    assert info is not None and info.uid == os.getuid()
    assert info.cmdline == " ".join(Path("/proc/self/cmdline").read_text().rstrip("\0").split("\0"))
    reads = table.dirs_read
    assert await table.owners(inodes) == got
    assert table.dirs_read == reads  # nothing new: no fd directory read


async def test_a_flow_maps_to_socket_then_process(socks: Sockets) -> None:
    index = SocketIndex(dump_sockets())
    lport = socks.client.getsockname()[1]
    rport = socks.server.getsockname()[1]
    hit = index.find("tcp", "127.0.0.1", lport, "127.0.0.1", rport)
    assert hit is not None and hit.inode == inode(socks.client)
    udp_port = socks.udp.getsockname()[1]
    udp_hit = index.find("udp", "127.0.0.1", udp_port, "127.0.0.1", 1)  # via the :: wildcard
    assert udp_hit is not None and udp_hit.inode == inode(socks.udp)
    owners = await ProcessTable(PROC).owners({hit.inode, udp_hit.inode})
    assert set(owners.values()) == {me()}


def test_lookup_finds_exact_tcp_tuples_and_never_a_listener(socks: Sockets) -> None:
    c, srv = socks.client.getsockname(), socks.server.getsockname()
    assert (hit := lookup_socket("tcp", 4, c[0], c[1], srv[0], srv[1])) is not None
    assert hit.inode == inode(socks.client)
    back = lookup_socket("tcp", 4, srv[0], srv[1], c[0], c[1])
    assert back is not None and back.inode == inode(socks.accepted)
    assert lookup_socket("tcp", 4, srv[0], srv[1], "127.0.0.1", 1) is None
    mc, dual_port = socks.mapped_client.getsockname(), socks.dual.getsockname()[1]
    for family in (4, 6):
        got = lookup_socket("tcp", family, "127.0.0.1", dual_port, mc[0], mc[1])
        assert got is not None and got.inode == inode(socks.mapped_accepted)


def test_lookup_udp_finds_connected_then_bound_socket(socks: Sockets) -> None:
    uc, port = socks.udp_client.getsockname(), socks.udp.getsockname()[1]
    hit = lookup_socket("udp", 4, uc[0], uc[1], "127.0.0.1", port)
    assert hit is not None and hit.inode == inode(socks.udp_client)
    for family, addr in ((4, "127.0.0.1"), (6, "::1")):
        got = lookup_socket("udp", family, addr, port, addr, 4242)
        assert got is not None and got.inode == inode(socks.udp)
    assert lookup_socket("udp", 4, "127.0.0.1", 9, "127.0.0.1", 4242) is None


def test_lookup_is_well_under_a_millisecond(socks: Sockets) -> None:
    c, srv = socks.client.getsockname(), socks.server.getsockname()
    times = []
    for _ in range(51):
        t0 = time.perf_counter()
        lookup_socket("tcp", 4, c[0], c[1], srv[0], srv[1])
        times.append(time.perf_counter() - t0)
    assert statistics.median(times) < 1e-3


def test_tcp_counters_count_payload_each_way(socks: Sockets) -> None:
    payload = b"x" * 50_000
    socks.client.sendall(payload)
    got = 0
    while got < len(payload):
        got += len(socks.accepted.recv(1 << 16))
    counters = {c.entry.inode: c for c in dump_tcp_counters()}
    rx = counters[inode(socks.accepted)]
    tx = counters[inode(socks.client)]
    assert rx.bytes_received == len(payload)
    # bytes_acked also counts the SYN's sequence number
    assert len(payload) <= tx.bytes_sent <= len(payload) + 1


async def test_time_wait_shows_inode_zero_in_both_tables(socks: Sockets) -> None:
    ends = socks.client.getsockname()[1], socks.server.getsockname()[1]
    socks.client.close()  # closing first puts the client end in TIME_WAIT
    socks.accepted.close()
    time.sleep(0.05)
    for entries in (dump_sockets(), await read_proc_sockets(PROC)):
        # both ports: an older connection from the same ephemeral port to another server may
        # still be in TIME_WAIT on a busy machine
        tw = [e for e in entries
              if e.proto == "tcp" and (e.lport, e.rport) == ends and e.state == 6]
        assert len(tw) == 1 and tw[0].inode == 0


@pytest.mark.privileged
def test_sockdiag_dumps_the_namespace_it_runs_in(netns: NetNS) -> None:
    code = (
        "import socket; from bwmon.core.sources.sock_diag import dump_sockets;"
        "s = socket.create_server(('127.0.0.1', 0));"
        "print(sorted((e.proto, e.lport) for e in dump_sockets()))"
    )
    repo = str(Path(__file__).resolve().parents[2])
    with socket.create_server(("127.0.0.1", 0)) as ours:
        out = netns.run(sys.executable, "-c", code, env={**os.environ, "PYTHONPATH": repo}).stdout
        listed = ast.literal_eval(out)  # (proto, port) pairs printed by the child
        assert ("tcp", ours.getsockname()[1]) not in listed
    assert len(listed) == 1 and listed[0][0] == "tcp"  # only the child's own listener
