"""The socket table from /proc/net/{tcp,tcp6,udp,udp6}, and the index that maps a flow to a socket.

The kernel prints addresses as hex, one 32-bit word at a time in host (little-endian) order; we
normalise them to `ipaddress` compressed strings, IPv4-mapped IPv6 becoming plain IPv4, so a
conntrack tuple and a socket compare as equal strings.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from bwmon.core.model import SocketEntry

# TCP states as the kernel numbers them (include/net/tcp_states.h)
TCP_ESTABLISHED = 1
TCP_TIME_WAIT = 6
TCP_CLOSE = 7
TCP_LISTEN = 10

WILDCARDS = ("0.0.0.0", "::")

# (file under <proc_root>/net, protocol); the IPv6 files are absent when IPv6 is disabled
PROC_NET_FILES = (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp"))


@lru_cache(maxsize=8192)
def decode_address(hexaddr: str) -> str:
    """Turn the kernel's hex address (8 or 32 digits, little-endian words) into a normal string."""
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return sys.intern(str(ipaddress.IPv4Address(raw[::-1])))
    if len(raw) != 16:
        raise ValueError(f"not an IPv4 or IPv6 address: {hexaddr!r}")
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return normalise_address(ipaddress.IPv6Address(swapped))


def normalise_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address | str) -> str:
    """Compressed string form; IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes plain IPv4."""
    ip = ipaddress.ip_address(addr) if isinstance(addr, str) else addr
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return sys.intern(str(ip))


def _endpoint(field: str) -> tuple[str, int]:
    addr, _, port = field.partition(":")
    return decode_address(addr), int(port, 16)


def parse_proc_net(text: str, proto: str) -> list[SocketEntry]:
    """Parse one /proc/net/{tcp,tcp6,udp,udp6} file; malformed lines are skipped."""
    entries: list[SocketEntry] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            local, lport = _endpoint(fields[1])
            remote, rport = _endpoint(fields[2])
            entries.append(
                SocketEntry(
                    proto=proto,
                    local=local,
                    lport=lport,
                    remote=remote,
                    rport=rport,
                    state=int(fields[3], 16),
                    uid=int(fields[7]),
                    inode=int(fields[9]),
                )
            )
        except ValueError:
            continue
    return entries


async def _read(path: Path) -> str | None:
    import aiofiles  # here: the discovery worker reads sockets through sock_diag, not these files

    try:
        async with aiofiles.open(path) as f:
            return await f.read()
    except FileNotFoundError:
        return None


async def read_proc_sockets(proc_root: Path) -> list[SocketEntry]:
    """All TCP and UDP sockets of the namespace `<proc_root>/net` belongs to (one read per file).

    Missing IPv6 files (IPv6 disabled) are skipped; a missing `net/tcp` means `proc_root` is not
    a procfs and raises FileNotFoundError.
    """
    names = [name for name, _ in PROC_NET_FILES]
    texts = await asyncio.gather(*(_read(proc_root / "net" / name) for name in names))
    if texts[0] is None:
        raise FileNotFoundError(f"{proc_root / 'net' / 'tcp'} is missing: is procfs mounted there?")
    return await asyncio.to_thread(_parse_all, texts)  # seconds on a busy host: off the loop


def _parse_all(texts: list[str | None]) -> list[SocketEntry]:
    entries: list[SocketEntry] = []
    for (_, proto), text in zip(PROC_NET_FILES, texts, strict=True):
        if text is not None:
            entries.extend(parse_proc_net(text, proto))
    return entries


def _is_unconnected(entry: SocketEntry) -> bool:
    return entry.rport == 0 and entry.remote in WILDCARDS


def _better(new: SocketEntry, old: SocketEntry | None) -> bool:
    """Prefer a socket some process holds (inode ≠ 0); otherwise the first one listed wins."""
    return old is None or (old.inode == 0 and new.inode != 0)


class SocketIndex:
    """Find the local socket of a flow end: exact 4-tuple, else (UDP only) a bound socket.

    Only UDP falls back to unconnected sockets: a listening TCP socket carries no data, so a TCP
    flow whose accepted socket is not in the table yet gets None (the caller's owner memory
    covers it). Inode-0 entries (TIME_WAIT) are findable; inode 0 means "no owner".
    """

    def __init__(self, entries: Iterable[SocketEntry]) -> None:
        self._exact: dict[tuple[str, str, int, str, int], SocketEntry] = {}
        self._bound: dict[tuple[str, str, int], SocketEntry] = {}
        self._listen: dict[tuple[str, int], SocketEntry] = {}
        self._count = 0
        for e in entries:
            self._count += 1
            if e.state == TCP_LISTEN and e.proto == "tcp" and e.inode:
                self._listen[(e.local, e.lport)] = e
            key = (e.proto, e.local, e.lport, e.remote, e.rport)
            if _better(e, self._exact.get(key)):
                self._exact[key] = e
            if e.proto == "udp" and _is_unconnected(e):
                bkey = (e.proto, e.local, e.lport)
                if _better(e, self._bound.get(bkey)):
                    self._bound[bkey] = e

    def __len__(self) -> int:
        return self._count

    def listener(self, proto: str, local: str, lport: int) -> SocketEntry | None:
        """The TCP socket listening on (local, lport) or the wildcard address on lport.

        A connection still in the accept queue has no owner yet (inode 0): the process that
        holds the listener is the one that will accept it.
        """
        if proto != "tcp" or not self._listen:
            return None
        hit = self._listen.get((local, lport))
        if hit is not None:
            return hit
        wildcards = WILDCARDS if ":" not in local else ("::",)
        for wildcard in wildcards:
            hit = self._listen.get((wildcard, lport))
            if hit is not None:
                return hit
        return None

    def find(
        self, proto: str, local: str, lport: int, remote: str, rport: int
    ) -> SocketEntry | None:
        """The socket that sends and receives this flow at (local, lport), or None.

        Addresses must be normalised (see `normalise_address`). For UDP the order is: exact
        4-tuple, a socket bound to (local, lport), then one bound to the wildcard address on
        lport (0.0.0.0 before :: for an IPv4 flow, since a dual-stack :: socket also receives it).
        """
        hit = self._exact.get((proto, local, lport, remote, rport))
        if hit is not None or proto != "udp":
            return hit
        hit = self._bound.get((proto, local, lport))
        if hit is not None:
            return hit
        wildcards = WILDCARDS if ":" not in local else ("::",)
        for wildcard in wildcards:
            hit = self._bound.get((proto, wildcard, lport))
            if hit is not None:
                return hit
        return None
