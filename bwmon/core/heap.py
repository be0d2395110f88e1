"""Hand freed C-heap memory back to the kernel now and then, so RSS follows what is live.

Each tick reads a conntrack table of up to megabytes as one string and builds thousands of
short-lived objects; glibc keeps the pages it freed (its mmap threshold also rises after the
first large free, so later big buffers land in the heap). `malloc_trim(0)` returns every
whole free page; where the C library has none (musl), trimming is a no-op.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

# Seconds between two trims: one costs a few milliseconds on a heap of ~100 MiB.
TRIM_SECONDS = 30.0

_Trim = Callable[[int], int]


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


_TRIM = _load_trim()


def trim() -> bool:
    """Return free heap pages to the kernel; True if the C library could release some."""
    return bool(_TRIM(0)) if _TRIM is not None else False


async def trim_forever(interval: float = TRIM_SECONDS) -> None:
    """Trim every `interval` seconds until cancelled (a task beside the tick loop)."""
    while True:
        await asyncio.sleep(interval)
        trim()
