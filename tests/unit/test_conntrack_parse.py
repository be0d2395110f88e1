"""The conntrack parser on recorded real tables (tests/fixtures/conntrack) and hand-written shapes.

The `acct.*` and `noacct.*` fixtures were recorded in a private namespace by
tests/fixtures/conntrack/capture.py; `handwritten.*` hold shapes this kernel cannot produce.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from bwmon.core.model import ConntrackEntry, Tuple5
from bwmon.core.runtime.slots import fast_constructor
from bwmon.core.sources.conntrack_parse import (
    ConntrackParser,
    normalise_address,
    parse_conntrack,
    parse_line,
)

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "conntrack"
TABLES = ["acct.nf_conntrack", "acct.conntrack-L", "noacct.nf_conntrack", "noacct.conntrack-L"]


def table(name: str) -> str:
    return (FIX / name).read_text()


def real_lines(name: str) -> list[str]:
    return [line for line in table(name).splitlines() if line.strip()]


def one(entries: list[ConntrackEntry], **want: object) -> ConntrackEntry:
    """The single entry whose attributes (or orig tuple's, prefixed `o_`) match `want`."""
    def ok(e: ConntrackEntry) -> bool:
        for k, v in want.items():
            obj: object = e.orig if k.startswith("o_") else e
            if getattr(obj, k.removeprefix("o_")) != v:
                return False
        return True

    found = [e for e in entries if ok(e)]
    assert len(found) == 1, f"{want}: {found}"
    return found[0]


@pytest.mark.parametrize("name", TABLES)
def test_every_real_line_becomes_an_entry(name: str) -> None:
    assert len(parse_conntrack(table(name))) == len(real_lines(name)) > 10


@pytest.mark.parametrize("name", [*TABLES, "handwritten.nf_conntrack", "handwritten.conntrack-L"])
def test_fast_path_and_tokenizer_agree_on_every_line(name: str) -> None:
    # the regex fast path takes tcp/udp lines; each must equal what the key=value tokenizer reads
    for line in real_lines(name):
        assert parse_conntrack(line) == ([] if (e := parse_line(line)) is None else [e]), line


def test_tcp_states_flags_and_counters() -> None:
    es = parse_conntrack(table("acct.nf_conntrack"))
    est = one(es, proto="tcp", family=4, state="ESTABLISHED")
    assert est.flags == {"ASSURED"} and est.timeout == 431999
    assert est.orig.sport == est.reply.dport and est.orig.dport == est.reply.sport
    assert est.orig_bytes is not None and est.reply_bytes is not None
    assert est.reply_bytes > est.orig_bytes  # the server sent 3000 B of payload, the client 1000
    syn = one(es, family=4, state="SYN_SENT")
    assert syn.flags == {"UNREPLIED"} and syn.reply_packets == 0 and syn.orig.dport == 80
    tw = one(es, family=6, state="TIME_WAIT")
    assert tw.orig.src == "::1" and tw.flags == {"ASSURED"}


def test_ipv6_addresses_come_out_compressed() -> None:
    es = parse_conntrack(table("acct.nf_conntrack"))
    syn6 = one(es, family=6, state="SYN_SENT")
    assert (syn6.orig.src, syn6.orig.dst) == ("fd00:77::1", "fd00:77::2")
    addrs = {a for e in es for t in (e.orig, e.reply) for a in (t.src, t.dst)}
    assert "::1" in addrs and not any("0000" in a for a in addrs)


def test_udp_bytes_are_whole_ip_packets() -> None:
    # the capture sent one 100-byte UDP datagram to port 9 per family
    es = parse_conntrack(table("acct.nf_conntrack"))
    udp_header, ipv4_header, ipv6_header = 8, 20, 40
    assert one(es, family=4, o_dport=9).orig_bytes == 100 + udp_header + ipv4_header
    assert one(es, family=6, o_dport=9).orig_bytes == 100 + udp_header + ipv6_header


def test_icmp_icmpv6_gre_sctp_and_unknown_protocols() -> None:
    es = parse_conntrack(table("acct.nf_conntrack"))
    icmp = one(es, proto="icmp")
    # the echo identifier is part of the flow's identity: kept as its "source port"
    assert icmp.protonum == 1 and (icmp.orig.sport, icmp.orig.dport) == (16962, 0)
    assert icmp.reply.sport == 16962
    assert icmp.ct_id is None  # the file has no flow id; id= here is the echo identifier
    assert one(es, proto="icmpv6").protonum == 58
    gre = one(es, proto="gre")
    assert gre.timeout == 29 and gre.state is None and gre.orig.sport == 0
    assert one(es, proto="sctp").state == "CLOSED"
    unknown = one(es, proto="unknown")
    assert unknown.protonum == 253 and unknown.orig.dst == "10.77.0.2"


def test_two_ping_sessions_between_the_same_hosts_are_two_flows() -> None:
    line = ("ipv4     2 icmp     1 29 src=127.0.0.1 dst=127.0.0.1 type=8 code=0 id={id} "
            "packets=1 bytes=84 src=127.0.0.1 dst=127.0.0.1 type=0 code=0 id={id} packets=1 "
            "bytes=84 mark=0 use=1\n")
    a, b = parse_conntrack(line.format(id=11) + line.format(id=12))
    assert a.key != b.key


def test_zone_and_mark() -> None:
    es = parse_conntrack(table("acct.nf_conntrack"))
    assert one(es, o_dport=5353).zone == 5
    assert one(es, o_dport=5354).mark == 7
    assert {e.zone for e in es if e.orig.dport != 5353} == {0}


def test_tool_output_has_flow_ids_and_the_same_flows_as_the_file() -> None:
    tool = parse_conntrack(table("acct.conntrack-L"))
    file = parse_conntrack(table("acct.nf_conntrack"))
    assert all(e.ct_id is not None for e in tool)
    icmp = one(tool, proto="icmp")
    assert icmp.ct_id is not None and icmp.ct_id != 16962  # not the echo identifier

    def same(e: ConntrackEntry) -> ConntrackEntry:
        return dataclasses.replace(e, ct_id=None)

    assert sorted(map(same, tool), key=repr) == sorted(file, key=repr)


def test_accounting_off_gives_no_counters() -> None:
    es = parse_conntrack(table("noacct.nf_conntrack"))
    assert es and all(not e.has_counters and e.orig_packets is None for e in es)
    assert one(es, proto="tcp", family=4, state="ESTABLISHED").flags == {"ASSURED"}


def test_handwritten_shapes() -> None:
    es = parse_conntrack(table("handwritten.nf_conntrack"))
    assert len(es) == 10  # the garbage lines are skipped
    off = one(es, flags=frozenset({"OFFLOAD"}))
    assert off.timeout is None and off.state == "ESTABLISHED" and off.reply_bytes == 30000
    hw = one(es, flags=frozenset({"HW_OFFLOAD"}))
    assert hw.timeout is None and hw.orig.src == "2001:db8::10" and hw.proto == "udp"
    old_tcp = one(es, o_sport=22)
    assert (old_tcp.family, old_tcp.timeout, old_tcp.state) == (4, 431999, "ESTABLISHED")
    assert one(es, o_dport=53).reply_bytes == 120
    sel = one(es, o_sport=40000)
    assert sel.mark == 3 and sel.flags == {"ASSURED"}
    assert one(es, o_sport=1000).zone == 3  # directional zone: the original direction's
    mapped = one(es, o_sport=5000)
    assert (mapped.orig.src, mapped.reply.src) == ("10.0.0.1", "10.0.0.2")
    assert one(es, proto="dccp").state == "OPEN"
    assert not one(es, proto="udplite").has_counters
    assert one(es, o_sport=6000).state == "SYN_SENT2"


def test_tool_handwritten_labels_and_offload() -> None:
    es = parse_conntrack(table("handwritten.conntrack-L"))
    assert [e.ct_id for e in es] == [4242, 4343]
    assert es[1].timeout is None and es[1].flags == {"OFFLOAD"}


def test_normalise_address() -> None:
    assert normalise_address("0000:0000:0000:0000:0000:0000:0000:0001") == "::1"
    assert normalise_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalise_address("192.0.2.1") == "192.0.2.1"
    with pytest.raises(ValueError):
        normalise_address("not-an-ip")


def test_garbage_never_raises() -> None:
    rng = random.Random(7)
    lines = real_lines("acct.nf_conntrack") + real_lines("handwritten.nf_conntrack")
    for _ in range(400):
        line = rng.choice(lines)
        cut = rng.randrange(len(line))
        mangled = [line[:cut], line[cut:], line.replace("=", " ", 1),
                   line[:cut] + chr(rng.randrange(1, 0x3000)) + line[cut + 1:]]
        for text in mangled:
            parse_conntrack(text)
            ConntrackParser().parse(text)
            parse_line(text)
    assert parse_conntrack("\n\n \x00\xff garbage\n") == []


def test_fast_constructor_builds_equal_objects_and_steps_aside_when_fields_change() -> None:
    fields = tuple(f.name for f in dataclasses.fields(ConntrackEntry))
    make = fast_constructor(ConntrackEntry, fields)
    assert make is not ConntrackEntry
    t = Tuple5("10.0.0.1", "10.0.0.2", 1, 2)
    values = (4, "tcp", 6, t, t, 1, 2, 3, 4, "ESTABLISHED", None, frozenset(), 0, 0, None)
    built = make(*values)
    assert built == ConntrackEntry(*values)
    assert hash(built.key) == hash(ConntrackEntry(*values).key)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.proto = "x"  # type: ignore[misc]
    # a model with other fields than expected gets its own constructor back
    assert fast_constructor(ConntrackEntry, fields[:-1]) is ConntrackEntry
