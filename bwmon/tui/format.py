"""Compact human formatting of bytes, rates and times for narrow terminal columns.

Binary prefixes (KiB, MiB) as the design asks; at most 8 characters so six numeric columns and
the app name still fit in 80 columns.
"""

from __future__ import annotations

import time as _time
from collections.abc import Sequence

from bwmon.core.units import human_bytes, human_rate

__all__ = ["clock", "human_bytes", "human_rate", "shown_bytes", "trend"]

_BLOCKS = "▁▂▃▄▅▆▇█"


def trend(values: Sequence[float], width: int = 8) -> str:
    """A tiny block-character sparkline of the last `width` values (scaled to their maximum)."""
    tail = list(values)[-width:]
    if not tail:
        return " " * width
    top = max(tail)
    if top <= 0:
        chars = [_BLOCKS[0]] * len(tail)
    else:
        chars = [_BLOCKS[min(len(_BLOCKS) - 1, int(v / top * (len(_BLOCKS) - 1) + 0.5))]
                 for v in tail]
    return "".join(chars).rjust(width)


def bucketed(values: Sequence[float], width: int) -> list[float]:
    """At most `width` values: the maximum of each of `width` equal buckets (newest last)."""
    data = list(values)
    if width <= 0 or len(data) <= width:
        return data
    size = len(data) / width
    return [max(data[int(i * size):max(int(i * size) + 1, int((i + 1) * size))])
            for i in range(width)]


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
