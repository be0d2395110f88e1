"""Local addresses of a namespace from recorded fib_trie / if_inet6, and loopback detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from bwmon.core.sources.addresses import is_loopback, parse_fib_trie, read_local_addresses

PROC = Path(__file__).resolve().parent.parent / "fixtures" / "proc"


def test_recorded_namespace_addresses() -> None:
    got = read_local_addresses(PROC)
    assert {"127.0.0.1", "192.0.2.7", "::1", "fd00:b::7"} <= got
    # networks and broadcasts are not host addresses
    assert not {"192.0.2.0", "192.0.2.255", "127.255.255.255", "127.0.0.0"} & got
    assert all(a.startswith("fe80:") for a in got - {"127.0.0.1", "192.0.2.7", "::1", "fd00:b::7"})


def test_missing_files_give_no_addresses(tmp_path: Path) -> None:
    assert read_local_addresses(tmp_path) == frozenset()


def test_fib_trie_takes_only_host_local_leaves() -> None:
    text = (
        "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.1.2.3\n        /32 host LOCAL\n"
        "     |-- 10.1.2.255\n        /32 link BROADCAST\n     |-- 10.9.9.9\n"
        "        /24 link UNICAST\n        /32 host LOCAL\n"
    )
    assert parse_fib_trie(text) == {"10.1.2.3", "10.9.9.9"}


@pytest.mark.parametrize(
    ("addr", "loop"),
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.7", False),
        ("fd00:b::7", False),
        ("not an address", False),
    ],
)
def test_is_loopback(addr: str, loop: bool) -> None:
    assert is_loopback(addr) is loop
