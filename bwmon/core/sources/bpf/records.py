"""The probe's records as bytes → Python: a sighting (who used which socket) and a socket's sums.

Layouts mirror `struct sighting` and `struct sock_bytes` in socket_probe.bpf.c (little-endian,
as the machine). Fields are fixed-size binary, never text: a process's comm is 16 raw bytes,
decoded by sanitize.decode_comm, so no name can forge a record or a line.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from bwmon.core.sanitize import decode_comm

SIGHTING = struct.Struct("<QQQIIIHHHH16s16s16s4x")  # struct sighting: 96 bytes
SOCK_BYTES = struct.Struct("<QQ")  # struct sock_bytes: these, then a struct sighting
SOCK_BYTES_SIZE = SOCK_BYTES.size + SIGHTING.size
AF_INET, AF_INET6 = 2, 10
PROTOS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 136: "udplite"}


@dataclass(frozen=True, slots=True)
class Seen:
    """One struct sighting, decoded: the process using a socket, and the socket's tuple.

    Addresses follow `SocketEntry`: IPv4-mapped IPv6 becomes plain IPv4 (`family` 4, the family
    conntrack files the flow under); an unconnected socket has remote "0.0.0.0"/"::", rport 0.
    `start_ns` is the process's start in ns since boot (/proc/PID/stat's starttime × 1e9/HZ);
    `nsecs` CLOCK_MONOTONIC ns; `netns` the inode of the socket's network namespace.
    """

    cookie: int
    pid: int
    start_ns: int
    nsecs: int
    netns: int
    uid: int
    comm: str
    proto: str
    family: int
    local: str
    lport: int
    remote: str
    rport: int


def _address(raw: bytes, family: int) -> tuple[str, int]:
    if family == AF_INET:
        return str(ipaddress.IPv4Address(raw[:4])), 4
    addr = ipaddress.IPv6Address(raw)
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped), 4
    return str(addr), 6


def _proto(number: int) -> str:
    return PROTOS.get(number, f"proto{number}")


def seen(raw: bytes | memoryview, offset: int = 0) -> Seen | None:
    """A struct sighting at `offset`; None for a family other than IPv4/IPv6 (not recorded)."""
    (cookie, start_ns, nsecs, pid, netns, uid, family, proto, lport, rport, laddr, raddr,
     comm) = SIGHTING.unpack_from(raw, offset)
    if family not in (AF_INET, AF_INET6):
        return None
    local, lfam = _address(laddr, family)
    remote, rfam = _address(raddr, family)
    fam = 4 if family == AF_INET else 6
    if fam == 6 and lfam == 4 and rfam == 4:
        fam = 4
    elif fam == 6 and lfam != rfam:
        # one side mapped, the other the wildcard "::": keep the wildcard in the same family
        fam = 4
        local = "0.0.0.0" if lfam == 6 else local
        remote = "0.0.0.0" if rfam == 6 else remote
    return Seen(cookie=cookie, pid=pid, start_ns=start_ns, nsecs=nsecs, netns=netns, uid=uid,
                comm=decode_comm(comm.split(b"\0", 1)[0]), proto=_proto(proto), family=fam,
                local=local, lport=lport, remote=remote, rport=rport)


def sock_bytes(raw: bytes | memoryview, offset: int = 0) -> tuple[int, int, Seen | None]:
    """A struct sock_bytes at `offset`: (bytes received, bytes sent, first sighting)."""
    bytes_in, bytes_out = SOCK_BYTES.unpack_from(raw, offset)
    return bytes_in, bytes_out, seen(raw, offset + SOCK_BYTES.size)
