"""Compact human formatting of bytes, rates and times for narrow terminal columns.

Binary prefixes (KiB, MiB) as the design asks; at most 8 characters so six numeric columns and
the app name still fit in 80 columns.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Sequence

from bwmon.core.units import human_bytes, human_rate

__all__ = ["bars", "clock", "clock_buckets", "fill_gaps", "human_bytes", "human_rate",
           "shown_bytes"]

_BLOCKS = "▁▂▃▄▅▆▇█"


def clock_buckets(samples: Sequence[tuple[float, float]], window: float,
                  width: int, mean: bool = False) -> list[float | None]:
    """The peak (or with `mean`, the average) of each of `width` buckets of `window / width`
    seconds, newest last.

    Buckets are aligned to the clock (bucket k covers [k·size, (k+1)·size) of epoch time),
    so a sample stays in its bar: between two ticks only the newest bar can change, and the
    graph moves one bar left when a bucket is complete. None: no sample in that bucket.
    """
    if not samples or width <= 0 or window <= 0:
        return []
    size = window / width
    first = math.floor(samples[-1][0] / size) - width + 1
    peaks: list[float | None] = [None] * width
    sums = [0.0] * width
    counts = [0] * width
    for t, value in samples:
        k = math.floor(t / size) - first
        if 0 <= k < width:
            old = peaks[k]
            peaks[k] = value if old is None or value > old else old
            sums[k] += value
            counts[k] += 1
    if mean:
        return [sums[k] / counts[k] if counts[k] else None for k in range(width)]
    return peaks


def fill_gaps(values: Sequence[float | None]) -> list[float | None]:
    """Empty buckets between two measured ones take the value of the next one: a rate is
    the mean over the time since the previous tick, so when ticks ran late (a loaded
    machine) the next measurement covers the empty bucket. Leading ones stay empty."""
    out = list(values)
    after: float | None = None
    seen_before = [False] * len(out)
    seen = False
    for i, v in enumerate(out):
        seen_before[i] = seen
        seen = seen or v is not None
    for i in range(len(out) - 1, -1, -1):
        if out[i] is None:
            if after is not None and seen_before[i]:
                out[i] = after
        else:
            after = out[i]
    return out


def bars(values: Sequence[float | None], top: float | None = None) -> str:
    """Block characters scaled to `top` (by default the largest value): a full block is
    `top`, any rate above zero at least the lowest block, and nothing at all (no traffic,
    or no measurement) a blank."""
    if top is None:
        top = max((v for v in values if v is not None), default=0.0)
    last = len(_BLOCKS) - 1
    return "".join(" " if not v or top <= 0 else _BLOCKS[min(last, int(v / top * last + 0.5))]
                   for v in values)


_PREFIX = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
           "PiB": 1 << 50}


def shown_bytes(value: float) -> float:
    """The figure `human_bytes(value)` shows, as bytes: what the table sorts by, so rows that
    show the same figure do not swap places on differences too small to see."""
    number, unit = human_bytes(value).split()
    return float(number) * _PREFIX[unit]


def clock(epoch: float) -> str:
    """Local wall-clock time of an event, `HH:MM:SS`."""
    return _time.strftime("%H:%M:%S", _time.localtime(epoch))
