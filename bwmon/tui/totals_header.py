"""The header line pair: host totals, sources, and the state of every toggle."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from bwmon.core.model import Snapshot
from bwmon.core.shares import shares_text, unmeasured_text
from bwmon.tui.format import human_bytes, human_rate

ATTRIBUTION = (("events", "conntrack events"), ("ebpf", "eBPF"))
PLAIN_SOURCES = {"conntrack-file": "conntrack", "conntrack-tool": "conntrack",
                 "events": "conntrack events", "ebpf": "eBPF"}


def attribution(snap: Snapshot) -> str:
    """How flows' processes are found: by polling always, by events and eBPF when active."""
    active = {s.name for s in snap.sources if s.active}
    return ", ".join(["polling", *(label for name, label in ATTRIBUTION if name in active)])


def plain_source(name: str) -> str:
    """A source's name in words: `pipe:web` is `pipe web`, `conntrack-file` is `conntrack`."""
    if name.startswith("pipe:"):
        return f"pipe {name[5:]}"
    return PLAIN_SOURCES.get(name, name)


def measuring_text(snap: Snapshot) -> tuple[str, str]:
    """Whether bwmon measures, in words, and its style: every source works (`measuring`), some
    are off (named), or nothing counts bytes (`NOT measuring`)."""
    if not snap.sources:
        return "", ""
    if not snap.measuring:
        return "NOT measuring", "bold red"
    off = list(dict.fromkeys(plain_source(s.name) for s in snap.sources if not s.active))
    if off:
        return "measuring; off: " + ", ".join(off), "yellow"
    return "measuring", ""


@dataclass(frozen=True)
class ViewState:
    """The toggles the header reports, so nobody has to remember what they pressed."""

    traffic: bool = False
    processes: bool = False
    auto_group: bool = True
    paused: bool = False
    filter: str = ""
    hidden_rows: int = 0


def header_text(snap: Snapshot | None, view: ViewState, alerts: str = "") -> Text:
    """Two lines: totals since start and rates; then the active alerts (first, so that no
    width cuts them off), the view and what filters hid."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if snap is None:
        text.append("bwmon  waiting for the first measurement…", style="bold")
    else:
        h = snap.host
        text.append("In ", style="bold")
        text.append(human_rate(h.rate_in), style="bold green")
        text.append("  Out ", style="bold")
        text.append(human_rate(h.rate_out), style="bold cyan")
        words, style = measuring_text(snap)  # before the totals: no width cuts it off
        if words:
            text.append(f"  │ {words}", style=style)
        text.append(f"  │ Total {human_bytes(h.total_in)} in, {human_bytes(h.total_out)} out")
        if h.loopback_total:
            text.append(f" (lo {human_bytes(h.loopback_total)})")
        if measured := shares_text(snap):
            text.append(f"  │ {measured}")
        if unmeasured := unmeasured_text(snap):
            text.append(f"  │ {unmeasured}", style="yellow")
    text.append("\n")
    # most important first: a narrow terminal cuts the end of the line
    if alerts:
        text.append(f" {alerts} ", style="bold white on red")
        text.append(" · ")
    if view.paused:
        text.append("PAUSED", style="bold reverse")
        text.append(" · ")
    if view.filter:
        text.append(f"filter /{view.filter}/", style="yellow")
        if view.hidden_rows:
            text.append(f" hides {view.hidden_rows}", style="yellow")
        text.append(" · ")
    text.append("traffic" if view.traffic else "bandwidth", style="bold")
    text.append(" · ")
    text.append("processes" if view.processes else "apps")
    text.append(" · auto-group " + ("on" if view.auto_group else "off"))
    if snap is not None:
        f = snap.filtered
        if f.total_in or f.total_out or f.rate_in or f.rate_out:
            text.append(f" · filtered {human_rate(f.rate_in)} in {human_rate(f.rate_out)} out"
                        f" ({human_bytes(f.total_in + f.total_out)})", style="yellow")
        text.append(" · processes found by " + attribution(snap))
    return text


class TotalsHeader(Static):
    """Static showing `header_text`; re-rendered only when a snapshot or a toggle changes."""

    def show(self, snap: Snapshot | None, view: ViewState, alerts: str = "") -> None:
        self.update(header_text(snap, view, alerts))
