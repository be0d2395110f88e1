"""Processes that live well under a tick keep their bytes, with the eBPF source, in a stock
namespace (no conntrack rule, accounting off): each generator process opens one socket, moves
its bytes and exits before bwmon's next tick, so /proc/PID is gone when bwmon counts them.

The generator is traffic.py behind a script named `bwgen-udp` / `bwgen-tcp`, which forks the
generator processes: the kernel names them after the script (their comm, kept across the fork),
as /proc's command line does, so auto-grouping gives
the same row whether bwmon read the process's facts from /proc or, once it exited, from what the
kernel said at the socket's first send. The truth is each process's own payload bytes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bwmon.core.sources.ebpf import EbpfOwners
from tests.conftest import ALLOWED_SKIP, TRAFFIC
from tests.helpers.generators import HEADER, sink
from tests.helpers.monitor import Monitor, Tick, peak_totals, write_config
from tests.helpers.netns import NetNS, link

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

PORT = 7521
KERNEL_REASONS = ("no BTF", "tracepoints missing")  # EbpfOwners.available(): the kernel's part
UDP_PROCESSES, UDP_SEND, UDP_RECV = 300, 4000, 1000
TCP_PROCESSES, TCP_SEND, TCP_RECV = 100, 65536, 16384
AT_ONCE = 4  # generator processes running at the same time


def need_ebpf() -> None:
    reason = EbpfOwners().available()
    if reason is None:
        return
    if reason.startswith(KERNEL_REASONS):
        pytest.skip(f"{ALLOWED_SKIP} what the eBPF source needs: {reason}")
    pytest.fail(f"eBPF source unavailable here (not the kernel's doing): {reason}")


def program(tmp: Path, name: str) -> Path:
    """traffic.py as an executable script called `name` (the kernel's comm for it)."""
    path = tmp / name
    path.write_text(f"#!{sys.executable}\nimport runpy\n"
                    f"runpy.run_path({TRAFFIC!r}, run_name='__main__')\n")
    path.chmod(0o755)
    return path


def forked(ns: NetNS, prog: Path, args: list[str], count: int,
           at_once: int = AT_ONCE) -> tuple[list[tuple[int, float]], str]:
    """`count` generator processes, `at_once` at a time, each to its end: ((pid, ms its socket
    lived) of each, their stderr). `prog` forks them (traffic.py --processes): each is a
    process of its own, named by the script, that opens one socket and exits; a fork costs
    a millisecond where starting an interpreter for each cost ~0.1 s of CPU."""
    gen = ns.popen([str(prog), "client", "--tag", prog.name, "--processes", str(count),
                    "--concurrency", str(at_once), *args],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = gen.communicate(timeout=120)
    assert gen.returncode == 0 and "done" in out, err
    children = [(int(pid), float(ms))
                for pid, ms in re.findall(r"child pid=(\d+) lifetime_ms=([\d.]+)", out)]
    assert len(children) == count and gen.pid not in {c[0] for c in children}, out
    return children, err


def run(tmp: Path, name: str, count: int, args: list[str]) -> tuple[list[Tick], list[int], str]:
    """bwmon (eBPF on, 0.5 s ticks) while `count` short generator processes run AT_ONCE at a
    time; (its ticks, the generators' pids, their stderr)."""
    prog = program(tmp, name)
    config = write_config(tmp / "bwmon.toml", {"events": False, "ebpf": "on"})
    with NetNS(acct=False, track=False) as client, NetNS(acct=False, track=False) as server:
        _, host = link(client, server)
        sink(server, PORT)
        monitor = Monitor(client, config)
        monitor.wait_active("ebpf")
        monitor.wait_ticks(2)
        done, err = forked(client, prog, ["--host", host, "--port", str(PORT), *args], count)
        monitor.wait_ticks(4)  # the last sockets' bytes and closes reach a tick
        ticks = monitor.stop()
    lived = sorted(d[1] for d in done)
    assert lived[len(lived) // 2] < 50, lived  # sockets of milliseconds, then the exit
    return ticks, [d[0] for d in done], err


def on_processes(ticks: list[Tick], pids: list[int]) -> int:
    """Bytes on the rows of these very processes (each at its largest)."""
    wanted, best = set(pids), {}
    for tick in ticks:
        for p in tick["processes"]:
            if p["pid"] in wanted:
                best[p["pid"]] = max(best.get(p["pid"], 0), p["total_in"] + p["total_out"])
    return sum(best.values())


def found_exited(ticks: list[Tick], pids: list[int]) -> int:
    """How many of these processes bwmon found exited, with no command line left: a zombie's
    /proc, or (gone from /proc) the sighting's facts."""
    wanted = set(pids)
    return len({p["pid"] for t in ticks for p in t["processes"]
                if p["pid"] in wanted and p["cmdline"].startswith("[")})


def test_udp_of_processes_gone_before_the_tick_lands_on_their_row(tmp_path: Path) -> None:
    need_ebpf()
    ticks, pids, err = run(tmp_path, "bwgen-udp", UDP_PROCESSES,
                           ["--proto", "udp", "--send", str(UDP_SEND), "--recv", str(UDP_RECV)])
    replies = UDP_PROCESSES - err.count("udp reply lost")
    truth = UDP_PROCESSES * (UDP_SEND + 9) + replies * UDP_RECV  # 9: the reply request
    rows = peak_totals(ticks)
    row, procs = rows.get("bwgen-udp", 0) / truth, on_processes(ticks, pids) / truth
    print(f"UDP, {UDP_PROCESSES} processes: {row:.1%} on the generator's row, "
          f"{procs:.1%} on its processes ({found_exited(ticks, pids)} found exited); rows {rows}")
    assert 0.99 <= row <= 1.01, (row, rows, truth)
    assert procs >= 0.99, (procs, rows, truth)
    assert not any("exited" in p["cmdline"] for t in ticks for p in t["processes"]), rows


def test_tcp_of_processes_gone_before_the_tick_lands_on_their_row(tmp_path: Path) -> None:
    need_ebpf()
    ticks, pids, _ = run(tmp_path, "bwgen-tcp", TCP_PROCESSES,
                         ["--send", str(TCP_SEND), "--recv", str(TCP_RECV)])
    truth = TCP_PROCESSES * (TCP_SEND + HEADER + TCP_RECV)
    rows = peak_totals(ticks)
    counted = (rows.get("bwgen-tcp", 0) + rows.get("(unattributed)", 0)) / truth
    row, procs = rows.get("bwgen-tcp", 0) / truth, on_processes(ticks, pids) / truth
    print(f"TCP, {TCP_PROCESSES} processes: {counted:.1%} counted, {row:.1%} on the "
          f"generator's row, {procs:.1%} on its processes ({found_exited(ticks, pids)} found "
          f"exited); rows {rows}")
    assert 0.99 <= counted <= 1.01, (counted, rows, truth)
    assert row >= 0.95 and procs >= 0.95, (row, procs, rows, truth)
    assert not any("exited" in p["cmdline"] for t in ticks for p in t["processes"]), rows
