"""Human formatting of byte counts and rates with binary prefixes (1 KiB = 1024 B)."""

from __future__ import annotations

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(value: float) -> str:
    """`1536` → `1.50 KiB`: three significant digits, binary prefixes, at most 8 characters."""
    value = max(0.0, float(value))
    unit = 0
    while value >= 1000 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{int(value)} B"
    if value < 10:
        return f"{value:.2f} {_UNITS[unit]}"
    if value < 100:
        return f"{value:.1f} {_UNITS[unit]}"
    return f"{value:.0f} {_UNITS[unit]}"


def human_rate(value: float) -> str:
    """A rate in bytes/s: `human_bytes` plus `/s`."""
    return f"{human_bytes(value)}/s"
