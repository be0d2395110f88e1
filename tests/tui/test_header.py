"""The header says which sources learn flows' owners (issue 3: poll, events, eBPF)."""

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
    assert "owners: poll+events+eBPF" in header_text(both, ViewState()).plain
    off = dataclasses.replace(snap, sources=(SourceStatus("conntrack-file", True),
                                             SourceStatus("events", False, "no tool"),
                                             SourceStatus("ebpf", False, "no BTF")))
    assert "owners: poll ·" in header_text(off, ViewState()).plain + " ·"
