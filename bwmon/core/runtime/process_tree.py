"""bwmon's own process tree: what it costs the host (CPU time, memory), and ending it whole.

bwmon is more than one process: the discovery worker, `conntrack -E`, one child per pipe and the
notification commands all run below it (the eBPF socket probe lives in the main process). Their
sum is what a user pays, so status and metrics report the tree, not the main process alone.
Ending one of those children ends what it started too: a notification command that left its
process group, `conntrack -E` under a discovery worker that had to be killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
from dataclasses import dataclass

# psutil (~1.7 MiB of PSS) is imported by the two functions that use it: the discovery worker
# and `bwmon run` without the HTTP view import this module but never call them.

_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


@dataclass(frozen=True, slots=True)
class TreeUsage:
    """One reading of a process tree (a process and every descendant now alive)."""

    processes: int
    # user + system seconds of the live processes plus those of the children they reaped:
    # grows monotonically while no process of the tree is orphaned before it is reaped
    cpu_seconds: float
    rss: int  # bytes resident, summed (pages shared between the processes count in each)
    # proportional set size summed (shared pages split between their sharers), so the tree's
    # real memory; None when a process's smaps could not be read (another user's child)
    pss: int | None


def tree_usage(pid: int | None = None) -> TreeUsage:
    """CPU and memory of process `pid` (default: this one) and all its living descendants."""
    import psutil

    root = psutil.Process(os.getpid() if pid is None else pid)
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = [root]
    count, cpu, rss = 0, 0.0, 0
    pss: int | None = 0
    for proc in tree:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                rss_now = proc.memory_info().rss
                pss_now: int | None = None
                with contextlib.suppress(psutil.AccessDenied):
                    pss_now = proc.memory_full_info().pss
        except psutil.NoSuchProcess:  # ended while being read: it is no longer in the tree
            continue
        count += 1
        cpu += times.user + times.system + times.children_user + times.children_system
        rss += rss_now
        pss = None if pss is None or pss_now is None else pss + pss_now
    return TreeUsage(count, cpu, rss, pss)



def kill_tree(pid: int, sig: signal.Signals = signal.SIGKILL) -> int:
    """Send `sig` to process `pid` and to every living descendant, whatever its process group
    or session. All are found before any is signalled, so none is reparented away unseen.
    Returns how many were signalled (0 when `pid` is already gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    sent = 0
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            proc.send_signal(sig)
            sent += 1
    return sent


def die_with_parent() -> None:
    """For `preexec_fn`, in a child before exec: SIGTERM it when its parent dies, so a helper
    (`conntrack -E`) never outlives the process that reads it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
