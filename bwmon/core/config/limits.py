"""The one check of a pipe's shaping limit, shared by every way of giving one: bwmon.toml, the
bwmon 1.1 INI file, `bwmon pipe`'s flags, the pipe child's flags and the token bucket itself."""

from __future__ import annotations

import math

LIMIT_EXPECTED = "a finite number of kB/s greater than 0"


def check_limit(kbps: float) -> float:
    """A shaping limit as written (kB/s), else ValueError with the one message: inf, nan, 0 and
    negative numbers are refused (an infinite limit stalled every connection at 0 bytes)."""
    if not (math.isfinite(kbps) and kbps > 0):
        raise ValueError(f"expected {LIMIT_EXPECTED}, found {kbps:g}")
    return kbps
