"""The alerts that are on right now, followed from the alert log, for the header.

The alert log pane may be hidden (below 100 columns it shares its place with the detail pane),
so the header names every active alert: fired or repeated and not yet cleared.
"""

from __future__ import annotations

from collections.abc import Iterable

from bwmon.core.model import LogEvent
from bwmon.core.units import human_rate

SOURCE = "alert"  # the alert monitor's log source (bwmon.core.alerts.monitor.SOURCE)


class ActiveAlerts:
    """(rule, app, direction) -> the limit in bytes/s, for every alert not cleared yet."""

    def __init__(self) -> None:
        self._on: dict[tuple[str, str, str], float] = {}

    def follow(self, events: Iterable[LogEvent]) -> None:
        for event in events:
            self.add(event)

    def add(self, event: LogEvent) -> None:
        """One log event: alert events switch their alert on or off, others are ignored."""
        if event.source != SOURCE:
            return
        data = dict(event.data)
        key = (data.get("rule", ""), data.get("app", ""), data.get("direction", ""))
        if not key[1]:
            return
        if data.get("event") in ("cleared", "ended"):
            self._on.pop(key, None)
        elif data.get("event") in ("fired", "repeat"):
            try:
                self._on[key] = float(data.get("threshold", "0"))
            except ValueError:
                self._on[key] = 0.0

    def regroup(self, moves: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]) -> None:
        """Rows were renamed (Snapshot.regrouped): their alerts go on under the new names, as
        the alert engine carries them (no event says so)."""
        for old, to in moves:
            for key in [k for k in self._on if k[1] == old]:
                limit = self._on.pop(key)
                for new, share in to:
                    if share > 0:
                        self._on[(key[0], new, key[2])] = limit

    def summary(self) -> str:
        """e.g. `ALERT web in > 100 KiB/s` or `2 ALERTS web in, ssh out`; "" when none."""
        if not self._on:
            return ""
        if len(self._on) == 1:
            (_, app, direction), limit = next(iter(self._on.items()))
            return f"ALERT {app} {direction} > {human_rate(limit)}"
        names = ", ".join(f"{app} {direction}" for _, app, direction in self._on)
        return f"{len(self._on)} ALERTS {names}"

    def __len__(self) -> int:
        return len(self._on)
