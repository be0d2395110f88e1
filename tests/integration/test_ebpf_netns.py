"""The eBPF source on the real kernel: 1 ms connections in a test namespace get their owner,
other namespaces are seen (and told apart), and a hostile comm cannot forge a sighting."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bwmon.core.sanitize import decode_comm
from bwmon.core.sources.ebpf import EbpfOwners, Sighting
from tests.conftest import TRAFFIC
from tests.helpers.netns import NetNS

pytestmark = pytest.mark.privileged
PORT = 47822

# Each connection: connect, send a tiny request, read the (empty) reply until EOF, close (~1 ms).
CLIENT = r"""
import json, socket, sys, time
proto, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
start = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
ports, took = [], 0.0
for _ in range(count):
    t = time.perf_counter()
    if proto == "tcp":
        with socket.create_connection((host, port)) as s:
            ports.append(s.getsockname()[1])
            s.sendall(b"\0" * 8 + b"hello")
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
    else:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                           socket.SOCK_DGRAM) as s:
            s.connect((host, port))
            s.send(b"hello")
            ports.append(s.getsockname()[1])
    took += time.perf_counter() - t
print(json.dumps({"ports": ports, "start": start, "avg_ms": 1000 * took / count}))
"""


def client(ns: NetNS, proto: str, host: str, count: int, tag: str) -> tuple[int, dict[str, object]]:
    """Run the client in `ns` (argv ends with a distinctive tag); its pid and its report."""
    p = ns.popen([sys.executable, "-c", CLIENT, proto, host, str(PORT), str(count), tag],
                 stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0
    return p.pid, json.loads(out)


def sighted(seen: list[Sighting], pid: int, proto: str, ports: list[int]) -> list[int]:
    hits = {s.lport for s in seen if s.pid == pid and s.proto == proto and s.rport == PORT}
    return [p for p in ports if p in hits]


async def test_short_connections_get_their_owner() -> None:
    with NetNS() as ns, NetNS() as other:
        reason = EbpfOwners().available()
        if reason is not None:
            kernel = reason.startswith(("no BTF", "tracepoints missing"))
            # only a kernel without the feature may skip in CI (see tests/conftest.py)
            pytest.skip(f"{'kernel lacks eBPF support' if kernel else 'eBPF unavailable'}: "
                        f"{reason}")
        sinks = [n.popen([sys.executable, TRAFFIC, "sink", "--port", str(PORT)],
                         stdout=subprocess.PIPE, text=True) for n in (ns, other)]
        for sink in sinks:
            assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        owners = EbpfOwners(netns_inode=os.stat(Path("/run/netns") / ns.name).st_ino)
        everywhere = EbpfOwners(all_namespaces=True)
        seen: list[Sighting] = []
        seen_all: list[Sighting] = []
        problems: list[str] = []
        task = asyncio.create_task(owners.run(seen.append, problems.append))
        task_all = asyncio.create_task(everywhere.run(seen_all.append, problems.append))
        try:
            await asyncio.wait_for(owners.ready.wait(), 60)
            await asyncio.wait_for(everywhere.ready.wait(), 60)

            tcp_pid, tcp = await asyncio.to_thread(client, ns, "tcp", "127.0.0.1", 50,
                                                   "bwmon-ebpf-tcp-tag")
            udp_pid, udp = await asyncio.to_thread(client, ns, "udp", "::1", 20,
                                                   "bwmon-ebpf-udp-tag")
            far_pid, _ = await asyncio.to_thread(client, other, "tcp", "127.0.0.1", 10,
                                                 "bwmon-ebpf-elsewhere")
            await asyncio.sleep(0.5)  # let the last lines arrive
        finally:
            for t in (task, task_all):
                t.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await t
            for sink in sinks:
                sink.kill()
                sink.wait()
        assert problems == []
        assert float(tcp["avg_ms"]) < 20  # they really were short (~1 ms; loaded machine)

        tcp_ports = list(tcp["ports"])  # type: ignore[call-overload]
        hit = sighted(seen, tcp_pid, "tcp", tcp_ports)
        assert len(hit) >= 0.95 * len(tcp_ports), (len(hit), len(tcp_ports))
        mine = [s for s in seen if s.pid == tcp_pid]
        # the client ran as sys.executable: its comm is that file's name (python3, or a venv's
        # python)
        assert {s.comm for s in mine} == {Path(sys.executable).name[:15]}
        assert {s.start for s in mine} == {tcp["start"]}  # same as /proc/PID/stat
        assert {(s.local, s.remote, s.family) for s in mine} == {("127.0.0.1", "127.0.0.1", 4)}

        udp_ports = list(udp["ports"])  # type: ignore[call-overload]
        hit = sighted(seen, udp_pid, "udp", udp_ports)
        assert len(hit) >= 0.95 * len(udp_ports), (len(hit), len(udp_ports))
        assert {s.family for s in seen if s.pid == udp_pid} == {6}

        # the sink answered on the server side: its accepted sockets are sighted too
        assert any(s.lport == PORT and s.rport in tcp_ports for s in seen)
        # another namespace's traffic is not reported to a reader of one namespace...
        assert not [s for s in seen if s.pid == far_pid]
        # ...but the probe sees every namespace, each sighting naming its own
        inodes = {n.name: os.stat(Path("/run/netns") / n.name).st_ino for n in (ns, other)}
        assert {s.netns for s in seen_all if s.pid == far_pid} == {inodes[other.name]}
        assert {s.netns for s in seen_all if s.pid == tcp_pid} == {inodes[ns.name]}


# Sets its own comm (argv[1], hex), then sends UDP datagrams to 127.0.0.1:PORT.
NAMED = r"""
import socket, sys, time
with open("/proc/self/comm", "wb") as f:
    f.write(bytes.fromhex(sys.argv[1]))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(b"x" * 10, ("127.0.0.1", int(sys.argv[2])))
print(s.getsockname()[1], flush=True)
"""


async def test_a_comm_cannot_forge_or_hide_a_sighting() -> None:
    """A process names itself with a line break followed by what looks like another record (the
    bpftrace probe printed comm raw, so its parser cut the name at the newline); the probe's
    records are binary, so the name arrives whole, escaped, on the process's own sighting."""
    forged = b"ok\nS 1 0 17 4 1"  # 15 bytes: all the kernel keeps
    with NetNS(acct=False, track=False) as ns:
        reason = EbpfOwners().available()
        if reason is not None:
            pytest.skip(f"kernel lacks eBPF support: {reason}")
        owners = EbpfOwners(netns_inode=os.stat(Path("/run/netns") / ns.name).st_ino)
        seen: list[Sighting] = []
        problems: list[str] = []
        task = asyncio.create_task(owners.run(seen.append, problems.append))
        try:
            await asyncio.wait_for(owners.ready.wait(), 60)
            p = ns.popen([sys.executable, "-c", NAMED, forged.hex(), str(PORT)],
                         stdout=subprocess.PIPE, text=True)
            out, _ = await asyncio.to_thread(p.communicate, timeout=30)
            await asyncio.sleep(0.3)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert problems == []
        mine = [s for s in seen if s.pid == p.pid]
        assert mine and {s.comm for s in mine} == {decode_comm(forged)}
        assert decode_comm(forged) == "ok\\x0aS 1 0 17 4 1"  # one name, the break visible
        assert {s.lport for s in mine} == {int(out)}
        assert all(s.pid in (p.pid,) for s in seen if s.proto == "udp")  # nothing forged


# Fills the ring: 3,000 UDP sockets sending one datagram each (3,000 sightings, ~300 KiB of
# records: more than the 256 KiB ring), then waits; on a line from stdin, one socket of its own
# sends, and again on a second line. That socket's port is its own: sightings are told apart by
# port, and a filler socket given the same ephemeral port (~1 run in 10) made the test fail.
FILLER = r"""
import socket, sys
for _ in range(3000):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"f", ("127.0.0.1", 9))
last = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
last.bind(("127.0.0.1", 20000))  # below the ephemeral range: no filler socket had its port
print("full", flush=True)
for line in sys.stdin:
    last.sendto(b"x", ("127.0.0.1", 9))
    print(last.getsockname()[1], flush=True)
"""


def test_a_sighting_that_found_the_ring_full_comes_at_the_next_send() -> None:
    """While the reader is busy the ring may fill; the socket that found it full is reported at
    its next send instead of never (its first sight is not remembered until written)."""
    from bwmon.core.sources.bpf.loader import RING_BYTES, load
    from bwmon.core.sources.bpf.ring import RingReader
    from bwmon.core.sources.ebpf import sighting

    reason = EbpfOwners().available()
    if reason is not None:
        pytest.skip(f"kernel lacks eBPF support: {reason}")
    with NetNS(acct=False, track=False) as ns:
        probe = load()
        ring = RingReader(probe.rings, RING_BYTES)
        p = ns.popen([sys.executable, "-c", FILLER], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdin is not None and p.stdout is not None
            assert p.stdout.readline().strip() == "full"
            p.stdin.write("\n")
            p.stdin.flush()
            port = int(p.stdout.readline())  # its first send: the ring is still full
            assert probe.lost_sightings() > 0
            first = [s for raw in ring.drain() if (s := sighting(raw)) and s.lport == port]
            p.stdin.write("\n")  # the ring has room again: the second send reports it
            p.stdin.flush()
            assert int(p.stdout.readline()) == port
            second = [s for raw in ring.drain() if (s := sighting(raw)) and s.lport == port]
        finally:
            p.kill()
            p.wait()
            ring.close()
            probe.close()
    assert first == []
    assert [(s.pid, s.proto) for s in second] == [(p.pid, "udp")]
