"""The detail pane of the selected app: in/out sparklines over 2 and 10 minutes, its
processes (pid, user, command line) and its connections (local, remote, protocol, bytes)."""

from __future__ import annotations

import pwd
from collections.abc import Mapping, Sequence

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Label, Static

from bwmon.core import capabilities
from bwmon.core.history import History
from bwmon.core.model import AppRow, Connection, Finding, RowKind, Unit
from bwmon.core.sanitize import clean
from bwmon.tui.app_table import where
from bwmon.tui.format import bars, clock_buckets, human_bytes, human_rate, shown_bytes

WINDOWS = ((120, "2m"), (600, "10m"))
NO_PROCESS_GRAPH = "(graphs are kept per app: p shows the apps)"
UNIT_WORDS = {Unit.IP: "IP bytes", Unit.PAYLOAD: "payload bytes",
              Unit.MIXED: "mixed: IP and payload bytes"}
MAX_LISTED = 50  # processes / connections listed per app (the rest are counted)


def detail_title(row: AppRow | None) -> Text:
    if row is None:
        return Text("no app selected", style="dim")
    unit = UNIT_WORDS.get(row.unit, "IP bytes")
    text = Text(row.name, style="bold")
    text.append(f"  in {human_rate(row.rate_in)} out {human_rate(row.rate_out)}  ({unit})")
    return text


def connection_key(c: Connection) -> tuple[str, str, str]:
    return c.proto, c.local, c.remote


def steady_connections(connections: Sequence[Connection],
                       before: Mapping[tuple[str, str, str], int]) -> list[Connection]:
    """Largest first by the figure shown (in + out, three significant digits), and among
    connections showing the same figure, each on its line of the previous update (`before`:
    key -> line), new ones after them in the order given. The core lists equal connections
    in no fixed order; re-listing them every second made the lines jump."""
    late = len(before)
    return [c for _, _, c in sorted(
        (-shown_bytes(c.bytes_in + c.bytes_out), before.get(connection_key(c), late + i), c)
        for i, c in enumerate(connections))]


SHORT_STATES = {"ESTABLISHED": "ESTAB"}  # as `ss` shows it: the most common, and the longest


def connection_line(c: Connection, width: int) -> Text:
    """One line per connection, figures first (they line up under the heading): protocol,
    bytes in and out, local → remote, TCP state. Where the whole line does not fit `width`,
    the local end is shown by its port only (as bandwhich does); what still does not fit is
    cut at the end, never wrapped onto the next line."""
    head = f"{c.proto:<5}{human_bytes(c.bytes_in):>8} {human_bytes(c.bytes_out):>8}  "
    state = f" {SHORT_STATES.get(c.state, c.state)}" if c.state else ""
    line = f"{head}{c.local} → {c.remote}{state}"
    if len(line) > width:
        line = f"{head}:{c.local.rsplit(':', 1)[-1]} → {c.remote}{state}"
    return Text(line, style="" if c.open else "dim", no_wrap=True, overflow="ellipsis")


CONNECTIONS_HEADING = f"{'PROTO':<5}{'IN':>8} {'OUT':>8}  LOCAL → REMOTE  STATE"


def users_text(uids: Sequence[int]) -> str:
    """E.g. "root (uid 0), uid 4242": each uid by its user's name where this system has one."""
    parts = []
    for uid in uids:
        try:
            parts.append(f"{clean(pwd.getpwuid(uid).pw_name)} (uid {uid})")
        except (KeyError, OverflowError):
            parts.append(f"uid {uid}")
    return ", ".join(parts)


def unattributed_reason(checks: Sequence[Finding]) -> str:
    """Why (unattributed) has bytes, in words: a socket closed (or its process exited) before
    a poll saw it; and, only where bwmon lacks what it takes to map other users' sockets (the
    doctor's capability checks, else this process's effective capabilities), theirs."""
    needed = (capabilities.DAC_READ_SEARCH, capabilities.SYS_PTRACE)
    held = {f.check: f.ok for f in checks}
    if all(cap.check in held for cap in needed):
        lacking = [cap for cap in needed if not held[cap.check]]
    else:  # no checkup yet: judge as the doctor does
        lacking = capabilities.missing_for_other_users(capabilities.effective())
    if not lacking:
        return ("Flows whose local socket no process could be found for (it closed, or its "
                "process exited, before a poll saw it).")
    return ("Flows whose local socket no process could be found for (closed before a poll, "
            "or another user's: mapping those needs "
            f"{' and '.join(cap.name for cap in lacking)}, which bwmon lacks; run it as root).")


def detail_body(row: AppRow | None,
                before: Mapping[tuple[str, str, str], int] | None = None,
                width: int = 80, checks: Sequence[Finding] | None = None) -> list[Text]:
    """Processes then connections of `row`, one per line (connections in steady places
    relative to `before`, see steady_connections), for a pane `width` columns wide; `checks`:
    the doctor's latest findings (why (unattributed) has bytes depends on them)."""
    lines: list[Text] = []
    if row is None:
        return lines
    if row.kind == RowKind.UNATTRIBUTED:
        lines.append(Text(unattributed_reason(checks or ()), style="dim"))
        if row.uids:
            lines.append(Text(f"Their sockets' users: {users_text(row.uids)}", no_wrap=True,
                              overflow="ellipsis"))
    if place := where(row):  # the table's Container/unit column, which 80 columns leave out
        lines.append(Text(f"Container/unit: {place}", no_wrap=True, overflow="ellipsis"))
    if row.processes:
        lines.append(Text("PID     USER      COMMAND", style="bold underline"))
        for p in row.processes[:MAX_LISTED]:
            lines.append(Text(f"{p.key.pid:<7} {p.user[:9]:<9} {p.cmdline}", no_wrap=True,
                              overflow="ellipsis"))
        if len(row.processes) > MAX_LISTED:
            lines.append(Text(f"… {len(row.processes) - MAX_LISTED} more", style="dim"))
    if row.connections:
        lines.append(Text(CONNECTIONS_HEADING, style="bold underline", no_wrap=True,
                          overflow="ellipsis"))
        for c in steady_connections(row.connections, before or {})[:MAX_LISTED]:
            lines.append(connection_line(c, width))
        if len(row.connections) > MAX_LISTED:
            lines.append(Text(f"… {len(row.connections) - MAX_LISTED} more", style="dim"))
    if not row.processes and not row.connections and row.kind != RowKind.UNATTRIBUTED:
        lines.append(Text("no processes or connections right now", style="dim"))
    return lines


class RateGraph(Static):
    """A one-line bar graph of the rates of the last `window` seconds, drawn as ONE styled
    run of block characters, one bar per `window / width` seconds of the clock; `scale`
    beside it says what a full bar is (the graph's peak).

    (Textual's Sparkline styles every bar separately; over SSH that costs ~20 bytes of escape
    codes per column on every tick. Bars aligned to the clock keep their place between ticks,
    where bars counted back from the newest point would all slide each tick.)
    """

    def __init__(self, *, id: str, classes: str, window: float = 120.0,
                 scale: Static | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self.window = window
        self.scale = scale
        self.samples: Sequence[tuple[float, float]] = ()  # (time, rate), oldest first
        self.drawn = ""  # the bars as last drawn
        self.peak_label = ""  # the scale as last written
        self.note = ""  # why there is no graph (shown when there are no samples)

    @property
    def data(self) -> list[float]:
        """The rates of the last `window` seconds, oldest first."""
        cutoff = self.samples[-1][0] - self.window if self.samples else 0.0
        return [rate for t, rate in self.samples if t > cutoff]

    def show(self, samples: Sequence[tuple[float, float]], note: str = "") -> None:
        """Draw (time, rate) samples, oldest first; the bars of the last `window` seconds
        show (the oldest bar whole, so older samples may be passed too). `note`, with no
        samples: a line saying why there is no graph."""
        self.samples = samples
        self.note = note
        self._draw()

    def on_resize(self) -> None:
        self._draw()

    def _draw(self) -> None:
        width = max(1, self.size.width or 40)
        values = clock_buckets(self.samples, self.window, width)
        line = bars(values).rjust(width)
        if self.note and not self.samples:
            line = self.note[:width]
        if line != self.drawn:
            self.drawn = line
            self.update(Text(line, style="dim") if self.note and not self.samples else line)
        peak = max((v for v in values if v is not None), default=0.0)
        label = f"max {human_rate(peak)}" if peak > 0 else ""
        if self.scale is not None and label != self.peak_label:
            self.peak_label = label
            self.scale.update(label)


class DetailPane(Vertical):
    """Shows one AppRow and its history; `show()` is called on each applied snapshot."""

    body_plain = ""  # what the body shows, as plain text
    _title = ""
    _app: str | None = None  # the app whose connections `_lines` places
    _lines: dict[tuple[str, str, str], int] = {}  # noqa: RUF012 - replaced, never mutated
    _body_styles: Sequence[object] = ()
    _row: AppRow | None = None
    _checks: Sequence[Finding] = ()

    def compose(self) -> ComposeResult:
        yield Static(detail_title(None), id="detail-title")
        for seconds, label in WINDOWS:
            for direction in ("in", "out"):
                with Horizontal(classes="spark-row"):
                    yield Label(f"{direction:<3} {label:>3}", classes="spark-label")
                    scale = Static("", classes="spark-scale")
                    yield RateGraph(id=f"spark-{direction}-{seconds}",
                                    classes=f"spark spark-{direction}", window=seconds,
                                    scale=scale)
                    yield scale
        with VerticalScroll(id="detail-scroll"):
            yield Static("", id="detail-body")

    def show(self, row: AppRow | None, history: History, processes: bool = False,
             checks: Sequence[Finding] = ()) -> None:
        """`processes`: the table lists processes, which have no history (apps do); `checks`:
        the doctor's latest findings (the snapshot's)."""
        self._checks = checks
        title = detail_title(row)
        if title.plain != self._title:
            self._title = title.plain
            self.query_one("#detail-title", Static).update(title)
        # A little more than the longest window: its oldest bar starts before it.
        longest = max(s for s, _ in WINDOWS)
        points = history.points(row.name, longest * 1.1) if row is not None else ()
        rates_in = [(p.time, p.rate_in) for p in points]
        rates_out = [(p.time, p.rate_out) for p in points]
        note = NO_PROCESS_GRAPH if processes and row is not None and row.processes else ""
        for n, (seconds, _label) in enumerate(WINDOWS):
            self.query_one(f"#spark-in-{seconds}", RateGraph).show(rates_in,
                                                                    note if n == 0 else "")
            self.query_one(f"#spark-out-{seconds}", RateGraph).show(rates_out)
        if row is None or row.name != self._app:
            self._app, self._lines = (row.name if row is not None else None), {}
        connections = steady_connections(row.connections, self._lines) if row else []
        self._lines = {connection_key(c): i for i, c in enumerate(connections)}
        self._row = row
        self._draw_body()

    def _draw_body(self) -> None:
        widget = self.query_one("#detail-body", Static)
        lines = detail_body(self._row, self._lines, widget.size.width or 80, self._checks)
        plain = "\n".join(line.plain for line in lines)
        styles = [(line.style, line.spans) for line in lines]
        if plain != self.body_plain or styles != self._body_styles:
            self.body_plain = plain  # unchanged text: no redraw, no bytes to the terminal
            self._body_styles = styles
            widget.update(Group(*lines))

    def on_resize(self) -> None:
        self._draw_body()  # connection lines are laid out for the width
