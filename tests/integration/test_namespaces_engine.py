"""bwmon measuring other network namespaces while it runs, on the real kernel.

bwmon runs in a namespace of the test's (its "host"), told to measure every namespace whose name
has the test's prefix. A namespace created after it started must be measured within two ticks;
the traffic of a generator inside it must land in the generator's row, named by the namespace,
within 1 % of that namespace's own conntrack table; once the namespace is deleted nothing of it
may stay: its entry goes at once, its rows within the configured row linger.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bwmon.core.sources.conntrack_parse import parse_conntrack
from tests.conftest import TRAFFIC
from tests.helpers.monitor import Monitor
from tests.helpers.netns import NetNS

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

INTERVAL = 0.5
LINGER = 3.0


def _names(snap: dict[str, Any]) -> set[str]:
    return {n["name"] for n in snap["namespaces"]}


def test_a_namespace_is_followed_from_start_to_removal(tmp_path: Path) -> None:
    prefix = f"bwnc{os.getpid()}"
    config = tmp_path / "bwmon.toml"
    config.write_text(
        f'[general]\nrow_linger = {LINGER}\nevents = false\nebpf = "off"\n\n'
        f'[namespaces]\nscope = "all"\ninclude = ["^{prefix}-"]\n\n'
        '[[groups]]\nname = "nsgen"\npatterns = ["--tag nsgen "]\n')
    with NetNS(prefix="bwnh") as home:
        bwmon = Monitor(home, config, interval=INTERVAL)
        try:
            bwmon.wait_for("two ticks", lambda s: s["seq"] >= 2)
            before = bwmon.ticks[-1]["seq"]
            with NetNS(prefix=prefix) as box:
                seen = bwmon.wait_for("the new namespace", lambda s: box.name in _names(s))
                assert seen["seq"] - before <= 2, (before, seen["seq"])

                sink = box.popen([sys.executable, TRAFFIC, "sink", "--port", "7300"],
                                 stdout=subprocess.PIPE, text=True)
                assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
                client = box.popen(
                    [sys.executable, TRAFFIC, "client", "--tag", "nsgen", "--host", "127.0.0.1",
                     "--port", "7300", "--send", "3000000", "--recv", "200000", "--hold", "1.5"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                out, err = client.communicate(timeout=60)
                assert client.returncode == 0 and "done" in out, err
                truth = [e for e in parse_conntrack(box.conntrack_text())
                         if e.orig.dport == 7300]
                sent = sum(e.orig_bytes or 0 for e in truth)
                back = sum(e.reply_bytes or 0 for e in truth)
                assert sent > 3_000_000 and back > 200_000

                def counted(s: dict[str, Any]) -> bool:
                    row = next((a for a in s["apps"] if a["name"] == "nsgen"), None)
                    return row is not None and row["total_out"] >= 0.99 * sent
                snap = bwmon.wait_for("the generator's bytes", counted)
                row = next(a for a in snap["apps"] if a["name"] == "nsgen")
                assert row["total_out"] == pytest.approx(sent, rel=0.01)
                assert row["total_in"] == pytest.approx(back, rel=0.01)
                procs = [p for p in snap["processes"] if p["app"] == "nsgen"]
                assert procs and all(p["container"] == box.name for p in procs)
                unattributed = snap["unattributed"]["total_in"] + snap["unattributed"][
                    "total_out"] if snap["unattributed"] else 0
                assert unattributed < 0.01 * (sent + back)
                sink.kill()
                sink.wait()
            gone_at = bwmon.ticks[-1]["seq"]
            gone = bwmon.wait_for("the namespace gone", lambda s: box.name not in _names(s))
            assert gone["seq"] - gone_at <= 2
            deadline = time.monotonic() + LINGER + 10 * INTERVAL + 2
            bwmon.wait_for("its rows gone", lambda s: not any(
                a["name"] in ("nsgen", box.name) or box.name in a["containers"]
                for a in s["apps"]),
                timeout=deadline - time.monotonic())
        finally:
            bwmon.stop()
