"""Automatic garbage collection held back while a tick runs.

A tick on a big table allocates tens of thousands of short-lived objects (entries, deltas,
usages). With the collector's default thresholds (a young collection every 700 allocations)
those die only after being scanned once or twice, and many reach the old generation, whose
full collection then scans every flow's state (~15 objects per flow) every few ticks: on a
50k table that was about a third of the tick's CPU. Held back for the tick, the collector
runs once after it, on what survived; reference cycles made during the tick are still
collected then.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_deferred() -> Iterator[None]:
    """No automatic collection inside the block; the previous setting is restored after."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
