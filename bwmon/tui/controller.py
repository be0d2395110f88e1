"""The actions of the TUI that change the core, behind one small interface.

In production the Engine does the work (wrapped by `EngineController`, which adds the doctor's
fixes); tests and the demo use `RecordingController`, which only remembers what was asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from bwmon.core.config.settings import GroupSettings, Settings
from bwmon.core.model import Finding, ProcessInfo


class Controller(Protocol):
    """What the TUI may ask of the core. Every method returns at once (no I/O in widgets)."""

    @property
    def settings(self) -> Settings: ...

    def set_groups(self, groups: list[GroupSettings]) -> None: ...

    def set_auto_group(self, on: bool) -> None: ...

    def set_filters(self, include: list[str], exclude: list[str]) -> None: ...

    def set_process_view(self, on: bool) -> None: ...

    def running_processes(self) -> list[ProcessInfo]: ...

    async def apply_fixes(self, findings: Sequence[Finding]) -> list[str]: ...


class EngineController:
    """Adapter from the Engine's API to `Controller`; fixes go through `bwmon.core.doctor`."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    @property
    def settings(self) -> Settings:
        settings: Settings = self._engine.settings
        return settings

    def set_groups(self, groups: list[GroupSettings]) -> None:
        self._engine.set_groups(groups)

    def set_auto_group(self, on: bool) -> None:
        self._engine.set_auto_group(on)

    def set_filters(self, include: list[str], exclude: list[str]) -> None:
        self._engine.set_filters(include, exclude)

    def set_process_view(self, on: bool) -> None:
        self._engine.set_process_view(on)

    def running_processes(self) -> list[ProcessInfo]:
        return list(self._engine.running_processes())

    async def apply_fixes(self, findings: Sequence[Finding]) -> list[str]:
        try:
            from bwmon.core import doctor
        except ImportError:
            return ["the doctor module is not available in this build"]
        result: list[str] = await doctor.apply_fixes(list(findings))
        await self._engine.recheck()  # the header tells what the fixes changed at once
        return result


class RecordingController:
    """A controller that records every request: for tests, the demo and screenshots."""

    def __init__(
        self, settings: Settings | None = None, processes: Sequence[ProcessInfo] = ()
    ) -> None:
        self._settings = settings or Settings()
        self.processes = list(processes)
        self.calls: list[tuple[str, object]] = []
        self.fix_output: list[str] = []

    @property
    def settings(self) -> Settings:
        return self._settings

    def set_groups(self, groups: list[GroupSettings]) -> None:
        self.calls.append(("set_groups", list(groups)))

    def set_auto_group(self, on: bool) -> None:
        self.calls.append(("set_auto_group", on))

    def set_filters(self, include: list[str], exclude: list[str]) -> None:
        self.calls.append(("set_filters", (list(include), list(exclude))))

    def set_process_view(self, on: bool) -> None:
        self.calls.append(("set_process_view", on))

    def running_processes(self) -> list[ProcessInfo]:
        return list(self.processes)

    async def apply_fixes(self, findings: Sequence[Finding]) -> list[str]:
        self.calls.append(("apply_fixes", list(findings)))
        return list(self.fix_output)

    def last(self, name: str) -> object:
        """The argument of the most recent call of `name` (KeyError when never called)."""
        for call, arg in reversed(self.calls):
            if call == name:
                return arg
        raise KeyError(name)
