"""Local calendar boundaries (days, months) of UTC epoch seconds, in the process's time zone.

The store keeps UTC epoch seconds; days and months are the local ones (the TZ environment
variable, else /etc/localtime), found through the C library like `date` does, so a day across
a daylight-saving change is 23 or 25 hours long.
"""

from __future__ import annotations

import time

HOUR = 3600
MINUTE = 60


def local_midnight(t: float) -> int:
    """The epoch seconds of the start of the local day holding `t`."""
    tm = time.localtime(t)
    start = int(time.mktime((tm.tm_year, tm.tm_mon, tm.tm_mday, 0, 0, 0, 0, 0, -1)))
    # a day whose midnight does not exist (a clock moved forward at 00:00) starts at 01:00,
    # which mktime gives as the previous day's 23:00: step forward to the day's first hour
    while time.localtime(start).tm_mday != tm.tm_mday:
        start += HOUR
    return start


def next_midnight(t: float) -> int:
    """The start of the local day after the one holding `t`."""
    return local_midnight(local_midnight(t) + 36 * HOUR)


def month_start(t: float) -> int:
    """The start of the local month holding `t`."""
    tm = time.localtime(t)
    return local_midnight(time.mktime((tm.tm_year, tm.tm_mon, 1, 12, 0, 0, 0, 0, -1)))


def next_month(t: float) -> int:
    """The start of the local month after the one holding `t`."""
    return month_start(month_start(t) + 32 * 24 * HOUR)


def day_label(t: float) -> str:
    """`YYYY-MM-DD` of the local day holding `t`."""
    return time.strftime("%Y-%m-%d", time.localtime(t))


def month_label(t: float) -> str:
    """`YYYY-MM` of the local month holding `t`."""
    return time.strftime("%Y-%m", time.localtime(t))


def local_text(t: float) -> str:
    """`YYYY-MM-DD HH:MM` local time with the zone's abbreviation (`CEST`)."""
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(t))


def iso_local(t: float) -> str:
    """ISO 8601 local time with its UTC offset, e.g. `2026-03-29T03:00:00+02:00`."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))
    return f"{text[:-2]}:{text[-2:]}"
