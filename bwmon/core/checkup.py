"""The doctor's checks while bwmon runs: once at start, then every CHECK_SECONDS.

A fixed problem (accounting switched on, a tracking rule added) or a new one (the conntrack
module unloaded, a capability dropped) is noticed within a minute: the change goes to the alert
log, the screen's findings follow, and health (`bwmon_up`, `bwmon_check_ok`) tells the truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bwmon.core.eventlog import EventLog
from bwmon.core.model import Finding, Level

CHECK_SECONDS = 60.0


class Checkup:
    """Holds the latest findings of every check (passing ones too)."""

    def __init__(self, proc_root: Path, conntrack_command: str, log: EventLog,
                 wall: Callable[[], float],
                 diagnose: Callable[[], Awaitable[Sequence[Finding]]] | None = None) -> None:
        self.proc_root = proc_root
        self.conntrack_command = conntrack_command
        self.diagnose = diagnose or self._diagnose
        self.log = log
        self.wall = wall
        self.checks: tuple[Finding, ...] = ()
        self.runs = 0

    @property
    def blocking(self) -> bool:
        """True when conntrack can measure nothing (see doctor.blocking)."""
        from bwmon.core import doctor  # on use: the doctor imports every source

        return doctor.blocking(self.checks)

    def why_blocking(self) -> str:
        """The failed checks that leave conntrack with nothing to measure, as one line."""
        from bwmon.core.doctor import BLOCKING, TRACKING

        return "; ".join(f.message for f in self.failed
                         if f.check in BLOCKING or f.check in TRACKING)

    @property
    def failed(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.checks if not f.ok)

    async def run_once(self) -> tuple[Finding, ...]:
        """Run every check; after the first run, log each check that changed."""
        found = tuple(await self.diagnose())
        if self.runs:
            self._log_changes(found)
        self.checks = found
        self.runs += 1
        return found

    async def run_forever(self, on_change: Callable[[], None],
                          interval: float = CHECK_SECONDS) -> None:
        """Check again every `interval` seconds; `on_change` runs when an outcome changed."""
        while True:
            await asyncio.sleep(interval)
            before = {f.check: f.ok for f in self.checks}
            await self.run_once()
            if {f.check: f.ok for f in self.checks} != before:
                on_change()

    async def _diagnose(self) -> Sequence[Finding]:
        from bwmon.core import doctor

        return await doctor.diagnose(self.proc_root, conntrack_command=self.conntrack_command)

    def _log_changes(self, found: tuple[Finding, ...]) -> None:
        was = {f.check: f.ok for f in self.checks}
        for f in found:
            if was.get(f.check) is False and f.ok:
                self.log.add(self.wall(), Level.INFO, "doctor", f"{f.check} ok now: {f.message}")
            elif was.get(f.check) is True and not f.ok:
                fix = f" (fix: {f.fix})" if f.fix else ""
                self.log.add(self.wall(), Level.WARNING, "doctor", f.message + fix)
