"""A namespace meter reads its sockets through a process inside the namespace: when that
process exits in the middle of a tick, the tick goes on without its sockets (no traceback; a
user trial's Podman run stopped bwmon with FileNotFoundError from /proc/PID/net/tcp)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bwmon.core.namespaces.meter import NamespaceMeter
from bwmon.core.namespaces.netns import NetNamespace


def exited_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


async def test_sockets_of_a_namespace_whose_process_just_exited_are_none_this_tick() -> None:
    pid = exited_pid()
    ns = NetNamespace(inode=4026530000, pid=pid, mount=None, processes=1)
    meter = NamespaceMeter(ns, "box", proc_root=Path("/proc"), conntrack_command="conntrack",
                           lookback=False)
    assert not Path(f"/proc/{pid}").exists()
    assert len(await meter.index()) == 0
