"""The local addresses of this network namespace, to tell a flow's local end from its remote one.

IPv4 comes from `<proc_root>/net/fib_trie` (the "/32 host LOCAL" leaves of the routing trie),
IPv6 from `<proc_root>/net/if_inet6`. Both files are readable without root.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from bwmon.core.sources.socket_table import normalise_address


def parse_fib_trie(text: str) -> set[str]:
    """IPv4 addresses that the trie marks as local host addresses ("/32 host LOCAL")."""
    found: set[str] = set()
    leaf: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|--"):
            leaf = stripped[3:].strip()
        elif leaf is not None and stripped.startswith("/32 ") and stripped.endswith("host LOCAL"):
            try:
                found.add(normalise_address(leaf))
            except ValueError:
                continue
    return found


def parse_if_inet6(text: str) -> set[str]:
    """IPv6 addresses from if_inet6 (32 hex digits in network order, then index, flags, name)."""
    found: set[str] = set()
    for line in text.splitlines():
        fields = line.split()
        if not fields or len(fields[0]) != 32:
            continue
        try:
            found.add(normalise_address(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
        except ValueError:
            continue
    return found


def read_local_addresses(proc_root: Path) -> frozenset[str]:
    """All addresses of the namespace `<proc_root>/net` belongs to; a missing file adds none."""
    found: set[str] = set()
    for name, parse in (("fib_trie", parse_fib_trie), ("if_inet6", parse_if_inet6)):
        try:
            text = (proc_root / "net" / name).read_text()
        except FileNotFoundError:
            continue
        found |= parse(text)
    return frozenset(found)


def is_loopback(addr: str) -> bool:
    """True for 127.0.0.0/8, ::1 and their IPv4-mapped forms; False for anything unparsable."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback
