"""ConntrackParser: tick after tick, unchanged flows keep their entry object; changes show."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from bwmon.core.sources.conntrack_parse import ConntrackParser, parse_conntrack

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "conntrack"


def later(text: str, seconds: int) -> str:
    """The same table `seconds` later: every timeout and delta-time moved, nothing else."""
    text = re.sub(r"^(ipv[46] +\d+ +\S+ +\d+ +)(\d+) ",
                  lambda m: f"{m[1]}{max(int(m[2]) - seconds, 0)} ", text, flags=re.M)
    return re.sub(r"delta-time=(\d+)", lambda m: f"delta-time={int(m[1]) + seconds}", text)


@pytest.mark.parametrize("name", ["acct.nf_conntrack", "acct.conntrack-L",
                                  "noacct.nf_conntrack", "handwritten.nf_conntrack"])
def test_same_entries_as_the_full_parser_without_timeouts(name: str) -> None:
    text = (FIX / name).read_text()
    want = [dataclasses.replace(e, timeout=None) for e in parse_conntrack(text)]
    parser = ConntrackParser()
    assert parser.parse(text) == want
    assert parser.parse(later(text, 3)) == want


def test_idle_flows_keep_their_entry_object() -> None:
    text = (FIX / "acct.nf_conntrack").read_text()
    assert "delta-time=" in text
    parser = ConntrackParser()
    first = parser.parse(text)
    second = parser.parse(later(text, 5))
    assert len(first) > 10 and parser.reused == len(first)
    assert all(a is b for a, b in zip(first, second, strict=True))


def test_changed_counters_make_a_new_entry() -> None:
    text = (FIX / "acct.nf_conntrack").read_text()
    parser = ConntrackParser()
    before = {(e.proto, e.orig): e for e in parser.parse(text)}
    line = next(x for x in text.splitlines() if "ESTABLISHED" in x and "ipv4" in x)
    grown = line.replace("packets=4 bytes=1216", "packets=9 bytes=5216")
    assert grown != line
    after = {(e.proto, e.orig): e for e in parser.parse(text.replace(line, grown))}
    flow = next(k for k, e in before.items() if e.state == "ESTABLISHED" and e.family == 4)
    assert after[flow] is not before[flow]
    assert (after[flow].orig_packets, after[flow].orig_bytes) == (9, 5216)
    assert len(before) == len(after) > 10
    assert sum(after[k] is before[k] for k in before) == parser.reused == len(before) - 1


def test_gone_flows_disappear_and_state_changes_show() -> None:
    text = (FIX / "acct.nf_conntrack").read_text()
    parser = ConntrackParser()
    parser.parse(text)
    lines = text.splitlines()
    kept = [x.replace("ESTABLISHED", "FIN_WAIT") for x in lines[:5] + lines[6:]]
    out = parser.parse("\n".join(kept) + "\n")
    assert len(out) == len(lines) - 1
    assert "ESTABLISHED" not in {e.state for e in out}
    assert len(parser.parse("")) == 0 and parser.reused == 0


@pytest.mark.parametrize("name", ["acct.nf_conntrack", "acct.conntrack-L"])
def test_moved_counters_give_the_full_parsers_entries(name: str) -> None:
    """Lines whose counters moved are rebuilt from the flow's last entry: the result must be
    what parsing them in full gives, tick after tick."""
    text = (FIX / name).read_text()
    parser = ConntrackParser()
    parser.parse(text)
    for tick in range(1, 4):
        moved = re.sub(r"(packets|bytes)=(\d+)",
                       lambda m, t=tick: f"{m[1]}={int(m[2]) * (t + 1) + t}", text)
        want = [dataclasses.replace(e, timeout=None) for e in parse_conntrack(moved)]
        got = parser.parse(later(moved, tick))
        assert got == want
        assert parser.reused < len(want) // 2  # the counters really moved
        assert any(e.orig_bytes and e.orig_bytes > 1000 for e in got)


def _table(first: int, n: int = 300, grown: int = 0) -> str:
    return "".join(
        f"ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport={p} "
        f"dport=443 packets=1 bytes={p + grown} src=10.0.0.2 dst=10.0.0.1 sport=443 dport={p} "
        "packets=1 bytes=7 [ASSURED] mark=0 zone=0 use=2\n" for p in range(first, first + n))


def test_lines_of_gone_flows_are_forgotten_under_churn() -> None:
    """Each read of a churning table brings new flows: what the parser keeps of flows that
    left the table stays within a fraction of the table instead of piling up."""
    parser = ConntrackParser()
    for gen in range(60):  # 50 flows replaced per read
        parser.parse(_table(1000 + gen * 50))
    assert len(parser._flows) <= 300 + 300 // 8 + 512
    last = 1000 + 59 * 50
    moved = _table(last, grown=5000)  # counters of every live flow moved: still exact
    want = [dataclasses.replace(e, timeout=None) for e in parse_conntrack(moved)]
    assert parser.parse(moved) == want


def test_lines_alike_after_the_timeout_stay_apart() -> None:
    """tcp and udp lines are keyed by the text after their timeout alone: a line of another
    protocol with the very same text there (sctp beside tcp, udplite beside udp), or of the old
    format without a family, must still give its own entry, read after read."""
    tup = ("src=10.9.0.1 dst=10.9.0.2 sport=4000 dport=5000 packets=3 bytes=300 "
           "src=10.9.0.2 dst=10.9.0.1 sport=5000 dport=4000 packets=2 bytes=200 mark=0 use=2")
    lines = [f"ipv4     2 tcp      6 300 ESTABLISHED {tup}",
             f"ipv4     2 sctp     132 300 ESTABLISHED {tup}",
             f"ipv4     2 udp      17 30 {tup}",
             f"ipv4     2 udplite  136 30 {tup}",
             f"tcp      6 300 ESTABLISHED {tup}"]
    parser = ConntrackParser()
    for tick in range(3):
        text = "\n".join(lines) + "\n"
        got = parser.parse(later(text, tick) if tick else text)
        want = [dataclasses.replace(e, timeout=None) for e in parse_conntrack(text)]
        assert got == want
        assert [e.proto for e in got] == ["tcp", "sctp", "udp", "udplite", "tcp"]
        assert parser.reused == (0 if tick == 0 else len(lines))  # idle: every entry kept
        lines[-1] = lines[-1].replace(f" {300 - tick} ", f" {299 - tick} ")  # later() skips it


def test_last_line_without_a_newline_is_read() -> None:
    text = (FIX / "acct.nf_conntrack").read_text()
    parser = ConntrackParser()
    assert parser.parse(text.rstrip("\n")) == parser.parse(text)
    assert len(parser.parse(text.rstrip("\n"))) == len(text.splitlines())
