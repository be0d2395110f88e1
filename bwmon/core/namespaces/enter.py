"""Running a blocking call inside another network namespace, on one dedicated thread.

setns(2) moves only the calling thread. The thread enters the target namespace, runs the call,
and returns to bwmon's own namespace before it takes the next job; netlink sockets opened in
between (sock_diag) belong to the target namespace. Jobs run on their own single-thread
executor, so no other work of bwmon ever runs on a thread that is between two namespaces.
Needs CAP_SYS_ADMIN (root); without it `enter` raises PermissionError and callers fall back to
reading /proc/PID/net.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

CLONE_NEWNET = 0x40000000
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)
_executor: ThreadPoolExecutor | None = None


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def run_in(handle: str, call: Callable[[], T]) -> T:
    """`call()` with this thread inside the namespace `handle` opens (/proc/PID/ns/net or a
    bind mount). Blocking."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(handle, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            return call()
        finally:
            try:
                _setns(own)
            except OSError:  # cannot happen with the privilege that entered; never go on
                os._exit(70)  # measuring the wrong namespace for the rest of the run
    finally:
        os.close(own)


async def enter(handle: str, call: Callable[[], T]) -> T:
    """`run_in` on the namespace thread, awaited."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bwmon-netns")
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor, run_in, handle, call)
