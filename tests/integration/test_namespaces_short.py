"""TCP of processes that exit before bwmon's next tick, in another network namespace, with eBPF.

bwmon runs in a namespace of the test's (its "host") and measures the bare child namespace (no
conntrack rule, accounting off) from its sockets' counters. Each generator process there makes
one ~ms TCP connection and exits, so neither /proc/PID/fd nor the owner watch can name it: only
the eBPF sighting (which the discovery worker must pass on for every namespace, not only
bwmon's) does. Its bytes must land on its own process row, in that namespace's container
column, described by the sighting when /proc is gone, never "(exited)".
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.generators import HEADER
from tests.helpers.monitor import peak_totals, watching_a_bare_namespace
from tests.integration.test_short_processes import forked, need_ebpf, on_processes, program

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

PORT = 7333
PROCESSES, SEND, RECV, AT_ONCE = 100, 65536, 16384, 4


def test_tcp_of_short_processes_in_a_bare_namespace_lands_on_their_rows(tmp_path: Path) -> None:
    need_ebpf()
    prog = program(tmp_path, "bwgen-tcp")
    with watching_a_bare_namespace(tmp_path, f"bwnt{os.getpid()}", PORT) as (bwmon, box):
        start = len(bwmon.ticks)
        argv = ["--host", "127.0.0.1", "--port", str(PORT), "--send", str(SEND),
                "--recv", str(RECV)]
        done, _ = forked(box, prog, argv, PROCESSES, AT_ONCE)
    ticks = bwmon.ticks[start:]
    pids = {d[0] for d in done}
    truth = PROCESSES * (SEND + HEADER + RECV)
    # the sink's row: its bytes are the same flows' other ends (loopback counts both ends)
    mine = on_processes(ticks, list(pids)) / truth
    shorts = [p for t in ticks for p in t["processes"] if p["pid"] in pids]
    gone = [p for t in ticks for p in t["processes"] if "exited" in p["cmdline"]]
    unattributed = peak_totals(ticks).get("(unattributed)", 0) / truth
    print(f"TCP, {PROCESSES} short processes in a bare namespace: {mine:.1%} on their rows, "
          f"{unattributed:.1%} (unattributed), {len(gone)} '(exited)' rows")
    assert mine >= 0.95, (mine, unattributed)
    wrong = [(p["pid"], p["container"], p["cmdline"][-40:]) for p in shorts
             if p["container"] != box.name]
    assert not wrong, wrong
    assert not gone, gone[:3]
