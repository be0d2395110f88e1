"""ConntrackSource against the real kernel in a private namespace: the table file and the
conntrack tool (with the file "missing") report the same flows, with counters that cover the
payload moved plus the IP and transport headers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bwmon.core.model import ConntrackEntry
from bwmon.core.sources.conntrack_read import ConntrackSource
from tests.conftest import TRAFFIC
from tests.helpers.netns import NetNS

pytestmark = pytest.mark.privileged

PORT = 7421
SEND, RECV = 30_000, 70_000  # client payload, server payload per TCP connection
UDP_SEND = 2_500  # in datagrams of at most 1000 bytes: 3 datagrams


@pytest.fixture(scope="module")
def busy_ns() -> Iterator[tuple[NetNS, int]]:
    """A namespace holding finished TCP (IPv4, IPv6) and UDP flows; yields it and a pid in it."""
    with NetNS() as netns:
        yield from _fill(netns)


def _fill(netns: NetNS) -> Iterator[tuple[NetNS, int]]:
    sink = netns.popen([sys.executable, TRAFFIC, "sink", "--port", str(PORT)],
                       stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
    for host in ("127.0.0.1", "::1"):
        netns.run(sys.executable, TRAFFIC, "client", "--tag", "ctsrc", "--host", host,
                  "--port", str(PORT), "--send", str(SEND), "--recv", str(RECV))
        netns.run(sys.executable, TRAFFIC, "client", "--tag", "ctsrc", "--host", host,
                  "--port", str(PORT), "--proto", "udp", "--send", str(UDP_SEND))
    yield netns, sink.pid
    sink.kill()
    sink.wait()


def flows(entries: list[ConntrackEntry]) -> dict[tuple[object, ...], ConntrackEntry]:
    return {(e.family, e.proto, e.orig, e.reply): e for e in entries}


def retransmitted(pid: int) -> int:
    """TCP segments the namespace of `pid` sent again (its RetransSegs counter)."""
    names, values = [line.split()[1:] for line in
                     Path(f"/proc/{pid}/net/snmp").read_text().splitlines()
                     if line.startswith("Tcp:")]
    return int(dict(zip(names, values, strict=True))["RetransSegs"])


def check_counters(e: ConntrackEntry, orig_payload: int, reply_payload: int,
                   resent: int = 0) -> None:
    """Bytes are whole packets: payload plus, per packet, IP (20/40) and TCP (20..60) headers.

    `resent` segments sent again (loopback drops packets when its backlog overflows on a busy
    machine) may each carry up to a loopback segment's payload more, in either direction."""
    ip = 20 if e.family == 4 else 40
    again = resent * 65_536
    assert e.orig_packets and e.reply_packets and e.orig_bytes and e.reply_bytes
    for payload, packets, total in ((orig_payload, e.orig_packets, e.orig_bytes),
                                    (reply_payload, e.reply_packets, e.reply_bytes)):
        assert payload + packets * (ip + 20) <= total <= payload + packets * (ip + 60) + again, (
            f"{total} bytes in {packets} packets for {payload} of payload, {resent} resent")


async def test_file_and_tool_report_the_same_flows(busy_ns: tuple[NetNS, int],
                                                   tmp_path: Path) -> None:
    ns, pid = busy_ns
    file_src = ConntrackSource(Path(f"/proc/{pid}"))  # /proc/PID/net is that namespace's
    tool_src = ConntrackSource(tmp_path, argv_prefix=ns.argv())  # no net/nf_conntrack there
    assert file_src.kind == "file" and tool_src.kind == "tool"
    from_file = flows(await file_src.read())
    from_tool = flows(await tool_src.read())
    assert from_file.keys() == from_tool.keys()
    tcp = [e for e in from_file.values() if e.proto == "tcp" and e.orig.dport == PORT]
    assert sorted(e.family for e in tcp) == [4, 6]
    for e in tcp:
        tool_e = from_tool[(e.family, e.proto, e.orig, e.reply)]
        assert (tool_e.orig_bytes, tool_e.reply_bytes) == (e.orig_bytes, e.reply_bytes)
        assert tool_e.ct_id is not None and e.ct_id is None
        # the client's 8-byte header precedes its payload
        check_counters(e, SEND + 8, RECV, resent=retransmitted(pid))
    udp = [e for e in from_file.values() if e.proto == "udp" and e.orig.dport == PORT]
    assert sorted(e.family for e in udp) == [4, 6]
    for e in udp:
        header = 8 + (20 if e.family == 4 else 40)
        assert e.orig_packets == 3 and e.orig_bytes == UDP_SEND + 3 * header


async def test_a_second_read_reuses_idle_flows(busy_ns: tuple[NetNS, int]) -> None:
    _, pid = busy_ns
    src = ConntrackSource(Path(f"/proc/{pid}"))
    first = {e.key: e for e in await src.read()}
    second = {e.key: e for e in await src.read()}
    idle = [k for k, e in first.items() if e.orig.dport == PORT]
    assert len(idle) == 4 and all(second[k] is first[k] for k in idle)
