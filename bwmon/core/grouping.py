"""Which application a process belongs to: regex groups first, then its command's basename."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bwmon.core.config.settings import GroupSettings
from bwmon.core.model import ProcessInfo

# Command lines whose app is cached (~300 B each); more live rows than this only cost
# a regex search per row per tick. A host churning unique command lines stays bounded.
APP_CACHE_MAX = 8192


class Grouper:
    """Maps a process to an app name.

    The first group with any pattern found (`re.search`) in the command line wins; otherwise,
    with auto-grouping, the basename of the command (argv[0]); otherwise the process on its own,
    as `program[pid]`. A command line becomes a name only when `cmdline_names` asks for it
    (bwmon 1.1's way): it can hold a secret (`curl -u user:password …`), and a name reaches
    every output, /metrics labels and alert commands included. Which group a command line
    belongs to is cached (cleared when the groups change).
    """

    def __init__(self, groups: Sequence[GroupSettings] = (), *, auto_group: bool = True,
                 cmdline_names: bool = False) -> None:
        self.auto_group = auto_group
        self.cmdline_names = cmdline_names
        self._groups: list[tuple[str, list[re.Pattern[str]]]] = []
        self._cache: dict[str, str | None] = {}
        self.set_groups(groups)

    def set_groups(self, groups: Sequence[GroupSettings]) -> None:
        self._groups = [(g.name, [re.compile(p) for p in g.patterns]) for g in groups]
        self._cache.clear()

    def set_auto_group(self, on: bool, cmdline_names: bool | None = None) -> None:
        self.auto_group = on
        if cmdline_names is not None:
            self.cmdline_names = cmdline_names

    def group_of(self, cmdline: str) -> str | None:
        """The configured group whose patterns match `cmdline`, if any."""
        for name, patterns in self._groups:
            for pattern in patterns:
                if pattern.search(cmdline):
                    return name
        return None

    def app_of(self, info: ProcessInfo) -> str:
        cmdline = info.cmdline
        if cmdline in self._cache:
            group = self._cache[cmdline]
        else:
            group = self.group_of(cmdline)
            if len(self._cache) >= APP_CACHE_MAX:  # bounded: command lines churn for ever
                self._cache.clear()
            self._cache[cmdline] = group
        if group is not None:
            return group
        program = info.exe_base or info.name
        if self.auto_group:
            return program or f"[{info.key.pid}]"
        if self.cmdline_names:
            return cmdline or info.name
        return f"{program}[{info.key.pid}]"


class ProcessFilter:
    """bwmon 1.1's include/exclude: show a process only if it matches an include (when any are
    given) and no exclude. Exclude wins."""

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self.include = [re.compile(p) for p in include]
        self.exclude = [re.compile(p) for p in exclude]

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def shows(self, cmdline: str) -> bool:
        if any(p.search(cmdline) for p in self.exclude):
            return False
        return not self.include or any(p.search(cmdline) for p in self.include)


class MonitorFilters:
    """The general include/exclude plus those of the configured conntrack monitors.

    A process is shown when the general filter shows it and, if conntrack monitors are
    configured, at least one of them does (bwmon 1.1 merged its monitors' views).
    """

    def __init__(self, general: ProcessFilter, monitors: Sequence[ProcessFilter] = ()) -> None:
        self.general = general
        self.monitors = [m for m in monitors]

    def shows(self, cmdline: str) -> bool:
        if not self.general.shows(cmdline):
            return False
        return not self.monitors or any(m.shows(cmdline) for m in self.monitors)
