"""sock_diag message decoding and error handling, on hand-built netlink replies (no kernel)."""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterator

import pytest

from bwmon.core.sources import sock_diag as sockdiag
from bwmon.core.sources.sock_diag import SockDiagError
from tests.helpers.factories import socket_entry


def diag_msg(family: int, state: int, local: str, lport: int, remote: str, rport: int,
             uid: int, inode: int, tcp_bytes: tuple[int, int] | None = None) -> bytes:
    """An inet_diag_msg as the kernel sends it, optionally with an INET_DIAG_INFO attribute."""
    def packed(addr: str) -> bytes:
        return socket.inet_pton(family, addr).ljust(16, b"\0")

    body = (struct.pack("=BBBB", family, state, 0, 0)
            + struct.pack("!HH16s16s", lport, rport, packed(local), packed(remote))
            + struct.pack("=IIIIIIII", 0, 1, 2, 0, 0, 0, uid, inode))
    if tcp_bytes is not None:
        info = bytearray(232)
        struct.pack_into("=QQ", info, 120, *tcp_bytes)
        body += struct.pack("=HH", 4 + len(info), sockdiag.INET_DIAG_INFO) + bytes(info)
    return body


def netlink(mtype: int, payload: bytes, seq: int = 1) -> bytes:
    msg = struct.pack("=IHHII", 16 + len(payload), mtype, 0, seq, 0) + payload
    return msg + b"\0" * (-len(msg) % 4)


class FakeNetlink:
    """Replays datagrams as a netlink socket would return them."""

    def __init__(self, datagrams: list[bytes]) -> None:
        self.datagrams: Iterator[bytes] = iter(datagrams)

    def recv(self, _size: int) -> bytes:
        return next(self.datagrams)


def test_decodes_an_ipv4_socket() -> None:
    payload = diag_msg(socket.AF_INET, 1, "10.0.0.1", 40000, "10.0.0.2", 443, 1000, 777)
    assert sockdiag._entry("tcp", payload) == socket_entry(
        "10.0.0.1", 40000, "10.0.0.2", 443, 777, uid=1000)


def test_decodes_ipv6_and_unmaps_ipv4_mapped() -> None:
    six = diag_msg(socket.AF_INET6, 1, "fd00::1", 22, "fd00::2", 5000, 0, 5)
    mapped = diag_msg(socket.AF_INET6, 1, "::ffff:127.0.0.1", 80, "::ffff:127.0.0.1", 6000, 0, 6)
    assert sockdiag._entry("tcp", six).local == "fd00::1"
    e = sockdiag._entry("tcp", mapped)
    assert (e.local, e.remote) == ("127.0.0.1", "127.0.0.1")


def test_reads_tcp_byte_counters_from_tcp_info() -> None:
    payload = diag_msg(socket.AF_INET, 1, "10.0.0.1", 1, "10.0.0.2", 2, 0, 9, (12345, 67890))
    assert sockdiag._tcp_bytes(payload) == (12345, 67890)
    assert sockdiag._tcp_bytes(payload[: sockdiag._MSG_SIZE]) is None


def test_dump_reply_stops_at_done_and_skips_other_sequences() -> None:
    a = diag_msg(socket.AF_INET, 10, "0.0.0.0", 22, "0.0.0.0", 0, 0, 1)
    b = diag_msg(socket.AF_INET, 1, "10.0.0.1", 22, "10.0.0.2", 999, 0, 2)
    stray = netlink(20, a, seq=7)
    datagrams = [netlink(20, a) + stray, netlink(20, b) + netlink(sockdiag.NLMSG_DONE, b"\0" * 4)]
    got = [sockdiag._entry("tcp", p) for p in sockdiag._messages(FakeNetlink(datagrams), 1)]  # type: ignore[arg-type]
    assert [e.inode for e in got] == [1, 2]


def test_kernel_error_becomes_a_catchable_oserror() -> None:
    reply = netlink(sockdiag.NLMSG_ERROR, struct.pack("=i", -errno.EPERM) + b"\0" * 16)
    with pytest.raises(OSError) as caught:
        list(sockdiag._messages(FakeNetlink([reply]), 1))  # type: ignore[arg-type]
    assert isinstance(caught.value, SockDiagError) and caught.value.errno == errno.EPERM


def test_truncated_message_is_an_error_not_a_crash() -> None:
    with pytest.raises(SockDiagError):
        sockdiag._entry("tcp", b"\0" * 20)


def test_netlink_unavailable_raises_sockdiag_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> socket.socket:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(sockdiag.socket, "socket", refuse)
    with pytest.raises(SockDiagError, match="sock_diag"):
        sockdiag.dump_sockets()


@pytest.mark.parametrize(("proto", "family"), [("sctp", 4), ("tcp", 5)])
def test_lookup_rejects_unknown_protocol_or_family(proto: str, family: int) -> None:
    with pytest.raises(ValueError):
        sockdiag.lookup_socket(proto, family, "10.0.0.1", 1, "10.0.0.2", 2)
