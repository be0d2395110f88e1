"""bwmon's own footprint: the CPU and memory of a whole process tree, children included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from bwmon.core.runtime.process_tree import kill_tree, tree_usage

MIB = 1 << 20

# A parent that runs one grandchild burning CPU to its end (and reaps it), then starts a
# second that holds 64 MiB of private memory, says "ready" and waits for stdin to close.
PARENT = r"""
import subprocess, sys
subprocess.run([sys.executable, "-c",
                "import time\nend = time.process_time() + 0.3\n"
                "while time.process_time() < end: pass"], check=True)
holder = subprocess.Popen([sys.executable, "-c",
                           "import sys\nblock = bytearray(64 << 20)\n"
                           "for i in range(0, len(block), 4096): block[i] = 1\n"
                           "print('ready', flush=True)\nsys.stdin.read()"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
assert holder.stdout.readline() == "ready\n"
print("ready", flush=True)
sys.stdin.read()
holder.stdin.close()
holder.wait()
"""


def test_the_tree_counts_live_children_and_the_cpu_of_reaped_ones() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
        tree = tree_usage(parent.pid)
        later = tree_usage(parent.pid)
        assert tree.processes == 2  # the parent and the holder; the burner was reaped
        assert tree.rss >= 64 * MIB and tree.pss is not None and tree.pss >= 64 * MIB
        # the burner's 0.3 s stays in the parent's reaped-children time
        assert tree.cpu_seconds >= 0.25
        assert later.cpu_seconds >= tree.cpu_seconds
    finally:
        assert parent.stdin is not None
        parent.stdin.close()
        parent.wait(10)


def test_own_tree_by_default_and_a_gone_child_drops_out() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with_child = tree_usage()
        me = tree_usage(os.getpid())
        assert with_child.processes == me.processes >= 2
    finally:
        sleeper.kill()
        sleeper.wait()
    deadline = time.monotonic() + 5
    while tree_usage().processes >= with_child.processes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tree_usage().processes == with_child.processes - 1


def test_kill_tree_ends_descendants_in_other_sessions_too() -> None:
    """A child that started its own session escapes a process-group kill, not this one."""
    parent = subprocess.Popen(["sh", "-c", "setsid sleep 60 & sleep 60"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        # a child shows as soon as it is forked, before `setsid` has run in it: wait for both
        # children and for one of them to be in a session of its own
        while (len(kids := psutil.Process(parent.pid).children()) < 2
               or len({os.getsid(k.pid) for k in kids}) < 2):
            assert time.monotonic() < deadline, "the children never started, or none left"
            time.sleep(0.02)
        assert len({os.getsid(k.pid) for k in kids}) == 2  # one left the session
        assert kill_tree(parent.pid) == 3
        assert parent.wait(5) == -signal.SIGKILL
        _gone, alive = psutil.wait_procs(kids, timeout=5)
        assert alive == []
    finally:
        kill_tree(parent.pid)
    assert kill_tree(parent.pid) == 0  # gone (and reaped): nothing to signal
