"""Another network namespace measured from its sockets' own counters, on the real kernel.

bwmon runs in a namespace of the test's (its "host") and measures every namespace whose name has
the test's prefix. The child namespace is bare, as a stock container or `ip netns` namespace
is: no conntrack rule and accounting off, so its conntrack table counts nothing. A sink and a
generator run in it; the generators' own payload bytes are the truth. A long transfer and
connections held ~100 ms must land on the generator's row (at least 99 %, in payload bytes),
named by the namespace; once the namespace is deleted, bwmon holds none of its netlink sockets.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.generators import generate, sink
from tests.helpers.monitor import Monitor, Tick, peak_totals, write_config
from tests.helpers.netns import NetNS

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

PORT = 7310


def _names(tick: Tick) -> set[str]:
    return {n["name"] for n in tick["namespaces"]}


def _held(pid: int) -> tuple[int, int]:
    """(open file descriptors, threads) of a process."""
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


Measured = tuple[NetNS, dict[str, int], int, int, int, list[Tick]]


def _measure_one(bwmon: Monitor, prefix: str, together: bool = False) -> Measured:
    """A bare namespace with a sink, a long transfer and ~100 ms connections in it (one after
    the other, or `together`); returns it (deleted), each row's bytes at their peak, the
    truths, bwmon's fds meanwhile and the generators' process rows seen."""
    with NetNS(prefix=prefix, acct=False, track=False) as box:
        bwmon.wait_for("the new namespace", lambda s: box.name in _names(s))
        server = sink(box, PORT)
        # measured from the tick bwmon finds a process in it (a container starts with one)
        bwmon.wait_for("a process in it", lambda t: any(
            n["name"] == box.name and n["processes"] for n in t["namespaces"]))
        start = len(bwmon.ticks)
        with ThreadPoolExecutor(2 if together else 1) as pool:
            long_run = pool.submit(generate, box, "127.0.0.1", PORT, tag="nslong",
                                   send=6_000_000, recv=100_000, rate=3_000_000)
            short_run = pool.submit(generate, box, "127.0.0.1", PORT, tag="nsshort",
                                    send=32768, recv=8192, count=25, hold=0.1)
            long, short = long_run.result(), short_run.result()
        fds, _ = _held(bwmon.proc.pid)
        bwmon.wait_ticks(4)  # the last closes reach a tick, then nothing more may come
        server.kill()
        server.wait()
    # rows list live processes: the generators' are in the ticks taken while they ran
    procs = [p for t in bwmon.ticks[start:] for p in t["processes"]
             if p["app"] in ("nslong", "nsshort")]
    return box, peak_totals(bwmon.ticks[start:]), long, short, fds, procs


def test_a_bare_namespace_is_measured_from_its_sockets_and_leaves_nothing(
        tmp_path: Path) -> None:
    prefix = f"bwns{os.getpid()}"
    config = write_config(tmp_path / "bwmon.toml",
                          {"row_linger": 3.0, "events": False, "ebpf": "off"},
                          ("nslong", "nsshort"),
                          f'[namespaces]\nscope = "all"\ninclude = ["^{prefix}-"]\n')
    with NetNS(prefix="bwnh") as home:
        bwmon = Monitor(home, config)
        try:
            bwmon.wait_ticks(3)
            before, _ = _held(bwmon.proc.pid)
            box, totals, long, short, during, procs = _measure_one(bwmon, prefix)
            assert 0.99 * long <= totals.get("nslong", 0) <= 1.01 * long, (long, totals)
            assert 0.99 * short <= totals.get("nsshort", 0) <= 1.01 * short, (short, totals)
            units = {a["name"]: a["unit"] for t in bwmon.ticks for a in t["apps"]}
            for name in ("nslong", "nsshort"):
                assert units[name] == "payload", units
                assert any(p["app"] == name for p in procs), procs
            assert all(p["container"] == box.name for p in procs), procs
            assert during >= before + 2, "the namespace's netlink sockets were never opened"

            bwmon.wait_for("the namespace gone", lambda s: box.name not in _names(s))
            bwmon.wait_ticks(2)
            after, threads = _held(bwmon.proc.pid)
            assert after <= before, (before, during, after)
            # a second namespace, measured and gone: nothing grows (its rows are not held to
            # their truths: its two generators may run side by side)
            _measure_one(bwmon, prefix, together=True)
            bwmon.wait_for("the second namespace gone", lambda s: not any(
                n.startswith(prefix) for n in _names(s)))
            bwmon.wait_ticks(2)
            again, threads_again = _held(bwmon.proc.pid)
            assert again <= before and threads_again <= threads, (
                before, after, again, threads, threads_again)
        finally:
            bwmon.stop()
