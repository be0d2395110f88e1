"""A sort order that moves rows only for differences that mean something (hysteresis).

Per-second rates jitter: two apps moving about the same traffic swap places nearly every
tick, which makes the table hard to read and re-sends their rows over a slow link. Here a
row passes the row above it only when its figure is clearly bigger (by more than `MARGIN`)
or has been bigger on two ticks in a row; otherwise both keep their previous places. So a
clearly bigger app rises at once, a steady lead wins after two ticks, and rows whose
figures clearly differ are always in exactly the right order.

Rate sorts of apps use each app's mean rate over the last `MEAN_SECONDS` instead, and a row
passes another when its mean is bigger by more than `MEAN_MARGIN` (no two-tick rule: a
mean does not take turns the way single seconds do). On the benchmark's 50 clients, one
second's rate differs from the next by a median 1.28× while neighbouring apps differ by a
few per cent, so no rule on single seconds keeps such rows still; the 5-second mean does,
and an app bursting to twice its neighbours' rate still passes them within two updates.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")

MARGIN = 0.5  # "clearly bigger": by more than half as much again
MEAN_SECONDS = 5.0  # rate sorts of apps order by the mean rate over this many seconds
MEAN_MARGIN = 0.2  # ... and a row passes another when its mean is bigger by more than this


def beats(new: float, other: float, new_before: float | None, other_before: float | None,
          descending: bool, margin: float = MARGIN) -> bool:
    """Must a row showing `new` be above one showing `other`? (`*_before`: the figures of
    the previous tick, None for a row that was not there.) Only ever true if `new` is
    strictly ahead now, so the relation has no cycles."""
    if not descending:  # smaller first: compare the negated figures the same way
        new, other = -new, -other
        new_before = None if new_before is None else -new_before
        other_before = None if other_before is None else -other_before
    if new <= other:
        return False
    if new - other > margin * min(abs(new), abs(other)):
        return True
    return new_before is not None and other_before is not None and new_before > other_before


LIMIT = 256  # rows ordered steadily; beyond them (never on screen) the order is exact


def steady_order(rows: Sequence[T], name: Callable[[T], str], value: Callable[[T], float],
                 previous: Sequence[str], before: Mapping[str, float], descending: bool,
                 margin: float = MARGIN) -> list[T]:
    """`rows` ordered by `value`, kept as close to the `previous` order (names) as `beats`
    allows.

    From the exact order (ties by name), a row moves up past the one above it while it was
    above that one before and is not beaten by it: an insertion sort towards the previous
    order. An adjacent swap changes no other pair's order, so no row ever ends up below a
    row that beats it. Rows new to the table keep their exact places among the others."""
    sign = -1.0 if descending else 1.0
    out = sorted(rows, key=lambda r: (sign * value(r), name(r).lower()))
    if not previous:
        return out
    place = {n: i for i, n in enumerate(previous)}
    late = len(place)
    head = [(place.get(name(r), late + i), value(r), before.get(name(r)), r)
            for i, r in enumerate(out[:LIMIT])]
    for i in range(1, len(head)):
        j = i
        row = head[i]
        while j and row[0] < head[j - 1][0] and not beats(
                head[j - 1][1], row[1], head[j - 1][2], row[2], descending, margin):
            head[j] = head[j - 1]
            j -= 1
        head[j] = row
    return [r for _, _, _, r in head] + out[LIMIT:]
