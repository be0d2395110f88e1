"""Apply an edited bwmon.toml while bwmon runs: groups, filters, alert rules, pipes and their
shaping limits change at once; settings that need a restart are named in the log.

The file is polled (its mtime and size) every few seconds, and read at once on request
(`bwmon serve` on SIGHUP); a file that fails to load leaves the running settings alone and says
why in the alert log.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bwmon.core.config.settings import AlertSettings, GroupSettings, Settings
from bwmon.core.eventlog import EventLog
from bwmon.core.model import Level

if TYPE_CHECKING:
    from bwmon.core.pipes.supervisor import PipeSupervisor

# Settings read once at start: a change is logged as needing a restart.
RESTART_KEYS = (
    ("general", "proc_root"), ("general", "conntrack_command"), ("general", "history_seconds"),
    ("general", "events"), ("general", "ebpf"), ("general", "lookback"), ("http", "listen"),
    ("http", "token"), ("tui", "mouse"), ("tui", "log_lines"),
)


class Reloadable(Protocol):
    """What the reloader changes: the engine."""

    settings: Settings
    log: EventLog
    pipes: PipeSupervisor | None

    def set_groups(self, groups: list[GroupSettings]) -> None: ...
    def set_auto_group(self, on: bool, cmdline_names: bool | None = None) -> None: ...
    def set_filters(self, include: list[str], exclude: list[str]) -> None: ...


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class ConfigReloader:
    def __init__(
        self,
        engine: Reloadable,
        path: Path,
        load: Callable[[], Settings],
        *,
        on_alerts: Callable[[list[AlertSettings]], None] | None = None,
        wall: Callable[[], float],
        interval: float = 2.0,
    ) -> None:
        self.engine = engine
        self.path = path
        self.load = load
        self.on_alerts = on_alerts
        self.wall = wall
        self.interval = interval
        self._seen = _signature(path)
        self.reloads = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check()

    async def check(self) -> bool:
        """Reload if the file changed since the last look; True when settings were applied."""
        sig = _signature(self.path)
        if sig == self._seen or sig is None:
            return False
        self._seen = sig
        return await self._load_and_apply()

    async def reload_now(self) -> bool:
        """Reload whether or not the file changed (SIGHUP, `systemctl reload`)."""
        self._seen = _signature(self.path)
        return await self._load_and_apply()

    async def _load_and_apply(self) -> bool:
        try:
            new = self.load()
        except Exception as exc:  # a broken edit must never stop the monitor
            self._log(Level.WARNING, f"{self.path} not reloaded, still using the previous "
                      f"settings: {exc}")
            return False
        await self.apply(new)
        return True

    async def apply(self, new: Settings) -> None:
        engine, old = self.engine, self.engine.settings
        restart = [f"{s}.{k}" for s, k in RESTART_KEYS
                   if getattr(getattr(old, s), k) != getattr(getattr(new, s), k)]
        engine.set_groups(new.groups)
        engine.set_auto_group(new.general.auto_group, new.general.cmdline_names)
        engine.settings.monitors = new.monitors
        engine.set_filters(new.general.include, new.general.exclude)
        for key in ("interval", "bandwidth", "ignore_local", "log_level"):
            setattr(old.general, key, getattr(new.general, key))
        accounting = getattr(engine, "accounting", None)
        if accounting is not None:
            accounting.ignore_local = old.hides_loopback
        old.alerts = new.alerts
        old.notify = new.notify
        if self.on_alerts is not None:
            self.on_alerts(new.alerts)
        await self._apply_pipes(new)
        self.reloads += 1
        tail = f"; needs a restart to change: {', '.join(restart)}" if restart else ""
        self._log(Level.INFO, f"settings reloaded from {self.path}{tail}")

    async def _apply_pipes(self, new: Settings) -> None:
        engine = self.engine
        if engine.pipes is not None:
            await engine.pipes.update(new.pipes)
        elif new.pipes:
            from bwmon.core.pipes.supervisor import PipeSupervisor as Supervisor

            engine.pipes = Supervisor(new.pipes, engine.log)
            await engine.pipes.start()

    def _log(self, level: Level, message: str) -> None:
        self.engine.log.add(self.wall(), level, "config", message)
