"""The headless front end shared by `bwmon monitor` and `bwmon run`.

On a terminal: one refreshed table per tick. Piped: the same table as plain lines, a blank line
between ticks. `--json`: one JSON object per tick (the HTTP API's snapshot schema).
When nothing can be measured it prints the doctor's findings (what is wrong, the fixing command).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from bwmon.cli.closed_output import silence_stdout
from bwmon.core.config.settings import Settings
from bwmon.core.engine import Engine
from bwmon.core.jsonify import event_json as event_doc
from bwmon.core.jsonify import snapshot_json
from bwmon.core.model import AppRow, LogEvent, RowKind, Snapshot
from bwmon.core.shares import findings_headline, shares_text, unmeasured_text
from bwmon.core.units import human_bytes, human_rate
from bwmon.services import engine_services

CLEAR = "\x1b[H\x1b[2J"


def format_table(snap: Snapshot, *, bandwidth: bool, processes: bool = False,
                 width: int = 100) -> list[str]:
    """The app (or process) table as text lines, busiest first."""
    lines: list[str] = []
    h = snap.host
    lines.append(
        f"host  in {human_rate(h.rate_in):>12}  out {human_rate(h.rate_out):>12}   "
        f"total in {human_bytes(h.total_in)}  out {human_bytes(h.total_out)}  "
        f"(loopback {human_bytes(h.loopback_total)})"
    )
    measured = "; ".join(t for t in (shares_text(snap), unmeasured_text(snap)) if t)
    if measured:
        lines.append(f"      {measured}")
    if snap.findings:
        lines.append(findings_headline(snap) + ":")
        for f in snap.findings:
            lines.append(f"  - {f.message}")
            if f.fix:
                lines.append(f"      fix: {f.fix}")
    fmt = human_rate if bandwidth else human_bytes
    head = "RATE" if bandwidth else "TOTAL"
    lines.append(f"{head + ' IN':>14} {head + ' OUT':>14}  FLOWS  " +
                 ("PID     PROCESS" if processes else "APP"))
    name_w = max(10, width - 40)
    if processes:
        prows = sorted(snap.processes, key=lambda r: _key(r.rate_in, r.rate_out, r.total_in,
                                                          r.total_out, bandwidth), reverse=True)
        for p in prows:
            a, b = (p.rate_in, p.rate_out) if bandwidth else (p.total_in, p.total_out)
            lines.append(f"{fmt(a):>14} {fmt(b):>14}  {p.flows:>5}  {p.info.key.pid:<7} "
                         f"{_cut(p.info.cmdline, name_w - 8)}")
    else:
        rows = sorted(snap.apps, key=lambda r: _key(r.rate_in, r.rate_out, r.total_in,
                                                    r.total_out, bandwidth), reverse=True)
        for r in rows:
            a, b = (r.rate_in, r.rate_out) if bandwidth else (r.total_in, r.total_out)
            lines.append(f"{fmt(a):>14} {fmt(b):>14}  {r.flows:>5}  {_label(r, name_w)}")
    hidden = snap.filtered
    if hidden.total_in or hidden.total_out:
        a, b = ((hidden.rate_in, hidden.rate_out) if bandwidth
                else (hidden.total_in, hidden.total_out))
        lines.append(f"{fmt(a):>14} {fmt(b):>14}         (filtered: hidden by include/exclude/"
                     "ignore-local)")
    return lines


def _key(ri: float, ro: float, ti: int, to: int, bandwidth: bool) -> tuple[float, float]:
    return (ri + ro, ti + to) if bandwidth else (ti + to, ri + ro)


def _label(row: AppRow, width: int) -> str:
    suffix = " [pipe, payload bytes]" if row.kind == RowKind.PIPE else ""
    if row.kind == RowKind.UNATTRIBUTED and row.uids:
        suffix = f" [{row.uids_text}]"
    return _cut(row.name, width - len(suffix)) + suffix


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 3)] + "..."


class Printer:
    """Writes each snapshot to `out` as a table or a JSON line. When the reader closes `out`
    (`| head`), `closed` is set and `on_closed` runs (it stops the engine)."""

    def __init__(self, out: TextIO, *, json_lines: bool, bandwidth: bool, processes: bool,
                 on_closed: Callable[[], None] = lambda: None) -> None:
        self.out = out
        self.json_lines = json_lines
        self.bandwidth = bandwidth
        self.processes = processes
        self.tty = out.isatty()
        self.on_closed = on_closed
        self.closed = False

    def __call__(self, snap: Snapshot) -> None:
        if self.json_lines:
            self.write(json.dumps(snapshot_json(snap), separators=(",", ":")) + "\n")
        else:
            lines = format_table(snap, bandwidth=self.bandwidth, processes=self.processes)
            if self.tty:
                self.write(CLEAR + "\n".join(lines) + "\n")
            else:
                self.write("\n".join(lines) + "\n\n")

    def write(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.out.write(text)
            self.out.flush()
        except BrokenPipeError:
            self.closed = True
            if self.out is sys.stdout:
                silence_stdout()
            self.on_closed()


async def run_engine(
    settings: Settings,
    *,
    json_lines: bool = False,
    processes: bool = False,
    count: int | None = None,
    alerts: bool = False,
    on_log: Callable[[LogEvent], None] | None = None,
    events_json: bool = False,
    config_path: Path | None = None,
    reload: Callable[[], Settings] | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Run the engine with a printer until SIGINT/SIGTERM/SIGHUP, `count` ticks or the reader
    closing `out`; with `alerts`, alert rules are evaluated (1.1's one-line format on stderr
    unless `json_lines`); with `events_json`, alert-log events are JSON lines on `out` too."""
    engine = Engine(settings)
    printer = Printer(out, json_lines=json_lines, bandwidth=settings.general.bandwidth,
                      processes=processes, on_closed=engine.stop)
    seen = 0

    def on_snapshot(snap: Snapshot) -> None:
        nonlocal seen
        seen += 1
        printer.bandwidth = settings.general.bandwidth  # a reloaded config may switch views
        if seen == 1 and not json_lines and snap.elapsed == 0 and printer.bandwidth:
            return  # the first tick only sets the baseline of rates
        printer(snap)
        if count is not None and seen >= count:
            engine.stop()

    engine.subscribe(on_snapshot)
    if events_json:
        def on_log(event: LogEvent) -> None:
            printer.write(event_json(event) + "\n")
    unsubscribe_log = engine.log.subscribe(on_log) if on_log else None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, engine.stop)
    try:
        async with engine_services(engine, settings, alerts=alerts,
                                   alerts_stderr=None if json_lines else sys.stderr,
                                   config_path=config_path, reload=reload):
            await engine.run()
    finally:
        if unsubscribe_log is not None:
            unsubscribe_log()
    return 0


def log_text(event: LogEvent) -> str:
    """An alert-log event as `bwmon run` writes it on stderr."""
    return f"bwmon: {event.source}: {event.message}"


def event_json(event: LogEvent) -> str:
    return json.dumps({"event": event_doc(event)}, separators=(",", ":"))
