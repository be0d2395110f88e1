"""Adaptive tick spacing: keep the engine within a CPU budget on a huge conntrack table.

A tick reads the whole table, so its cost grows with the table. While conntrack events report
every flow's end with its final counters, reading the table less often loses no bytes — only
the rates of long-lived flows are updated less often — so ticks are spaced out until their
CPU time per second of monitoring fits the budget, never beyond `max_interval`. Without
events, flows that start and end between two reads would be missed: ticks keep `interval`.
A small table (under `min_entries`) is not worth it: its ticks are cheap on any machine, and
a costly one there comes from something else (start-up, a burst of lookups).
"""

from __future__ import annotations

from dataclasses import dataclass

# Weight of the newest tick in the smoothed cost (the rest is the past's).
SMOOTHING = 0.3


@dataclass(slots=True)
class TickPacer:
    """Turns the CPU cost of each tick into the spacing of the next one."""

    interval: float
    budget: float  # share of one CPU; 0 = never space out
    max_interval: float
    min_entries: int = 5_000  # tables smaller than this are read every interval
    cost: float | None = None  # smoothed CPU seconds per tick
    spacing: float = 0.0

    def __post_init__(self) -> None:
        self.spacing = self.interval

    def observe(self, cpu_seconds: float, events: bool, entries: int) -> float:
        """Account one tick's CPU time (its table had `entries`); return the spacing in
        seconds before the next tick."""
        self.cost = (cpu_seconds if self.cost is None
                     else SMOOTHING * cpu_seconds + (1 - SMOOTHING) * self.cost)
        if self.budget <= 0 or not events or entries < self.min_entries:
            self.spacing = self.interval
        else:
            longest = max(self.interval, self.max_interval)
            self.spacing = min(longest, max(self.interval, self.cost / self.budget))
        return self.spacing

    @property
    def stretched(self) -> bool:
        """Ticks are spaced out beyond `interval` (worth saying in the source status)."""
        return self.spacing > self.interval * 1.05

    def describe(self) -> str:
        """The reason, for the source status and the log."""
        cost = self.cost or 0.0
        return (f"read every {self.spacing:.1f} s, not every {self.interval:g} s: a tick costs "
                f"{cost * 1000:.0f} ms of CPU, cpu_budget is {self.budget:.0%} of a core")
