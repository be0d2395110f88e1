"""Heap trimming: memory freed after a busy tick goes back to the kernel, not just to malloc."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from bwmon.core.runtime import heap

# In a fresh interpreter: fill ~40 MiB of C heap with objects malloc serves from its heap (not
# mmap), pin the top with one live object, free the rest; print RSS freed-untrimmed, trimmed.
_CHILD = """
import os, sys
from bwmon.core.runtime import heap
page = os.sysconf("SC_PAGE_SIZE")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * page
blocks = [bytearray(2000) for _ in range(20_000)]
pin = bytearray(2000)
del blocks
before = rss()
heap.trim()
print(before, rss())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_trim_gives_freed_heap_pages_back() -> None:
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True,
                         check=True).stdout.split()
    untrimmed, trimmed = int(out[0]), int(out[1])
    # freed but untrimmed, the pages stay resident: that is what RSS grew by under churn
    assert untrimmed - trimmed > 20 * 2**20


async def test_trim_forever_trims_until_cancelled(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(heap, "_TRIM", lambda pad: calls.append(pad) or 1)
    task = asyncio.create_task(heap.trim_forever(0.01))
    await asyncio.sleep(0.08)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    seen = len(calls)
    assert seen >= 2 and all(pad == 0 for pad in calls)
    await asyncio.sleep(0.03)
    assert len(calls) == seen  # stopped with its task


def test_trim_is_a_no_op_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_TRIM", None)
    assert heap.trim() is False
