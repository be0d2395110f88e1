"""Hand freed C-heap memory back to the kernel now and then, so RSS follows what is live.

Each tick reads a conntrack table of up to megabytes as one string and builds thousands of
short-lived objects; glibc keeps the pages it freed (its mmap threshold also rises after the
first large free, so later big buffers land in the heap). `malloc_trim(0)` returns every
whole free page; where the C library has none (musl), trimming is a no-op.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

# Seconds between two trims: one took under 0.1 ms on ~70 MiB of fragmented small blocks.
TRIM_SECONDS = 30.0
# glibc's mallopt parameters (malloc.h) and bwmon's values for them, set at start-up.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENA_MAX = 1  # threads (aiofiles, to_thread) allocate in the main arena instead of their own
MMAP_THRESHOLD = 256 << 10  # fixed: larger blocks (a tick's table) always mmap'd, never in heap

_Trim = Callable[[int], int]
_Opt = Callable[[int, int], int]


def _load_trim() -> _Trim | None:
    """The C library's `malloc_trim`, or None where there is none."""
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    trim: _Trim = fn
    return trim


def _load_mallopt() -> _Opt | None:
    """The C library's `mallopt`, or None where there is none."""
    try:
        fn = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    opt: _Opt = fn
    return opt


_TRIM = _load_trim()
_MALLOPT = _load_mallopt()


def tune(arena_max: int = ARENA_MAX, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Set glibc's arena cap and a fixed mmap threshold; True if the C library took both.

    Call at start-up, before threads start: an arena made before the cap stays.
    """
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(M_ARENA_MAX, arena_max)) and bool(
        _MALLOPT(M_MMAP_THRESHOLD, mmap_threshold))


def trim() -> bool:
    """Return free heap pages to the kernel; True if the C library could release some."""
    return bool(_TRIM(0)) if _TRIM is not None else False


async def trim_forever(interval: float = TRIM_SECONDS) -> None:
    """Trim every `interval` seconds until cancelled (a task beside the tick loop)."""
    import asyncio  # here: bwmon.core.runtime.startup imports this module before asyncio

    while True:
        await asyncio.sleep(interval)
        trim()
