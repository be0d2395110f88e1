"""What bwmon's own process tree costs: CPU seconds and memory, children included.

The tree is bwmon and every descendant still running (pipe relays, the discovery worker,
`conntrack -E`, bpftrace, notification commands). CPU counts the live processes' own time plus
the time of descendants already waited for (each counted once, in the parent that reaped it),
so the figure only grows. Memory is RSS and PSS summed over the live tree: PSS shares pages
between the processes mapping them, so it does not count a shared library twice.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psutil


@dataclass(frozen=True, slots=True)
class TreeUsage:
    cpu_seconds: float  # user + system, since each process started
    rss_bytes: int
    pss_bytes: int  # 0 where the kernel gives no PSS (smaps_rollup unreadable)
    processes: int


def tree_usage(pid: int | None = None) -> TreeUsage:
    """The usage of `pid` (default: this process) and its descendants."""
    root = psutil.Process(pid)
    cpu = 0.0
    rss = pss = count = 0
    for proc in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.Error), proc.oneshot():
            t = proc.cpu_times()
            cpu += t.user + t.system + t.children_user + t.children_system
            try:
                full = proc.memory_full_info()
                rss += full.rss
                pss += getattr(full, "pss", 0)
            except psutil.AccessDenied:
                rss += proc.memory_info().rss
            count += 1
    return TreeUsage(cpu, rss, pss, count)
