"""Fuzz, live: real processes whose argv[0] and comm are random bytes (controls, escapes,
invalid UTF-8, a name near the kernel's 128 KiB argument limit) send known byte counts while
`bwmon run --http` and `bwmon-tui` watch. Every output stays well-formed — the table on stdout,
the alert lines on stderr, the JSON API, /metrics (parsed by prometheus-client), the chart page
and its history, the alert log, the terminal the TUI draws on — and every byte each process
sent, as the kernel's own conntrack counted it, is on that process's row (issue 25).

Few examples (each starts real processes); tests/unit/test_fuzz_names.py runs many through the
same outputs without processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from bwmon.core.sanitize import decode, decode_comm
from bwmon.core.sources.conntrack_parse import parse_conntrack
from tests.helpers.hostile import named_sender, socat_sink, wait_sent
from tests.helpers.netns import NetNS
from tests.helpers.terminal import PtyApp
from tests.unit.test_fuzz_names import BAD, PIECES

pytestmark = [pytest.mark.privileged, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
PORT, HTTP = 6001, 19126
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

live_names = st.one_of(
    st.binary(min_size=1, max_size=40),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=30).map(b"".join),
    st.integers(200, 2000).map(lambda n: (b"\x1b]0;A\x07\xd0/" * n)[:n]),
).map(lambda raw: raw.replace(b"\0", b"0"))
# the first sender's command line also carries one argument near the kernel's 128 KiB limit
HUGE = (b"\x1b]0;PWNED\x07\x1b[2J\xd0\n" * 10_000)[:100_000]

def fetch(ns: NetNS, *paths: str) -> dict[str, tuple[int, str]]:
    """GET each path inside the namespace: {path: (status, body)}; status 0 where no answer
    came (the error's text as body)."""
    def get_all() -> dict[str, tuple[int, str]]:
        out: dict[str, tuple[int, str]] = {}
        for path in paths:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{HTTP}{path}",
                                            timeout=10) as r:
                    out[path] = (r.status, r.read().decode())
            except urllib.error.HTTPError as e:
                out[path] = (e.code, e.read().decode())
            except OSError as e:
                out[path] = (0, str(e))
        return out

    return ns.call(get_all)


def sent_by(ns: NetNS, lports: dict[int, int]) -> dict[int, tuple[int, int]]:
    """pid → (bytes out, bytes in) of its one flow to the sink, as conntrack counted them."""
    by_port: dict[int, tuple[int, int]] = {}
    for e in parse_conntrack(ns.conntrack_text()):
        if e.orig.dport == PORT and e.orig_bytes is not None and e.reply_bytes is not None:
            by_port[e.orig.sport] = (e.orig_bytes, e.reply_bytes)
    return {pid: by_port[port] for pid, port in lports.items() if port in by_port}


def lines_ok(text: str) -> list[str]:
    lines = text.split("\n")
    assert not [x for x in lines if BAD.search(x)], text[:3000]
    return lines


@settings(max_examples=1, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@example(names=[b"\x1b]0;PWNED\x07\x1b[2Jx", b"\xd0\xb7\n\xff\x9b", b"-nevil.invalid\r\tx"])
@given(names=st.lists(live_names, min_size=2, max_size=3, unique=True))
def test_live_processes_with_random_names(tmp_path: Path, names: list[bytes]) -> None:
    config = tmp_path / "bwmon.toml"
    config.write_text('[[alerts]]\nname = "any"\nmatch = "."\nout_threshold = 0.001\n'
                      f'window = 0.5\n[http]\nlisten = "127.0.0.1:{HTTP}"\n'
                      "per_process_metrics = true\n")
    tui_config = tmp_path / "tui.toml"
    tui_config.write_text("")
    with NetNS() as ns:
        socat_sink(ns, PORT)
        senders, lports = {}, {}
        for i, name in enumerate(names):
            proc, lport = named_sender(ns, name, PORT, comm=name[:15], total=20_000 + 6_000 * i,
                                       tail=HUGE if i == 0 else b"")
            senders[proc.pid], lports[proc.pid] = (name, proc), lport
        for _, proc in senders.values():
            wait_sent(proc)
        run = ns.popen([sys.executable, "-m", "bwmon", "run", "--config", str(config),
                        "--interval", "0.5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=ENV)
        tui = PtyApp(["--config", str(tui_config)], size=(100, 30), command=ns.argv(
            sys.executable, "-m", "bwmon.tui.main"))
        try:
            # every byte each process sent, as the kernel counted it, on that process's row
            deadline = time.monotonic() + 30
            truth: dict[int, tuple[int, int]] = {}
            rows: dict[int, dict[str, object]] = {}
            while time.monotonic() < deadline:
                tui.read_for(0.3)
                truth = sent_by(ns, lports)
                status, body = fetch(ns, "/api/v1/snapshot")["/api/v1/snapshot"]
                if status == 200:
                    doc = json.loads(body)
                    rows = {p["pid"]: p for p in doc["processes"]}
                    if len(truth) == len(names) and all(
                            pid in rows and (rows[pid]["total_out"], rows[pid]["total_in"])
                            == truth[pid] for pid in truth):
                        break
            assert len(truth) == len(names), truth
            for pid, (name, _) in senders.items():
                row = rows.get(pid)
                assert row is not None, f"{name[:40]!r} hidden"
                assert (row["total_out"], row["total_in"]) == truth[pid], (name[:40], row)
                assert row["name"] == decode_comm(name[:15])
                assert str(row["cmdline"]).startswith(decode(name)[:4000])
                for key in ("name", "cmdline", "app", "user"):
                    lines_ok(str(row[key]))
            pages = fetch(ns, "/metrics", "/", "/api/v1/history", "/api/v1/alerts")
            # the TUI (a process of its own) has measured and drawn the names too
            while not (tui.terminal is not None and tui.terminal.screen.display[0].startswith(
                    " In ")) and time.monotonic() < deadline + 30:
                tui.read_for(0.3)
            tui.read_for(1.0)
        finally:
            run.send_signal(signal.SIGTERM)
            out, err = run.communicate(timeout=20)
            tui.send(b"q")
            tui.wait_exit()
            tui.close()
    # /metrics: the whole page parses; each process's bytes under its pid
    status, page = pages["/metrics"]
    assert status == 200
    per_pid = {}
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            lines_ok(" ".join(s.labels.values()))
            if s.name == "bwmon_process_bytes_total" and s.labels["direction"] == "out":
                per_pid[int(s.labels["pid"])] = s.value
    assert {pid: per_pid.get(pid) for pid in senders} == {p: t[0] for p, t in truth.items()}
    # the chart page (static, names come as JSON) and its data; the alert log
    status, html = pages["/"]
    assert status == 200
    HTMLParser().feed(html)
    history = json.loads(pages["/api/v1/history"][1])
    assert {row["app"] for row in rows.values()} <= set(history["series"])
    alerts = json.loads(pages["/api/v1/alerts"][1])
    assert alerts["events"] and all(lines_ok(e["message"]) for e in alerts["events"])
    # bwmon run: the table on stdout, alert and log lines on stderr, nothing else
    assert run.returncode == 0
    table_line = re.compile(
        r"^(host  in |\s+RATE IN |\s+[\d.]+ [KMGT]?i?B/s |\s+(measured by|not measured) |$)")
    assert not [x for x in lines_ok(out.decode()) if not table_line.match(x)], out
    alert_line = re.compile(r"^(bwmon: |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d: |$)")
    assert not [x for x in lines_ok(err.decode()) if not alert_line.match(x)], err
    # the terminal: no title, clipboard or other string sequence but Textual's own pointer
    # shape (OSC 22), no C1 control, and the header still on top
    drawn = bytes(tui.output)
    assert re.findall(rb"\x1b[\]P_^X]", drawn) == [b"\x1b]"] * drawn.count(b"\x1b]22;")
    assert drawn.count(b"\x07") == drawn.count(b"\x1b]22;")
    assert not re.search(rb"\xc2[\x80-\x9f]", drawn)
    assert tui.terminal is not None and "PWNED" not in tui.terminal.screen.title
    assert tui.terminal.screen.display[0].startswith(" In "), tui.terminal.screen.display
