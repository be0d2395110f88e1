"""UDP bytes from the eBPF socket probe on the real kernel, in namespaces that track nothing
(no conntrack rule, accounting off): what the generator sent and the receiver read, per socket,
on the right process, in every namespace."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from bwmon.core.model import SocketBytes
from bwmon.core.sources.bpf.loader import LoadedProbe, load
from bwmon.core.sources.ebpf import EbpfOwners
from bwmon.core.sources.ebpf_bytes import EbpfBytes
from tests.helpers.netns import NetNS

pytestmark = pytest.mark.privileged
PORT = 47911

# Reads datagrams on [::]:PORT (dual stack) until stdin closes; prints the bytes it read.
RECEIVER = r"""
import socket, sys, threading
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind(("::", int(sys.argv[1])))
got = 0
def read():
    global got
    while True:
        got += len(s.recv(65536))
threading.Thread(target=read, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
print(got, flush=True)
"""

# Sends COUNT datagrams of SIZE bytes to HOST:PORT, connected or not; prints what send() took.
GENERATOR = r"""
import json, socket, sys, time
host, port, count, size, connect = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                    int(sys.argv[4]), sys.argv[5] == "1")
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
if connect:
    s.connect((host, port))
sent = 0
for i in range(count):
    sent += s.send(b"u" * size) if connect else s.sendto(b"u" * size, (host, port))
    if i % 50 == 49:
        time.sleep(0.001)  # the receiver keeps up: nothing dropped, nothing to explain
start = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
print(json.dumps({"sent": sent, "port": s.getsockname()[1], "start": start}), flush=True)
"""


@pytest.fixture
def probe() -> Iterator[LoadedProbe]:
    reason = EbpfOwners().available()
    if reason is not None:
        pytest.skip(f"kernel lacks eBPF support: {reason}")
    loaded = load()
    try:
        yield loaded
    finally:
        loaded.close()


def inode(ns: NetNS) -> int:
    return os.stat(Path("/run/netns") / ns.name).st_ino


def receiver(ns: NetNS) -> subprocess.Popen[str]:
    p = ns.popen([sys.executable, "-c", RECEIVER, str(PORT)], stdin=subprocess.PIPE,
                 stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def generate(ns: NetNS, host: str, count: int, size: int, connect: bool
             ) -> tuple[int, dict[str, int]]:
    p = ns.popen([sys.executable, "-c", GENERATOR, host, str(PORT), str(count), str(size),
                  "1" if connect else "0"], stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0
    return p.pid, json.loads(out)


def received(p: subprocess.Popen[str]) -> int:
    out, _ = p.communicate("", timeout=30)
    return int(out)


def of(rows: Sequence[SocketBytes] | None, pid: int) -> list[SocketBytes]:
    assert rows is not None
    return [r for r in rows if r.owner is not None and r.owner.pid == pid]


@pytest.mark.parametrize(("host", "connect"), [("127.0.0.1", False), ("::1", True)])
async def test_udp_payload_lands_on_the_generator_and_the_receiver(
        probe: LoadedProbe, host: str, connect: bool) -> None:
    with NetNS(acct=False, track=False) as ns:
        src = EbpfBytes(probe, netns=frozenset({inode(ns)}))
        sink = receiver(ns)
        pid, gen = await asyncio.to_thread(generate, ns, host, 3000, 1200, connect)
        got = received(sink)
        rows = await src.read()
    truth = gen["sent"]
    assert truth == 3000 * 1200
    mine = of(rows, pid)
    assert sum(r.bytes_out for r in mine) >= 0.99 * truth, (mine, truth)
    assert sum(r.bytes_out for r in mine) <= truth  # payload only, nothing counted twice
    r = mine[0]
    assert len(mine) == 1 and r.proto == "udp" and r.lport == gen["port"]
    assert r.owner is not None and r.owner.start == gen["start"]  # as /proc/PID/stat says
    assert (r.family, r.rport) == ((6, PORT) if connect else (4, 0))
    server = of(rows, sink.pid)
    assert got > 0 and sum(r.bytes_in for r in server) >= 0.99 * got


async def test_a_socket_in_another_namespace_is_seen_with_its_namespace(
        probe: LoadedProbe) -> None:
    with NetNS(acct=False, track=False) as ns, NetNS(acct=False, track=False) as other:
        here = EbpfBytes(probe, netns=frozenset({inode(ns)}))
        everywhere = EbpfBytes(probe, all_namespaces=True)
        sink = receiver(other)
        pid, gen = await asyncio.to_thread(generate, other, "127.0.0.1", 200, 100, False)
        received(sink)
        assert of(await here.read(), pid) == []  # not the namespace asked for
        mine = of(await everywhere.read(), pid)
        assert [(r.netns, r.bytes_out) for r in mine] == [(inode(other), gen["sent"])]


async def test_a_socket_that_fell_silent_is_reported_closed_once(probe: LoadedProbe) -> None:
    """UDP has no close tracepoint: an idle entry is taken out of the kernel map with its final
    counters (closed), and is not reported again."""
    with NetNS(acct=False, track=False) as ns:
        src = EbpfBytes(probe, netns=frozenset({inode(ns)}), retire_after=0.5)
        sink = receiver(ns)
        pid, gen = await asyncio.to_thread(generate, ns, "127.0.0.1", 100, 100, False)
        received(sink)
        first = of(await src.read(), pid)
        await asyncio.sleep(0.7)
        retired = of(await src.read(), pid)
        after = of(await src.read(), pid)
    assert [(r.closed, r.bytes_out) for r in first] == [(False, gen["sent"])]
    assert [(r.closed, r.bytes_out) for r in retired] == [(True, gen["sent"])]
    assert after == []
