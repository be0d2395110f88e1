"""The /proc/net socket-table parser and the flow → socket index, on recorded kernel tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bwmon.core.model import SocketEntry
from bwmon.core.sources.socket_table import (
    SocketIndex,
    decode_address,
    parse_proc_net,
    read_proc_sockets,
)
from tests.fixtures.proc.record import EXPECTED
from tests.helpers.factories import socket_entry

PROC = Path(__file__).resolve().parent.parent / "fixtures" / "proc"


def _table() -> list[SocketEntry]:
    entries: list[SocketEntry] = []
    for name, proto in (("tcp", "tcp"), ("tcp6", "tcp"), ("udp", "udp"), ("udp6", "udp")):
        entries += parse_proc_net((PROC / "net" / name).read_text(), proto)
    return entries


def _tuples(entries: list[SocketEntry]) -> set[tuple[str, str, int, str, int, int]]:
    return {(e.proto, e.local, e.lport, e.remote, e.rport, e.state) for e in entries}


def test_recorded_tables_parse_to_the_sockets_that_were_open() -> None:
    assert _tuples(_table()) == set(EXPECTED)


def test_ipv4_mapped_sockets_read_as_plain_ipv4() -> None:
    six = parse_proc_net((PROC / "net" / "tcp6").read_text(), "tcp")
    accepted = [e for e in six if e.lport == 8443 and e.rport == 40001]
    assert [(e.local, e.remote) for e in accepted] == [("127.0.0.1", "127.0.0.1")]


def test_time_wait_has_no_owner_and_open_sockets_have_inodes() -> None:
    by_state = {(e.lport, e.state): e.inode for e in _table()}
    assert by_state[(40003, 6)] == 0
    assert all(inode > 0 for (port, state), inode in by_state.items() if state != 6)


@pytest.mark.parametrize(
    ("hexaddr", "text"),
    [
        ("0100007F", "127.0.0.1"),
        ("070200C0", "192.0.2.7"),
        ("00000000000000000000000001000000", "::1"),
        ("0B0000FD000000000000000007000000", "fd00:b::7"),
        ("0000000000000000FFFF00000100007F", "127.0.0.1"),
    ],
)
def test_addresses_decode_word_by_word(hexaddr: str, text: str) -> None:
    assert decode_address(hexaddr) == text


def test_garbage_lines_are_skipped_not_fatal() -> None:
    text = (PROC / "net" / "udp").read_text()
    broken = text + "  99: ZZZZ:0035 00000000:0000 07 x\n  100: truncated\n"
    assert _tuples(parse_proc_net(broken, "udp")) == _tuples(parse_proc_net(text, "udp"))
    assert parse_proc_net(text.splitlines()[0] + "\n", "udp") == []


async def test_read_proc_sockets_reads_all_four_tables() -> None:
    assert _tuples(await read_proc_sockets(PROC)) == set(EXPECTED)


async def test_missing_ipv6_tables_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    for name in ("tcp", "udp"):
        shutil.copy(PROC / "net" / name, tmp_path / "net" / name)
    got = await read_proc_sockets(tmp_path)
    assert got and all(":" not in e.local for e in got)


async def test_a_root_without_net_tcp_is_an_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="net/tcp"):
        await read_proc_sockets(tmp_path)


# ---- SocketIndex -----------------------------------------------------------------------------


@pytest.fixture
def index() -> SocketIndex:
    return SocketIndex(_table())


def test_exact_tuple_finds_the_connected_socket(index: SocketIndex) -> None:
    hit = index.find("tcp", "127.0.0.1", 40001, "127.0.0.1", 8443)
    assert hit is not None and hit.state == 1 and hit.inode > 0
    other_end = index.find("tcp", "127.0.0.1", 8443, "127.0.0.1", 40001)
    assert other_end is not None and other_end.inode not in (0, hit.inode)


def test_ipv6_flow_finds_its_socket(index: SocketIndex) -> None:
    hit = index.find("tcp", "::1", 8443, "::1", 40002)
    assert hit is not None and hit.state == 1


def test_listening_tcp_socket_never_takes_a_flow(index: SocketIndex) -> None:
    # a flow to the listener's port whose accepted socket is not in the table (yet)
    assert index.find("tcp", "127.0.0.1", 8080, "127.0.0.1", 51000) is None
    assert index.find("tcp", "127.0.0.1", 8443, "127.0.0.1", 51000) is None


def test_time_wait_is_findable_with_inode_zero(index: SocketIndex) -> None:
    hit = index.find("tcp", "127.0.0.1", 40003, "127.0.0.1", 8080)
    assert hit is not None and hit.inode == 0


def test_udp_connected_socket_is_exact(index: SocketIndex) -> None:
    hit = index.find("udp", "127.0.0.1", 6000, "127.0.0.1", 5353)
    assert hit is not None and hit.rport == 5353


def test_udp_flow_falls_back_to_socket_bound_to_its_address(index: SocketIndex) -> None:
    hit = index.find("udp", "192.0.2.7", 5300, "198.51.100.9", 53)
    assert hit is not None and (hit.local, hit.lport, hit.rport) == ("192.0.2.7", 5300, 0)


def test_udp_flow_falls_back_to_wildcard_socket(index: SocketIndex) -> None:
    hit = index.find("udp", "192.0.2.7", 5353, "198.51.100.9", 40000)
    assert hit is not None and (hit.local, hit.lport) == ("0.0.0.0", 5353)


def test_ipv4_udp_flow_reaches_a_dual_stack_socket_but_ipv6_not_a_v4_one(
    index: SocketIndex,
) -> None:
    hit = index.find("udp", "127.0.0.1", 5354, "127.0.0.1", 40000)
    assert hit is not None and hit.local == "::"
    assert index.find("udp", "::1", 5353, "::1", 40000) is None


def test_udp_wildcard_prefers_ipv4_socket_for_ipv4_flow() -> None:
    entries = [
        socket_entry("::", 53, "::", 0, 11, proto="udp", state=7),
        socket_entry("0.0.0.0", 53, "0.0.0.0", 0, 22, proto="udp", state=7),
    ]
    hit = SocketIndex(entries).find("udp", "10.0.0.1", 53, "10.0.0.2", 999)
    assert hit is not None and hit.inode == 22


def test_duplicate_tuple_prefers_the_socket_a_process_holds() -> None:
    closed = socket_entry("10.0.0.1", 1000, "10.0.0.2", 80, 0, state=6)
    live = socket_entry("10.0.0.1", 1000, "10.0.0.2", 80, 77, uid=1000)
    for entries in ([closed, live], [live, closed]):
        hit = SocketIndex(entries).find("tcp", "10.0.0.1", 1000, "10.0.0.2", 80)
        assert hit is not None and hit.inode == 77


def test_unknown_port_finds_nothing(index: SocketIndex) -> None:
    assert index.find("udp", "127.0.0.1", 9, "127.0.0.1", 9) is None
    assert index.find("tcp", "127.0.0.1", 9, "127.0.0.1", 9) is None
    assert len(index) == len(EXPECTED)
