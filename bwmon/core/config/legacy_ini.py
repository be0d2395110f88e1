"""Readers for bwmon 1.1's three INI files: app groups, monitors and notifications.

Each reader returns the settings models bwmon.toml would hold, so the old files load unchanged
beside (in place of the matching list of) the new file. Problems are ConfigErrors with
`file:line`; things accepted with a fix-up (a stray regex backslash in a host name, an unknown
option) are appended to the caller's `warnings` list as `file:line: text`.
"""

from __future__ import annotations

import configparser
import math
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bwmon.core.config.errors import ConfigError, Problem, describe_error, format_found
from bwmon.core.config.settings import AlertSettings, GroupSettings, MonitorSettings

M = TypeVar("M", bound=BaseModel)

_SECTION = re.compile(r"\[(?P<header>.+)\]")
_OPTION = re.compile(r"(?P<key>.*?)\s*[=:]")


@dataclass
class _Ini:
    """A parsed INI file plus the line of each section header and option."""

    path: Path
    parser: configparser.ConfigParser
    section_lines: dict[str, int] = field(default_factory=dict)
    option_lines: dict[tuple[str, str], int] = field(default_factory=dict)

    def line(self, section: str, key: str | None = None) -> int:
        if key is not None and (section, key) in self.option_lines:
            return self.option_lines[(section, key)]
        return self.section_lines.get(section, 1)

    def where(self, section: str, key: str | None = None) -> str:
        return f"{self.path}:{self.line(section, key)}"

    def problem(self, section: str, key: str | None, message: str) -> ConfigError:
        label = f"[{section}] {key}" if key else f"[{section}]"
        return ConfigError([Problem(self.where(section, key), label, message)])

    def options(self, section: str) -> list[tuple[str, str]]:
        """Options of a section in file order, as written (no interpolation, case kept)."""
        return [(k, v) for k, v in self.parser.items(section, raw=True)]


def _read_ini(path: Path, flag: str) -> _Ini:
    """Parse like bwmon 1.1 did (`=` or `:`, `#`/`;` comments) but keep `%`, case and order."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (named by {flag}); fix the path") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    parser = configparser.ConfigParser(
        interpolation=None, strict=False, inline_comment_prefixes=(";",)
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text, source=str(path))
    except configparser.MissingSectionHeaderError as exc:
        raise ConfigError(
            f"{path}:{exc.lineno}: option outside any [section]: {exc.line.strip()!r}"
        ) from None
    except configparser.ParsingError as exc:
        lineno, line = exc.errors[0]
        raise ConfigError(f"{path}:{lineno}: not an INI line: {line.strip()!r}") from None
    ini = _Ini(path, parser)
    section: str | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;" or raw[0] in " \t":
            continue
        head = _SECTION.match(raw)
        if head:
            section = head.group("header")
            ini.section_lines.setdefault(section, n)
            continue
        opt = _OPTION.match(raw)
        if opt and section is not None:
            ini.option_lines[(section, opt.group("key").strip())] = n
    return ini


def _build(
    ini: _Ini, section: str, cls: type[M], data: dict[str, Any], keys: Mapping[str, str]
) -> M:
    """Validate one model; errors point at the INI option (`keys`: model field → INI key)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc, message = describe_error(cls, err)
            name = str(loc[0]) if loc else ""
            key = keys.get(name, name) or None
            label = f"[{section}] {key}" if key else f"[{section}]"
            problem = Problem(ini.where(section, key), label, message, ini.line(section, key))
            if problem not in problems:  # shape_threshold sets shape_in and shape_out
                problems.append(problem)
        raise ConfigError(problems) from None


def _number(ini: _Ini, section: str, key: str, value: str, convert: Callable[[str], Any]) -> Any:
    try:
        return convert(value.strip())
    except ValueError:
        kind = "an integer" if convert is int else "a number"
        raise ini.problem(section, key, f"expected {kind}, found {format_found(value)}") from None


def _warn_unknown(ini: _Ini, section: str, known: set[str], warnings: list[str] | None) -> None:
    for key, _ in ini.options(section):
        if key not in known and warnings is not None:
            hint = " (use in_threshold/out_threshold)" if key == "notification_threshold" else ""
            warnings.append(
                f"{ini.where(section, key)}: [{section}] {key}: unknown option ignored{hint}"
            )


# ---------------------------------------------------------------------------------------------
# The three readers


def load_app_config(path: Path, *, warnings: list[str] | None = None) -> list[GroupSettings]:
    """`[App]` sections of `shortname=regex` lines → groups, patterns in file order."""
    ini = _read_ini(Path(path), "--app-config")
    groups = []
    for section in ini.parser.sections():
        options = ini.options(section)
        if not options and warnings is not None:
            warnings.append(f"{ini.where(section)}: [{section}]: no patterns; it matches nothing")
        for key, value in options:
            if not value and warnings is not None:
                warnings.append(
                    f"{ini.where(section, key)}: [{section}] {key}: empty pattern matches "
                    "every process"
                )
        patterns = [value for _, value in options]
        try:
            groups.append(GroupSettings(name=section, patterns=patterns))
        except ValidationError as exc:
            for err in exc.errors():
                loc, message = describe_error(GroupSettings, err)
                index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
                bad_key = options[index][0] if index is not None else None
                raise ini.problem(section, bad_key, message) from None
    return groups


def load_monitor_config(path: Path, *, warnings: list[str] | None = None) -> list[MonitorSettings]:
    """`type=monitor` sections → conntrack monitors; `type=pipe` sections → pipe monitors."""
    ini = _read_ini(Path(path), "--monitor-config")
    monitors = []
    for section in ini.parser.sections():
        opts = dict(ini.options(section))
        kind = opts.get("type", "").strip().lower()
        if kind == "monitor":
            _warn_unknown(ini, section, {"type", "include", "exclude", "ignorelocal"}, warnings)
            data: dict[str, Any] = {"name": section, "type": "conntrack"}
            for key in ("include", "exclude"):
                if opts.get(key):
                    data[key] = [opts[key]]
            if "ignorelocal" in opts:
                try:
                    data["ignore_local"] = ini.parser.getboolean(section, "ignorelocal")
                except ValueError:
                    raise ini.problem(
                        section,
                        "ignorelocal",
                        f"expected true or false, found {format_found(opts['ignorelocal'])}",
                    ) from None
            keys = {"include": "include", "exclude": "exclude", "ignore_local": "ignorelocal"}
            monitors.append(_build(ini, section, MonitorSettings, data, keys))
        elif kind == "pipe":
            _warn_unknown(
                ini, section, {"type", "port", "newhost", "newport", "shape_threshold"}, warnings
            )
            for key in ("port", "newhost"):
                if not opts.get(key, "").strip():
                    raise ini.problem(section, key, "required for a pipe, missing")
            port = _number(ini, section, "port", opts["port"], int)
            host = opts["newhost"].strip()
            if "\\" in host:
                fixed = host.replace("\\", "")
                if warnings is not None:
                    warnings.append(
                        f"{ini.where(section, 'newhost')}: [{section}] newhost: stray backslash "
                        f'removed ("{host}" read as "{fixed}"); a host name is not a regex'
                    )
                host = fixed
            data = {"name": section, "type": "pipe", "port": port, "target_host": host}
            if opts.get("newport", "").strip():
                data["target_port"] = _number(ini, section, "newport", opts["newport"], int)
            elif 1 <= port <= 65535:  # else the port line alone is to blame (no newport line)
                data["target_port"] = port
            if opts.get("shape_threshold", "").strip():
                shape = _number(ini, section, "shape_threshold", opts["shape_threshold"], float)
                if shape != 0:  # 0: unlimited; inf, nan and below 0 are refused by the model
                    data["shape_in"] = data["shape_out"] = shape
                    if warnings is not None and math.isfinite(shape) and shape > 0:
                        warnings.append(
                            f"{ini.where(section, 'shape_threshold')}: [{section}] "
                            f"shape_threshold: bwmon 1.1 never enforced it; bwmon now limits "
                            f"this pipe to {shape:g} kB/s each way (remove the line to keep "
                            "it unlimited)"
                        )
            keys = {
                "port": "port",
                "target_host": "newhost",
                "target_port": "newport",
                "shape_in": "shape_threshold",
                "shape_out": "shape_threshold",
            }
            monitors.append(_build(ini, section, MonitorSettings, data, keys))
        else:
            if "type" in opts:
                found = format_found(opts["type"])
                raise ini.problem(section, "type", f"expected monitor or pipe, found {found}")
            raise ini.problem(section, None, "type: required (monitor or pipe), missing")
    return monitors


def load_notification_config(
    path: Path, *, warnings: list[str] | None = None
) -> list[AlertSettings]:
    """`[Label]` sections with process_filter, in/out_threshold (kB/s), interval, command."""
    ini = _read_ini(Path(path), "--notification-config")
    known = {"process_filter", "in_threshold", "out_threshold", "interval", "notification_command"}
    alerts = []
    for section in ini.parser.sections():
        opts = dict(ini.options(section))
        _warn_unknown(ini, section, known, warnings)
        if "process_filter" not in opts:
            raise ini.problem(section, None, "process_filter: required, missing")
        data: dict[str, Any] = {"name": section, "match": opts["process_filter"]}
        for key in ("in_threshold", "out_threshold"):
            if opts.get(key, "").strip():
                value = _number(ini, section, key, opts[key], float)
                data[key] = value if value != 0 else None
        if opts.get("interval", "").strip():
            data["window"] = _number(ini, section, "interval", opts["interval"], float)
        command = opts.get("notification_command", "").strip()
        if command:
            try:
                data["command"] = shlex.split(command)
            except ValueError as exc:
                raise ini.problem(
                    section, "notification_command", f"cannot split like a shell: {exc}"
                ) from None
        if (
            data.get("in_threshold") is None
            and data.get("out_threshold") is None
            and warnings is not None
        ):
            warnings.append(
                f"{ini.where(section)}: [{section}]: no in_threshold or out_threshold; never fires"
            )
        keys = {
            "match": "process_filter",
            "in_threshold": "in_threshold",
            "out_threshold": "out_threshold",
            "window": "interval",
            "command": "notification_command",
        }
        alerts.append(_build(ini, section, AlertSettings, data, keys))
    return alerts
