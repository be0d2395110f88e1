"""The socket table from the kernel's NETLINK_SOCK_DIAG interface (stdlib socket + struct only).

Same rows as /proc/net/{tcp,tcp6,udp,udp6} at about a tenth of the cost, plus TCP byte counters
(tcp_info bytes_acked / bytes_received) and single-socket lookups by exact tuple. The network
namespace dumped is the calling thread's. Every failure raises `SockDiagError` (an OSError), so a
caller can fall back to /proc.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from bwmon.core.model import ByteSource, SocketBytes, SocketEntry
from bwmon.core.sources.socket_table import TCP_LISTEN, normalise_address

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_INFO = 2
INET_DIAG_NOCOOKIE = 0xFFFFFFFF
ALL_STATES = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2 = head (family, protocol, ext, pad, states) + inet_diag_sockid; the sockid's
# ports and addresses are in network order, its interface and cookie in host order.
_REQ_HEAD = struct.Struct("=BBBxI")
_SOCKID = struct.Struct("!HH16s16s")
_REQ_TAIL = struct.Struct("=III")  # interface, cookie[2]
# inet_diag_msg = family, state, timer, retrans + sockid + expires, rqueue, wqueue, uid, inode
_MSG_HEAD = struct.Struct("=BBBB")
_MSG_TAIL = struct.Struct("=IIIIIIII")  # interface, cookie[2], expires, rqueue, wqueue, uid, inode
_MSG_SIZE = _MSG_HEAD.size + _SOCKID.size + _MSG_TAIL.size
# inet_diag_req (TCPDIAG_GETSOCK): family, src_len, dst_len, ext + sockid + interface, cookie[2],
# states, dbs
TCPDIAG_GETSOCK = 18
_COMPAT_HEAD = struct.Struct("=BBBB")
_COMPAT_TAIL = struct.Struct("=IIIII")
_RTA = struct.Struct("=HH")
_TCPI_BYTES = struct.Struct("=QQ")  # tcp_info.bytes_acked, bytes_received
_TCPI_BYTES_OFFSET = 120

_COOKIE_UID_INODE = struct.Struct("=4xII12xII")  # cookie[2] and uid, inode of _MSG_TAIL
# the destroy broadcasts (sock_diag multicast groups, include/uapi/linux/sock_diag.h)
SKNLGRP_INET_TCP_DESTROY = 1
SKNLGRP_INET6_TCP_DESTROY = 3
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1

_EMPTY_ID = (0, 0, bytes(16), bytes(16))
_PROTOS = {"tcp": socket.IPPROTO_TCP, "udp": socket.IPPROTO_UDP}
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6, socket.AF_INET: socket.AF_INET,
             socket.AF_INET6: socket.AF_INET6}


class SockDiagError(OSError):
    """sock_diag is unavailable or answered with an error; use /proc/net instead."""


@dataclass(frozen=True, slots=True)
class TcpCounters:
    """Payload bytes a TCP socket has had acknowledged (sent) and received, from tcp_info."""

    entry: SocketEntry
    bytes_sent: int
    bytes_received: int


def _open() -> socket.socket:
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except OSError as exc:
        raise SockDiagError(
            exc.errno, f"cannot open a sock_diag netlink socket: {exc.strerror}"
        ) from exc
    sock.settimeout(2.0)
    return sock


class DumpSocket:
    """A sock_diag socket kept open for the dumps of one namespace: the namespace it was
    created in (e.g. by a thread that setns()-ed there), dumped from any thread afterwards,
    one dump at a time."""

    def __init__(self) -> None:
        self.sock = _open()
        self.lock = threading.Lock()
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        return next(self._seq)

    def close(self) -> None:
        """Close it once no dump uses it (a dump in another thread holds the lock: ~1 ms)."""
        with self.lock:
            self.sock.close()


def _message(mtype: int, body: bytes, flags: int, seq: int) -> bytes:
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), mtype, flags, seq, 0) + body


def _request(family: int, proto: int, ext: int, sockid: tuple[int, int, bytes, bytes],
             flags: int, seq: int) -> bytes:
    """An inet_diag_req_v2 message (SOCK_DIAG_BY_FAMILY)."""
    body = (_REQ_HEAD.pack(family, proto, ext, ALL_STATES) + _SOCKID.pack(*sockid)
            + _REQ_TAIL.pack(0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE))
    return _message(SOCK_DIAG_BY_FAMILY, body, flags, seq)


def _tcp_both_families(ext: int, seq: int, states: int = ALL_STATES) -> bytes:
    """The older inet_diag_req (TCPDIAG_GETSOCK) with family AF_UNSPEC: IPv4 and IPv6 TCP in one
    walk of the kernel's connection hash, which is what a TCP dump costs (half the v2 price)."""
    body = (_COMPAT_HEAD.pack(socket.AF_UNSPEC, 0, 0, ext) + _SOCKID.pack(*_EMPTY_ID)
            + _COMPAT_TAIL.pack(0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE, states, 0))
    return _message(TCPDIAG_GETSOCK, body, NLM_F_REQUEST | NLM_F_DUMP, seq)


def _messages(sock: socket.socket, seq: int, single: bool = False) -> Iterator[bytes]:
    """Payloads of the replies to request `seq`: until NLMSG_DONE, or just one if `single`."""
    while True:
        try:
            data = sock.recv(1 << 16)
        except OSError as exc:
            raise SockDiagError(exc.errno or errno.EIO, f"sock_diag read failed: {exc}") from exc
        offset = 0
        while offset + _NLMSGHDR.size <= len(data):
            length, mtype, _flags, mseq, _pid = _NLMSGHDR.unpack_from(data, offset)
            if length < _NLMSGHDR.size:
                raise SockDiagError(errno.EPROTO, "sock_diag: malformed netlink message")
            payload = data[offset + _NLMSGHDR.size : offset + length]
            offset += (length + 3) & ~3
            if mseq != seq:
                continue
            if mtype == NLMSG_DONE:
                return
            if mtype == NLMSG_ERROR:
                code = -struct.unpack_from("=i", payload)[0]
                if code == 0:
                    return
                raise SockDiagError(code, f"sock_diag: {errno.errorcode.get(code, code)}")
            yield payload
            if single:
                return


@lru_cache(maxsize=8192)
def _address(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return normalise_address(ipaddress.IPv4Address(raw[:4]))
    return normalise_address(ipaddress.IPv6Address(raw))


def _entry(proto: str, payload: bytes) -> SocketEntry:
    if len(payload) < _MSG_SIZE:
        raise SockDiagError(errno.EPROTO, "sock_diag: short inet_diag_msg")
    family, state, _timer, _retrans = _MSG_HEAD.unpack_from(payload)
    sport, dport, src, dst = _SOCKID.unpack_from(payload, _MSG_HEAD.size)
    uid, inode = _MSG_TAIL.unpack_from(payload, _MSG_HEAD.size + _SOCKID.size)[6:]
    return SocketEntry(proto=proto, local=_address(family, src), lport=sport,
                       remote=_address(family, dst), rport=dport, state=state, uid=uid,
                       inode=inode)


def _tcp_bytes(payload: bytes) -> tuple[int, int] | None:
    offset = _MSG_SIZE
    while offset + _RTA.size <= len(payload):
        length, rtype = _RTA.unpack_from(payload, offset)
        if length < _RTA.size:
            break
        if rtype == INET_DIAG_INFO and length - _RTA.size >= _TCPI_BYTES_OFFSET + _TCPI_BYTES.size:
            start = offset + _RTA.size + _TCPI_BYTES_OFFSET
            acked, received = _TCPI_BYTES.unpack_from(payload, start)
            return int(acked), int(received)
        offset += (length + 3) & ~3
    return None


def _socket_bytes(payload: bytes, closed: bool = False) -> SocketBytes | None:
    """A TCP socket's tcp_info byte counters (None for TIME_WAIT and others without them)."""
    counts = _tcp_bytes(payload)
    if counts is None:
        return None
    family, state, _timer, _retrans = _MSG_HEAD.unpack_from(payload)
    sport, dport, src, dst = _SOCKID.unpack_from(payload, _MSG_HEAD.size)
    low, high, uid, inode = _COOKIE_UID_INODE.unpack_from(payload, _MSG_HEAD.size + _SOCKID.size)
    local, remote = _address(family, src), _address(family, dst)
    fam = 6 if ":" in local else 4  # an IPv4-mapped IPv6 socket is filed as IPv4
    return SocketBytes(ByteSource.TCP_INFO, "tcp", fam, local, sport, remote, dport,
                       low | high << 32, inode, uid, counts[1], counts[0], state, closed)


def _send(sock: socket.socket, message: bytes) -> None:
    try:
        sock.send(message)
    except OSError as exc:
        raise SockDiagError(exc.errno or errno.EIO, f"sock_diag send failed: {exc}") from exc


_ABSENT = (errno.ENOENT, errno.EAFNOSUPPORT, errno.EOPNOTSUPP, errno.EINVAL)


def _dump(protos: tuple[str, ...], ext: int, states: int = ALL_STATES,
          via: DumpSocket | None = None) -> Iterator[tuple[str, bytes]]:
    """Payloads of a dump of `protos`; a family or protocol the kernel lacks yields nothing.
    `states` (a mask of 1 << TCP state) narrows a TCP dump. `via`: dump that socket's
    namespace (else a socket opened now, in the calling thread's)."""
    if via is None:
        with _open() as sock:
            yield from _dump_on(sock, protos, ext, states, 1)
        return
    with via.lock:
        yield from _dump_on(via.sock, protos, ext, states, via.next_seq() * 4)


def _dump_on(sock: socket.socket, protos: tuple[str, ...], ext: int, states: int,
             seq: int) -> Iterator[tuple[str, bytes]]:
    """`_dump` on an open socket, its requests numbered from `seq` (replies to an earlier,
    abandoned dump on the same socket carry other numbers and are skipped)."""
    if "tcp" in protos:
        _send(sock, _tcp_both_families(ext, seq, states))
        try:
            for payload in _messages(sock, seq):
                yield "tcp", payload
            protos = tuple(p for p in protos if p != "tcp")
        except SockDiagError as exc:
            if exc.errno not in _ABSENT:
                raise
            # no TCPDIAG_GETSOCK: one v2 request per family below
    for proto in protos:
        for family in (socket.AF_INET, socket.AF_INET6):
            seq += 1
            _send(sock, _request(family, _PROTOS[proto], ext, _EMPTY_ID,
                                 NLM_F_REQUEST | NLM_F_DUMP, seq))
            try:
                for payload in _messages(sock, seq):
                    yield proto, payload
            except SockDiagError as exc:
                if exc.errno not in _ABSENT:
                    raise


def dump_sockets() -> list[SocketEntry]:
    """Every TCP and UDP socket (IPv4 and IPv6, all states) of the current network namespace."""
    return [_entry(proto, payload) for proto, payload in _dump(("tcp", "udp"), 0)]


def dump_tcp_counters() -> list[TcpCounters]:
    """Every TCP socket with its tcp_info byte counters (TIME_WAIT and listeners carry none)."""
    found: list[TcpCounters] = []
    for proto, payload in _dump(("tcp",), 1 << (INET_DIAG_INFO - 1)):
        counts = _tcp_bytes(payload)
        if counts is not None:
            found.append(TcpCounters(_entry(proto, payload), counts[0], counts[1]))
    return found


def dump_tcp_bytes(previous: dict[int, SocketBytes] | None = None,
                   via: DumpSocket | None = None) -> list[SocketBytes]:
    """Every TCP socket with tcp_info (not TIME_WAIT, not LISTEN), keyed by cookie, with its
    payload bytes since it was created: received (bytes_received) and sent and acknowledged
    (bytes_acked). `previous` (cookie -> the last read's record) is updated in place, and a
    socket whose counters, state and inode did not move is handed back as the same object:
    on a busy server most sockets are idle at any second, and building a record is most of
    a dump's cost. `via`: the namespace of that socket (see `_dump`)."""
    found: list[SocketBytes] = []
    prev = {} if previous is None else previous
    seen: set[int] = set()
    head_at = _MSG_HEAD.size + _SOCKID.size
    unpack_ids = _COOKIE_UID_INODE.unpack_from
    unpack_rta, unpack_bytes = _RTA.unpack_from, _TCPI_BYTES.unpack_from
    info_at = 0  # where tcp_info's attribute sits: the same in every message of a dump
    need = _RTA.size + _TCPI_BYTES_OFFSET + _TCPI_BYTES.size
    for _proto, payload in _dump(("tcp",), 1 << (INET_DIAG_INFO - 1), via=via):
        if len(payload) < _MSG_SIZE:
            raise SockDiagError(errno.EPROTO, "sock_diag: short inet_diag_msg")
        state = payload[1]
        if state == TCP_LISTEN:  # a listener moves no bytes
            continue
        counts = None
        if info_at and len(payload) >= info_at + need:
            length, rtype = unpack_rta(payload, info_at)
            if rtype == INET_DIAG_INFO and length >= need:
                acked, received = unpack_bytes(payload, info_at + _RTA.size + _TCPI_BYTES_OFFSET)
                counts = (acked, received)
        if counts is None:
            at = _info_offset(payload)
            if at is None:
                continue  # TIME_WAIT and others without tcp_info
            info_at = at
            counts = unpack_bytes(payload, at + _RTA.size + _TCPI_BYTES_OFFSET)
        low, high, _uid, inode = unpack_ids(payload, head_at)
        cookie = low | high << 32
        seen.add(cookie)
        old = prev.get(cookie)
        if (old is not None and old.bytes_out == counts[0] and old.bytes_in == counts[1]
                and old.inode == inode and old.state == state):
            found.append(old)
            continue
        got = _socket_bytes(payload)
        if got is not None:
            prev[cookie] = got
            found.append(got)
    if previous is not None and len(prev) > len(seen):
        for cookie in prev.keys() - seen:
            del prev[cookie]
    return found


def _info_offset(payload: bytes) -> int | None:
    """Offset of the INET_DIAG_INFO attribute (with room for the byte counters), if any."""
    offset = _MSG_SIZE
    while offset + _RTA.size <= len(payload):
        length, rtype = _RTA.unpack_from(payload, offset)
        if length < _RTA.size:
            return None
        if (rtype == INET_DIAG_INFO
                and length - _RTA.size >= _TCPI_BYTES_OFFSET + _TCPI_BYTES.size):
            return offset
        offset += (length + 3) & ~3
    return None


# connected TCP sockets a process may still hold: not LISTEN, TIME_WAIT, CLOSE, SYN_RECV
_HELD_STATES = ALL_STATES & ~(1 << 10 | 1 << 6 | 1 << 7 | 1 << 3)


def dump_tcp_inodes(via: DumpSocket | None = None) -> dict[int, tuple[int, bytes]]:
    """cookie -> (inode, raw message head) of every connected TCP socket a process holds now:
    a cheap dump (no tcp_info) for finding the owners of sockets that live less than a tick.
    `end_of(head)` decodes a head's addresses, for the few sockets that are new."""
    found: dict[int, tuple[int, bytes]] = {}
    offset = _MSG_HEAD.size + _SOCKID.size
    unpack = _COOKIE_UID_INODE.unpack_from
    for _proto, payload in _dump(("tcp",), 0, _HELD_STATES, via):
        if len(payload) < _MSG_SIZE:
            raise SockDiagError(errno.EPROTO, "sock_diag: short inet_diag_msg")
        low, high, _uid, inode = unpack(payload, offset)
        if inode:
            found[low | high << 32] = (inode, payload[:offset])
    return found


def end_of(head: bytes) -> tuple[str, int, str, int]:
    """(local, lport, remote, rport) of a message head from dump_tcp_inodes (normalised)."""
    family = head[0]
    sport, dport, src, dst = _SOCKID.unpack_from(head, _MSG_HEAD.size)
    return _address(family, src), sport, _address(family, dst), dport


class DestroyFeed:
    """The sock_diag destroy broadcasts of TCP sockets (IPv4 and IPv6) of this namespace: each
    destroyed socket's final tcp_info, so a connection shorter than a tick is counted in full.

    Non-blocking; `drain()` takes what arrived. `lost` counts overruns of the receive buffer
    (ENOBUFS: the kernel dropped broadcasts because they were not read fast enough).
    """

    def __init__(self, rcvbuf: int = 4 << 20) -> None:
        sock = _open()
        try:
            sock.bind((0, 0))  # an unbound netlink socket gets no broadcast
            for group in (SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET6_TCP_DESTROY):
                sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        except OSError as exc:
            sock.close()
            raise SockDiagError(exc.errno or errno.EIO,
                                f"cannot subscribe to sock_diag destroy broadcasts: {exc}") from exc
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE (CAP_NET_ADMIN)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        self.sock = sock
        self.lost = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def drain(self) -> list[SocketBytes]:
        """Final counters of the sockets destroyed since the last drain."""
        found: list[SocketBytes] = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return found
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.lost += 1
                    continue
                raise SockDiagError(exc.errno or errno.EIO,
                                    f"sock_diag destroy read failed: {exc}") from exc
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, mtype, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    break
                payload = data[offset + _NLMSGHDR.size : offset + length]
                offset += (length + 3) & ~3
                if mtype == SOCK_DIAG_BY_FAMILY and len(payload) >= _MSG_SIZE:
                    got = _socket_bytes(payload, closed=True)
                    if got is not None:
                        found.append(got)

    def close(self) -> None:
        self.sock.close()


def _packed(family: int, addr: str) -> bytes:
    ip = ipaddress.ip_address(addr)
    if family == socket.AF_INET:
        if not isinstance(ip, ipaddress.IPv4Address):
            raise ValueError(f"{addr} is not an IPv4 address")
        return ip.packed + bytes(12)
    if isinstance(ip, ipaddress.IPv4Address):
        return ipaddress.IPv6Address("::ffff:" + addr).packed
    return ip.packed


def lookup_socket(proto: str, family: int, local: str, lport: int, remote: str,
                  rport: int) -> SocketEntry | None:
    """The socket of one flow end by exact tuple, in one netlink round trip; None if none.

    `family` is 4/6 (as in conntrack) or AF_INET/AF_INET6. TCP finds the connected socket only
    (a listener is not returned); UDP returns the socket the kernel would deliver to: the
    connected one, else one bound to the address or the wildcard.
    """
    fam = _FAMILIES.get(family)
    if fam is None or proto not in _PROTOS:
        raise ValueError(f"unsupported family/protocol {family}/{proto}")
    loc, rem = _packed(fam, local), _packed(fam, remote)
    # the kernel's TCP lookup takes src = local end; UDP's is swapped "for historical reasons"
    sockid = (lport, rport, loc, rem) if proto == "tcp" else (rport, lport, rem, loc)
    sock = _open()
    with sock:
        _send(sock, _request(fam, _PROTOS[proto], 0, sockid, NLM_F_REQUEST, 1))
        try:
            payloads = list(_messages(sock, 1, single=True))
        except SockDiagError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
    if not payloads:
        return None
    entry = _entry(proto, payloads[0])
    if proto == "tcp" and entry.state == TCP_LISTEN:
        return None
    return entry
