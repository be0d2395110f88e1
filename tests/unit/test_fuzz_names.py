"""Fuzz: random bytes as a process's argv and comm (controls, escapes, invalid UTF-8, huge
lengths) read from a /proc tree by the real process table, then through every output — the
headless table, the JSON API, /metrics, the chart page's history, the alert log, the stderr
lines and the TUI's text — each well-formed, and each row's bytes on that row (issue 25).

The same with real processes, real traffic and the real terminal is in
tests/integration/test_fuzz_live.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bwmon.cli import serve
from bwmon.cli.headless import format_table, log_text
from bwmon.cli.log_lines import LogLines
from bwmon.core.alerts.monitor import AlertMonitor, legacy_line
from bwmon.core.config.settings import AlertSettings, NotifySettings
from bwmon.core.feed import ManualFeed
from bwmon.core.grouping import Grouper
from bwmon.core.jsonify import snapshot_json
from bwmon.core.model import ProcessInfo, ProcKey
from bwmon.core.sources.processes import ProcessTable
from bwmon.core.units import human_bytes
from bwmon.http.api import JsonApi
from bwmon.http.metrics import BwmonCollector
from bwmon.tui.alert_log import event_line
from bwmon.tui.detail_pane import detail_body, detail_title
from bwmon.tui.group_editor import DraftGroup, preview_text
from bwmon.tui.totals_header import ViewState, header_text
from tests.helpers.factories import app_row, process_row, snapshot

# What a terminal, a log reader or the exposition format must never get from a name: C0, DEL,
# C1, line/paragraph separators, bidi controls, lone surrogates.
BAD = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
PIECES = [b"\x1b", b"\x07", b"\n", b"\r", b"\t", b"\x7f", b"\x9b", b"\xc2\x9b", b"\xe2\x80\xae",
          b"\xff", b"\xd0", b"]0;PWNED", b"[2J", b"]52;c;", b"\\", b'"', b"-", b"/", b" ",
          "з".encode(), b"x"]

names = st.one_of(
    st.binary(min_size=1, max_size=64),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=40).map(b"".join),
    st.integers(3_000, 150_000).map(lambda n: (b"\x1b]0;A\x07\xd0" * n)[:n]),  # huge
).map(lambda raw: raw.replace(b"\0", b"0"))


def well_formed(text: str, lines: int | None = None) -> list[str]:
    """The lines of an output; none holds a forbidden character (and there are `lines`)."""
    split = text.split("\n")
    assert not [line for line in split if BAD.search(line)], text[:2000]
    if lines is not None:
        assert len(split) == lines, text[:2000]
    return split


def proc_tree(root: Path, argvs: Sequence[bytes]) -> list[ProcessInfo]:
    """A /proc with one process per name (argv[0] and comm), read by the real ProcessTable."""
    stat_tail = " S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n"
    for pid, argv0 in enumerate(argvs, start=100):
        d = root / str(pid)
        (d / "fd").mkdir(parents=True)
        comm = argv0[:15]
        (d / "stat").write_bytes(f"{pid} (".encode() + comm + b")" +
                                 stat_tail.format(start=pid * 10).encode())
        (d / "comm").write_bytes(comm + b"\n")
        (d / "cmdline").write_bytes(argv0 + b"\0--serve\0")
        (d / "status").write_bytes(b"Name:\t" + comm + b"\nUid:\t0\t0\t0\t0\n")
    table = ProcessTable(root)
    infos = [table.info(ProcKey(pid, pid * 10)) for pid in range(100, 100 + len(argvs))]
    assert all(infos), "a process hidden by its name"
    return [i for i in infos if i is not None]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argvs=st.lists(names, min_size=1, max_size=4))
def test_random_names_keep_every_output_well_formed(argvs: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        infos = proc_tree(Path(tmp), argvs)
    grouper = Grouper(auto_group=True)
    apps: dict[str, list[ProcessInfo]] = {}
    for info in infos:
        apps.setdefault(grouper.app_of(info), []).append(info)
    # distinct totals per row, so a figure names its row
    rows = [app_row(name, 1000.0 * i, 3000.0 * i, 1000 * i + 7, 3000 * i + 11, flows=1,
                    processes=procs) for i, (name, procs) in enumerate(apps.items(), start=1)]
    prows = [process_row(info, grouper.app_of(info), 0.0, 10.0 * n, 100 * n + 3, 300 * n + 5)
             for n, info in enumerate(infos, start=1)]
    feed = ManualFeed()
    monitor = AlertMonitor([AlertSettings(name="any", match=".", out_threshold=0.001)],
                           NotifySettings(), feed.log, stderr=io.StringIO())
    feed.subscribe(monitor.on_snapshot)
    for seq in (0, 1):
        feed.push(snapshot(seq, rows, processes=prows))
    snap = feed.latest
    assert snap is not None
    events = feed.log.tail()
    assert {dict(e.data)["app"] for e in events} == set(apps)  # an alert for every app

    # the headless table: one line per row, its name beside its own figures
    table = well_formed("\n".join(format_table(snap, bandwidth=False, width=100)),
                        lines=2 + len(rows))
    for row in rows:  # "{in:>14} {out:>14}  {flows:>5}  {name}", the name cut at 60
        mine = [line for line in table if line[:14].strip() == human_bytes(row.total_in)]
        assert len(mine) == 1 and mine[0][15:29].strip() == human_bytes(row.total_out), table
        assert mine[0][38:] == (row.name if len(row.name) <= 60 else row.name[:57] + "...")
    well_formed("\n".join(format_table(snap, bandwidth=False, processes=True)),
                lines=2 + len(prows))

    # the JSON API (and --json lines): valid UTF-8 JSON, names as shown everywhere
    doc = json.loads(json.dumps(snapshot_json(snap), ensure_ascii=False).encode())
    assert {a["name"]: (a["total_in"], a["total_out"]) for a in doc["apps"]} == {
        r.name: (r.total_in, r.total_out) for r in rows}
    for p in doc["processes"]:
        for key in ("name", "cmdline", "user", "app"):
            well_formed(p[key], lines=1)

    # /metrics, parsed by prometheus-client's own parser: every app a label, its bytes its own
    collector = BwmonCollector(feed, per_process=True, max_names=1000)
    page = generate_latest(collector).decode()  # type: ignore[arg-type]
    seen = {}
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            if s.name == "bwmon_app_bytes_total" and s.labels["direction"] == "out":
                seen[s.labels["app"]] = s.value
    assert seen == {r.name: r.total_out for r in rows}
    collector.close()

    # the chart page's data (/api/v1/history) and the alert log (/api/v1/alerts)
    api = JsonApi(feed)
    history = json.loads(asyncio.run(api.history([], None, None)))
    assert set(history["series"]) == set(apps)
    alerts = json.loads(asyncio.run(api.alerts(None, None, None)))
    assert len(alerts["events"]) == len(events)

    # stderr: bwmon 1.1's alert lines and the log lines, one line each
    for event in monitor.events:
        well_formed(legacy_line(event), lines=1)
    for e in events:
        for text in (log_text(e), serve.log_text(e)):  # bwmon run's and bwmon serve's
            out = io.StringIO()
            LogLines(stream=out).event(e, text)
            well_formed(out.getvalue(), lines=2)  # the line and its final line feed
        # the TUI's alert log pane
        well_formed(event_line(e).plain, lines=1)

    # the TUI's text: detail pane, header, group editor preview
    for row in rows:
        well_formed(detail_title(row).plain)
        body = detail_body(row)
        assert len(body) == 1 + len(row.processes)  # a heading and a line per process
        for line in body:
            well_formed(line.plain, lines=1)
    well_formed(header_text(snap, ViewState()).plain, lines=2)
    preview = preview_text([DraftGroup("all", ["."])], 0, infos).plain
    well_formed(preview, lines=2 + min(len(infos), 4))
