"""The header says which sources find flows' processes (issue 3: polling, events, eBPF), and
whether bwmon measures, in words (issue 23, item 8)."""

from __future__ import annotations

import dataclasses

from bwmon.core.model import SourceStatus
from bwmon.tui.demo import demo_snapshot
from bwmon.tui.totals_header import ViewState, header_text


def test_header_names_the_active_attribution_sources() -> None:
    snap = demo_snapshot(3, 2)
    both = dataclasses.replace(snap, sources=(SourceStatus("conntrack-file", True),
                                              SourceStatus("events", True),
                                              SourceStatus("ebpf", True)))
    assert "processes found by polling, conntrack events, eBPF" in header_text(
        both, ViewState()).plain
    off = dataclasses.replace(snap, sources=(SourceStatus("conntrack-file", True),
                                             SourceStatus("events", False, "no tool"),
                                             SourceStatus("ebpf", False, "no BTF")))
    assert "processes found by polling ·" in header_text(off, ViewState()).plain + " ·"


def test_header_says_in_words_whether_bwmon_measures() -> None:
    snap = demo_snapshot(3, 2)
    first = header_text(snap, ViewState()).plain.splitlines()[0]
    assert "│ measuring  │ Total" in first and "sources" not in first
    off = dataclasses.replace(snap, sources=(
        SourceStatus("conntrack-file", True, counts_bytes=True),
        SourceStatus("events", False, "no tool"), SourceStatus("pipe:web", False, "down",
                                                               counts_bytes=True)))
    assert "│ measuring; off: conntrack events, pipe web  │" in header_text(
        off, ViewState()).plain.splitlines()[0]
    none = dataclasses.replace(snap, sources=(
        SourceStatus("conntrack-file", False, counts_bytes=True),))
    assert "│ NOT measuring  │" in header_text(none, ViewState()).plain.splitlines()[0]


def test_header_says_which_source_measured_what_share_and_what_is_not_measured() -> None:
    snap = dataclasses.replace(demo_snapshot(3, 2), unmeasured=("udp",),
                               shares=(("conntrack", 250), ("tcp_info", 750)))
    text = header_text(snap, ViewState()).plain
    assert "measured by TCP sockets 75%, conntrack 25%" in text
    assert "not measured: UDP" in text
    plain = dataclasses.replace(snap, shares=(), unmeasured=())
    assert "measured by" not in header_text(plain, ViewState()).plain


def test_a_narrow_header_gives_up_totals_before_what_measures_and_what_does_not() -> None:
    """At 80 columns the first line was cut at "Total 12.4 MiB in…": the shares and
    "not measured: UDP" never showed. Fitted to a width, it keeps them whole and drops the
    totals (the table has each app's); wide enough, it keeps everything."""
    snap = dataclasses.replace(
        demo_snapshot(3, 2), unmeasured=("udp",), shares=(("tcp_info", 960), ("ebpf", 40)),
        sources=(SourceStatus("conntrack-file", False, "tracks nothing", counts_bytes=True),
                 SourceStatus("sockets", True, counts_bytes=True)))
    wide = header_text(snap, ViewState()).plain.splitlines()[0]
    for width in (78, 118):
        first, second = header_text(snap, ViewState(), width=width).plain.splitlines()
        assert len(first) <= width and len(second) <= width, (first, second)
        assert "not measured: UDP" in first and "TCP sockets 96%, eBPF 4%" in first, first
    all_measured = dataclasses.replace(snap, unmeasured=())
    assert "Total" in header_text(all_measured, ViewState(), width=118).plain
    assert header_text(snap, ViewState(), width=len(wide)).plain.splitlines()[0] == wide
    none = dataclasses.replace(snap, sources=(
        SourceStatus("conntrack-file", False, counts_bytes=True),))
    assert "NOT measuring" in header_text(none, ViewState(), width=40).plain


def test_a_source_that_measured_little_is_not_shown_as_zero() -> None:
    """Found trying bwmon-tui with eBPF on: "TCP sockets 100%, eBPF 0%" while eBPF measured
    the UDP bytes, a few per thousand."""
    snap = dataclasses.replace(demo_snapshot(3, 2), shares=(("tcp_info", 9970), ("ebpf", 30)))
    assert "measured by TCP sockets >99%, eBPF <1%" in header_text(snap, ViewState()).plain
    whole = dataclasses.replace(snap, shares=(("tcp_info", 500),))
    assert "measured by TCP sockets 100%" in header_text(whole, ViewState()).plain


def test_events_idle_because_conntrack_is_off_are_not_named_twice() -> None:
    """Where conntrack tracks nothing its event listener hears nothing: "off: conntrack" says
    both (the stock-namespace test checks that the engine reports the listener idle)."""
    snap = demo_snapshot(3, 2)
    stock = dataclasses.replace(snap, sources=(
        SourceStatus("conntrack-file", False, counts_bytes=True),
        SourceStatus("tcp_info", True, counts_bytes=True),
        SourceStatus("events", False, "listening, but conntrack tracks no flows")))
    text = header_text(stock, ViewState()).plain
    assert "│ measuring; off: conntrack  │" in text.splitlines()[0], text
    assert "processes found by polling ·" in text + " ·"
