"""Real processes named as an attacker would (issue 25): no injection, no hidden traffic.

Each sender is `exec -a NAME python3 -c …` sending to a socat sink in a private namespace where
bwmon runs too; the outputs are read as a user or a scraper would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bwmon.core.sanitize import decode
from tests.helpers.hostile import (
    CLIPBOARD,
    FORGED_LINE,
    RUSSIAN,
    TITLE_AND_CLEAR,
    comm_of,
    named_sender,
    russian_program,
    socat_sink,
)
from tests.helpers.netns import NetNS

pytestmark = pytest.mark.privileged
REPO = Path(__file__).resolve().parents[2]
PORT = 6001


def bwmon(ns: NetNS, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """A bwmon command in the namespace, its output as bytes (exactly what a reader gets)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(ns.argv(sys.executable, "-m", "bwmon", *args), capture_output=True,
                          env=env, timeout=timeout, check=False)
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    return done


def test_a_comm_that_is_not_utf8_hides_no_process(tmp_path: Path) -> None:
    """Started through a symlink named загрузчик-файлов, a sender's comm is that name cut at 15
    bytes, mid-character; its traffic still lands on its own row, none unattributed."""
    with NetNS() as ns:
        socat_sink(ns, PORT)
        link = russian_program(tmp_path)
        sender, _ = named_sender(ns, str(link).encode(), PORT, program=link)
        comm = comm_of(sender.pid)
        with pytest.raises(UnicodeDecodeError):
            comm.decode()  # the premise: the kernel cut the name mid-character
        done = bwmon(ns, "monitor", "--json", "--processes", "--count", "3", "--interval", "0.5")
        assert done.returncode == 0, done.stderr
        last = json.loads(done.stdout.splitlines()[-1])
        rows = [p for p in last["processes"] if p["pid"] == sender.pid]
        assert rows, f"sender {sender.pid} hidden: {last['processes']}"
        assert rows[0]["name"] == decode(comm) == "загрузч\\xd0"
        assert rows[0]["app"] == RUSSIAN and rows[0]["total_out"] > 0
        unattributed = last["unattributed"]
        assert unattributed is None or unattributed["total_out"] == 0


def test_table_and_alert_lines_carry_no_forged_line_and_no_escape() -> None:
    """`bwmon monitor` (piped) and `bwmon run`'s alert lines on stderr: a name holding a line
    feed and `bwmon: error: …` forges no line, and no ESC byte of a name gets out."""
    with NetNS() as ns:
        socat_sink(ns, PORT)
        for name in (FORGED_LINE, TITLE_AND_CLEAR, CLIPBOARD):
            named_sender(ns, name, PORT, comm=name)
        table = bwmon(ns, "monitor", "--count", "3", "--interval", "0.5")
        procs = bwmon(ns, "monitor", "--processes", "--count", "3", "--interval", "0.5")
        run = subprocess.run(
            ns.argv(sys.executable, "-c", _RUN_WITH_ALERT), capture_output=True,
            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, check=False)
    for out in (table.stdout, procs.stdout, run.stdout, run.stderr):
        assert b"\x1b" not in out and b"\x07" not in out, out
        lines = out.decode().splitlines()
        assert not [x for x in lines if x.startswith("bwmon: error: FAKE")], out
    # the app: argv[0] up to a space, without a process title's colon
    assert "  evil\\x0abwmon\n" in table.stdout.decode()
    assert "evil\\x0abwmon: error: FAKE-INJECTED-LINE" in procs.stdout.decode()
    assert "\\x1b]0;PWNED\\x07\\x1b[2Jx" in procs.stdout.decode()
    assert ": evil\\x0abwmon exceeding" in run.stderr.decode(), run.stderr


# `bwmon run` with one alert rule that fires for every app at once (threshold 0.001 kB/s)
_RUN_WITH_ALERT = """
import sys, tempfile
from bwmon.cli import main
with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
    f.write('[[alerts]]\\nname = "any"\\nmatch = "."\\nout_threshold = 0.001\\nwindow = 0.5\\n')
    f.flush()
    sys.exit(main(["run", "--config", f.name, "--count", "4", "--interval", "0.5"]))
"""


HOSTILE_LABELS = [b"tab\there", b"cr\rhere", b"lf\nhere", b'quote"here', b"back\\slash",
                  b"bad\xff\xfeutf8", b"\xd0\xb7\xd0"]


def test_metrics_page_parses_whatever_the_names(tmp_path: Path) -> None:
    """TAB, CR, LF, '"', '\\' and invalid UTF-8 in app and process names: prometheus-client's
    own parser reads the whole page, every name is a label and every byte is counted."""
    config = tmp_path / "bwmon.toml"
    config.write_text('[http]\nlisten = "127.0.0.1:19125"\nper_process_metrics = true\n')
    with NetNS() as ns:
        socat_sink(ns, PORT)
        for name in HOSTILE_LABELS:
            named_sender(ns, name, PORT, comm=name, total=20_000)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        server = ns.popen([sys.executable, "-m", "bwmon", "serve", "--config", str(config),
                           "--interval", "0.3"], env=env, stderr=subprocess.PIPE)
        try:
            page = ns.run(sys.executable, "-c", _SCRAPE_WHEN_COUNTED,
                          str(len(HOSTILE_LABELS)), timeout=60).stdout
        finally:
            server.terminate()
            _, err = server.communicate(timeout=20)
        assert b"Traceback" not in err, err
    apps: dict[str, float] = {}
    procs: dict[str, float] = {}
    for family in text_string_to_metric_families(page):
        for s in family.samples:
            if s.name == "bwmon_app_bytes_total" and s.labels["direction"] == "out":
                apps[s.labels["app"]] = s.value
            if s.name == "bwmon_process_bytes_total" and s.labels["direction"] == "out":
                procs[s.labels["process"]] = s.value
    for name in HOSTILE_LABELS:
        shown = decode(name)
        assert apps.get(shown, 0) >= 20_000, (shown, apps)
        assert procs.get(decode(name[:15]), 0) >= 20_000, (shown, procs)


# Inside the namespace: scrape /metrics until N apps have counted their 20,000 bytes; print it.
_SCRAPE_WHEN_COUNTED = """
import sys, time, urllib.request
want, deadline, page = int(sys.argv[1]), time.monotonic() + 40, ""
while time.monotonic() < deadline:
    try:
        page = urllib.request.urlopen("http://127.0.0.1:19125/metrics", timeout=5).read().decode()
    except OSError:
        time.sleep(0.2)
        continue
    done = [l for l in page.splitlines() if l.startswith("bwmon_app_bytes_total{")
            and 'direction="out"' in l and float(l.rsplit(" ", 1)[1]) >= 20000]
    if len(done) >= want:
        break
    time.sleep(0.3)
sys.stdout.write(page)
"""
