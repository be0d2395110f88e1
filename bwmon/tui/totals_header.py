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
    are off (named; conntrack's events not beside conntrack itself), or nothing counts bytes
    (`NOT measuring`)."""
    if not snap.sources:
        return "", ""
    if not snap.measuring:
        return "NOT measuring", "bold red"
    off = list(dict.fromkeys(plain_source(s.name) for s in snap.sources if not s.active))
    if "conntrack" in off and "conntrack events" in off:  # no entries, no events: one word
        off.remove("conntrack events")
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


# What the first line gives up, in this order, until it fits the header's width: the shorter
# wording of each part first, then the totals (the table has each app's), then the words that
# what measures already says, then which sources are off. The rates, "NOT measuring" and what
# is not measured at all ("not measured: UDP") are never given up.
FIRST_LINE_GIVES_UP = ("shares", "off", "totals", "totals", "measuring", "off", "shares")
SECOND_LINE_GIVES_UP = ("attribution",)


def _fit(parts: dict[str, list[Text]], gives_up: tuple[str, ...], width: int | None) -> Text:
    """The parts joined in their order, each at its longest variant that lets the line fit
    `width` (None: all at their longest); `gives_up` names the part that takes its next,
    shorter (or empty) variant, step by step, until the line fits."""
    chosen = dict.fromkeys(parts, 0)

    def line() -> Text:
        out = Text()
        for name, variants in parts.items():
            out.append_text(variants[min(chosen[name], len(variants) - 1)])
        return out

    text = line()
    for name in gives_up:
        if width is None or text.cell_len <= width:
            break
        if name in parts and chosen[name] < len(parts[name]) - 1:
            chosen[name] += 1
            text = line()
    return text


def _first_line(snap: Snapshot) -> dict[str, list[Text]]:
    """The first line's parts in their order, each with its variants, longest first."""
    h = snap.host
    rates = Text()
    rates.append("In ", style="bold")
    rates.append(human_rate(h.rate_in), style="bold green")
    rates.append("  Out ", style="bold")
    rates.append(human_rate(h.rate_out), style="bold cyan")
    parts: dict[str, list[Text]] = {"rates": [rates]}
    words, style = measuring_text(snap)  # before the totals: no width cuts it off
    if words == "measuring":
        parts["measuring"] = [Text(f"  │ {words}", style=style), Text()]
    elif words.startswith("measuring; "):
        short = words.removeprefix("measuring; ")
        parts["off"] = [Text(f"  │ {words}", style=style), Text(f"  │ {short}", style=style),
                        Text()]
    elif words:
        parts["measuring"] = [Text(f"  │ {words}", style=style)]
    if unmeasured := unmeasured_text(snap):  # why an app shows nothing: never given up
        parts["unmeasured"] = [Text(f"  │ {unmeasured}", style="yellow")]
    if measured := shares_text(snap):
        parts["shares"] = [Text(f"  │ {measured}"),
                           Text(f"  │ {measured.removeprefix('measured by ')}"), Text()]
    totals = f"  │ Total {human_bytes(h.total_in)} in, {human_bytes(h.total_out)} out"
    lo = f" (lo {human_bytes(h.loopback_total)})" if h.loopback_total else ""
    parts["totals"] = [Text(totals + lo), Text(totals), Text()] if lo else [Text(totals), Text()]
    return parts


def header_text(snap: Snapshot | None, view: ViewState, alerts: str = "",
                width: int | None = None) -> Text:
    """Two lines: rates, what measures and totals since start; then the active alerts (first,
    so that no width cuts them off), the view and what filters hid. `width`: the lines give up
    their least useful parts to fit it (FIRST_LINE_GIVES_UP) rather than be cut mid-word."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if snap is None:
        text.append("bwmon  waiting for the first measurement…", style="bold")
    else:
        text.append_text(_fit(_first_line(snap), FIRST_LINE_GIVES_UP, width))
    text.append("\n")
    # most important first: a narrow terminal cuts the end of the line
    head = Text()
    if alerts:
        head.append(f" {alerts} ", style="bold white on red")
        head.append(" · ")
    if view.paused:
        head.append("PAUSED", style="bold reverse")
        head.append(" · ")
    if view.filter:
        head.append(f"filter /{view.filter}/", style="yellow")
        if view.hidden_rows:
            head.append(f" hides {view.hidden_rows}", style="yellow")
        head.append(" · ")
    head.append("traffic" if view.traffic else "bandwidth", style="bold")
    head.append(" · ")
    head.append("processes" if view.processes else "apps")
    head.append(" · auto-group " + ("on" if view.auto_group else "off"))
    second: dict[str, list[Text]] = {"head": [head]}
    if snap is not None:
        f = snap.filtered
        if f.total_in or f.total_out or f.rate_in or f.rate_out:
            second["filtered"] = [Text(
                f" · filtered {human_rate(f.rate_in)} in {human_rate(f.rate_out)} out"
                f" ({human_bytes(f.total_in + f.total_out)})", style="yellow")]
        second["attribution"] = [Text(" · processes found by " + attribution(snap)), Text()]
    text.append_text(_fit(second, SECOND_LINE_GIVES_UP, width))
    return text


class TotalsHeader(Static):
    """Static showing `header_text` fitted to its width; re-rendered when a snapshot or a
    toggle changes, or the terminal is resized."""

    _shown: tuple[Snapshot | None, ViewState, str] | None = None

    def show(self, snap: Snapshot | None, view: ViewState, alerts: str = "") -> None:
        self._shown = (snap, view, alerts)
        self.update(header_text(snap, view, alerts, self.content_size.width or None))

    def on_resize(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)
