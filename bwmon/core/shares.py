"""Which byte source measured what share, and what nobody measures: one line for headers."""

from __future__ import annotations

from bwmon.core.model import Snapshot

LABELS = {"conntrack": "conntrack", "tcp_info": "TCP sockets", "ebpf": "eBPF"}


def shares_text(snap: Snapshot) -> str:
    """E.g. "measured by TCP sockets 97%, conntrack 3%" ("" before any byte was counted)."""
    total = sum(v for _, v in snap.shares)
    if not total:
        return ""
    parts = sorted(snap.shares, key=lambda kv: -kv[1])
    return "measured by " + ", ".join(f"{LABELS.get(k, k)} {percent(100 * v / total)}"
                                      for k, v in parts if v)


def percent(share: float) -> str:
    """A share in whole percent, but never "0%" for a source that measured something (it
    read as "measured nothing") nor "100%" beside it: "<1%", ">99%"."""
    if 0 < share < 0.5:
        return "<1%"
    if 99.5 <= share < 100:
        return ">99%"
    return f"{share:.0f}%"


def unmeasured_text(snap: Snapshot) -> str:
    """E.g. "not measured: UDP" ("" when every protocol is measured)."""
    if not snap.unmeasured:
        return ""
    return "not measured: " + ", ".join(p.upper() for p in snap.unmeasured)


def findings_headline(snap: Snapshot) -> str:
    """What the doctor's findings block: everything, or only what no source measures while
    another source measures the rest (eBPF's UDP sums without TCP's counters)."""
    if snap.unmeasured and not {"tcp", "udp"} <= set(snap.unmeasured):
        return "Not measured yet: " + ", ".join(p.upper() for p in snap.unmeasured)
    return "Nothing can be measured yet"
