"""UDP in another network namespace, measured by the eBPF probe's byte sums, on the real kernel.

bwmon runs in a namespace of the test's (its "host") with eBPF on and measures every namespace
whose name has the test's prefix. The child namespace is bare (no conntrack rule, accounting
off: its conntrack counts nothing), so its UDP can only come from the probe's sums, which must
reach that namespace's meter. A UDP sender there, and short generator processes that exit
before bwmon's next tick: the sender's own payload bytes must land on its row (at least 99 %),
named by the namespace in the container column, and the short processes must be described by
their sightings (their comm, in that namespace), never "(exited)".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.generators import TRAFFIC, sink
from tests.helpers.monitor import (
    Monitor,
    Tick,
    peak_totals,
    watching_a_bare_namespace,
    write_config,
)
from tests.helpers.netns import NetNS
from tests.integration.test_short_processes import forked, need_ebpf, on_processes, program

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

PORT = 7331
SEND, RECV, COUNT, HOLD = 200_000, 1000, 20, 0.1  # the sender: COUNT sockets, one after another
SHORT, SHORT_SEND, SHORT_RECV, AT_ONCE = 60, 4000, 1000, 4  # short generator processes
REQUEST = 9  # traffic.py's UDP reply request


def _sender(box: NetNS) -> int:
    """traffic.py's UDP client to the sink in `box`, to its end; its own payload bytes."""
    gen = box.popen([sys.executable, TRAFFIC, "client", "--tag", "nsudp", "--proto", "udp",
                     "--host", "127.0.0.1", "--port", str(PORT), "--send", str(SEND),
                     "--recv", str(RECV), "--count", str(COUNT), "--hold", str(HOLD)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = gen.communicate(timeout=120)
    assert gen.returncode == 0 and "done" in out, err
    return COUNT * (SEND + REQUEST) + (COUNT - err.count("udp reply lost")) * RECV


def _rows(ticks: list[Tick], app: str) -> list[dict[str, object]]:
    return [p for t in ticks for p in t["processes"] if p["app"] == app]


def test_udp_of_a_bare_namespace_lands_on_its_processes_rows(tmp_path: Path) -> None:
    need_ebpf()
    prog = program(tmp_path, "bwgen-udp")
    with watching_a_bare_namespace(tmp_path, f"bwnu{os.getpid()}", PORT,
                                   ("nsudp",)) as (bwmon, box):
        start = len(bwmon.ticks)
        truth = _sender(box)
        argv = ["--host", "127.0.0.1", "--port", str(PORT), "--proto", "udp",
                "--send", str(SHORT_SEND), "--recv", str(SHORT_RECV)]
        done, err = forked(box, prog, argv, SHORT, AT_ONCE)
    ticks = bwmon.ticks[start:]
    pids = [d[0] for d in done]
    short_truth = SHORT * (SHORT_SEND + REQUEST) + (
        SHORT - err.count("udp reply lost")) * SHORT_RECV
    totals = peak_totals(ticks)
    sender, short = totals.get("nsudp", 0) / truth, on_processes(ticks, pids) / short_truth
    gone = [p for t in ticks for p in t["processes"] if "exited" in p["cmdline"]]
    print(f"UDP in a bare namespace: {sender:.1%} on the sender's row, {short:.1%} of "
          f"{SHORT} short processes' on their rows, {len(gone)} '(exited)' rows; rows {totals}")
    assert 0.99 <= sender <= 1.01, (truth, totals)
    assert {p["container"] for p in _rows(ticks, "nsudp")} == {box.name}, _rows(ticks, "nsudp")
    assert short >= 0.99, (short_truth, totals)
    shorts = [p for t in ticks for p in t["processes"] if p["pid"] in set(pids)]
    assert shorts and all(p["container"] == box.name for p in shorts), [
        (p["pid"], p["container"], p["cmdline"][:30]) for p in shorts if p["container"] != box.name]
    assert not gone, gone
    last = ticks[-1]
    assert "udp" not in last["not_measured"], last["not_measured"]


def test_without_ebpf_udp_of_a_bare_namespace_is_said_not_measured(tmp_path: Path) -> None:
    """bwmon's own namespace counts UDP with conntrack (accounting on, a tracking rule), the
    child's conntrack counts nothing and eBPF is off: the header must say UDP is not measured
    (in that namespace), not show its UDP as a silent zero."""
    prefix = f"bwnu{os.getpid()}"
    config = write_config(tmp_path / "bwmon.toml", {"events": False, "ebpf": "off"}, (),
                          f'[namespaces]\nscope = "all"\ninclude = ["^{prefix}-"]\n')
    with NetNS(prefix="bwnh") as home:
        bwmon = Monitor(home, config)
        try:
            first = bwmon.wait_ticks(3)
            assert first["not_measured"] == [], first["not_measured"]
            with NetNS(prefix=prefix, acct=False, track=False) as box:
                sink(box, PORT)
                bwmon.wait_for("a process in the namespace", lambda t: any(
                    n["name"] == box.name and n["processes"] for n in t["namespaces"]))
                tick = bwmon.wait_ticks(2)
                assert tick["not_measured"] == ["udp"], tick["not_measured"]
            bwmon.wait_for("the namespace gone", lambda t: not t["namespaces"])
            assert bwmon.wait_ticks(1)["not_measured"] == []
        finally:
            bwmon.stop()
