"""Which application a process belongs to: by `group_by` order, regex groups, its container,
its systemd unit, then its command's basename."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bwmon.core.config.settings import GroupSettings
from bwmon.core.model import ProcessInfo

# Command lines whose app is cached (~300 B each); more live rows than this only cost
# a regex search per row per tick. A host churning unique command lines stays bounded.
APP_CACHE_MAX = 8192
GROUP_BY = ("groups", "container", "unit", "basename")
# A pattern with one of these prefixes is searched in that name only, not in the command line.
_FIELDS = ("container:", "unit:")


class Grouper:
    """Maps a process to an app name.

    The first group with any pattern found (`re.search`) in the command line wins; otherwise,
    with auto-grouping, the basename of the command (argv[0]); otherwise the process on its own,
    as `program[pid]`. A command line becomes a name only when `cmdline_names` asks for it
    (bwmon 1.1's way): it can hold a secret (`curl -u user:password …`), and a name reaches
    every output, /metrics labels and alert commands included. Which group a command line
    belongs to is cached (cleared when the groups change).

    `group_by` orders the ways tried (GROUP_BY is the default): "groups" (the regexes; a
    pattern `container:RE` or `unit:RE` is searched in that name instead of the command line),
    "container" (the process's container name), "unit" (its systemd `.service`, but not
    `own_unit`, the one bwmon runs in: on a desktop that is user@UID.service, which holds every
    application started there) and "basename" (the auto-grouping above).
    """

    def __init__(self, groups: Sequence[GroupSettings] = (), *, auto_group: bool = True,
                 cmdline_names: bool = False, group_by: Sequence[str] = GROUP_BY,
                 own_unit: str = "") -> None:
        self.auto_group = auto_group
        self.cmdline_names = cmdline_names
        self.group_by = tuple(group_by)
        self.own_unit = own_unit
        self._groups: list[tuple[str, list[tuple[str, re.Pattern[str]]]]] = []
        self._cache: dict[tuple[str, str, str], str | None] = {}
        self.set_groups(groups)

    def set_groups(self, groups: Sequence[GroupSettings]) -> None:
        self._groups = [(g.name, [_pattern(p) for p in g.patterns]) for g in groups]
        self._cache.clear()

    def set_group_by(self, group_by: Sequence[str]) -> None:
        self.group_by = tuple(group_by)

    def set_auto_group(self, on: bool, cmdline_names: bool | None = None) -> None:
        self.auto_group = on
        if cmdline_names is not None:
            self.cmdline_names = cmdline_names

    def group_of(self, cmdline: str, container: str = "", unit: str = "") -> str | None:
        """The configured group whose patterns match, if any."""
        texts = {"": cmdline, "container:": container, "unit:": unit}
        for name, patterns in self._groups:
            for field, pattern in patterns:
                if pattern.search(texts[field]):
                    return name
        return None

    def _group(self, info: ProcessInfo) -> str | None:
        key = (info.cmdline, info.container, info.unit)
        if key in self._cache:
            return self._cache[key]
        group = self.group_of(*key)
        if len(self._cache) >= APP_CACHE_MAX:  # bounded: command lines churn for ever
            self._cache.clear()
        self._cache[key] = group
        return group

    def app_of(self, info: ProcessInfo) -> str:
        for way in self.group_by:
            if way == "groups":
                group = self._group(info)
                if group is not None:
                    return group
            elif way == "container" and info.container:
                return info.container
            elif (way == "unit" and info.unit.endswith(".service")
                  and info.unit != self.own_unit):
                return info.unit
            elif way == "basename":
                return self._basename(info)
        return self._basename(info)  # no way given applies: the basename still names it

    def _basename(self, info: ProcessInfo) -> str:
        cmdline = info.cmdline
        program = info.exe_base or info.name
        if self.auto_group:
            return program or f"[{info.key.pid}]"
        if self.cmdline_names:
            return cmdline or info.name
        return f"{program}[{info.key.pid}]"


def _pattern(text: str) -> tuple[str, re.Pattern[str]]:
    """(field prefix or "", compiled regex) of a group pattern."""
    for field in _FIELDS:
        if text.startswith(field):
            return field, re.compile(text[len(field):])
    return "", re.compile(text)


class ProcessFilter:
    """bwmon 1.1's include/exclude: show a process only if it matches an include (when any are
    given) and no exclude. Exclude wins.

    A pattern `container:RE` or `unit:RE` is searched in the process's container or unit name
    instead of its command line.
    """

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self.include = [_pattern(p) for p in include]
        self.exclude = [_pattern(p) for p in exclude]

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def shows(self, cmdline: str, container: str = "", unit: str = "") -> bool:
        texts = {"": cmdline, "container:": container, "unit:": unit}
        if any(p.search(texts[f]) for f, p in self.exclude):
            return False
        return not self.include or any(p.search(texts[f]) for f, p in self.include)


class MonitorFilters:
    """The general include/exclude plus those of the configured conntrack monitors.

    A process is shown when the general filter shows it and, if conntrack monitors are
    configured, at least one of them does (bwmon 1.1 merged its monitors' views).
    """

    def __init__(self, general: ProcessFilter, monitors: Sequence[ProcessFilter] = ()) -> None:
        self.general = general
        self.monitors = [m for m in monitors]

    def shows(self, cmdline: str, container: str = "", unit: str = "") -> bool:
        if not self.general.shows(cmdline, container, unit):
            return False
        return not self.monitors or any(m.shows(cmdline, container, unit)
                                        for m in self.monitors)
