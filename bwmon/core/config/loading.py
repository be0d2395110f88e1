"""Finding and loading bwmon.toml: defaults < file < `BWMON_*` variables < flags.

`load_settings` is the one entry point. It locates the file, reads it (syntax errors become
`file:line:col: …`), lets pydantic-settings merge the sources (see `Settings.
settings_customise_sources`), and turns any validation error into a `ConfigError` that names
where the bad value came from: `file:line`, the environment variable, or the flag.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from bwmon.core.config.errors import ConfigError, Problem, describe_validation
from bwmon.core.config.settings import LoadContext, MappingEnvSource, Settings, build_settings
from bwmon.core.config.toml_lines import Loc, TomlLines

ENV_PREFIX = "BWMON_"
CONFIG_ENV = "BWMON_CONFIG"
SYSTEM_CONFIG = Path("/etc/bwmon/bwmon.toml")

__all__ = [
    "CONFIG_ENV",
    "SYSTEM_CONFIG",
    "ConfigError",
    "Origins",
    "default_config_path",
    "find_config",
    "load_settings",
    "load_settings_with_origins",
    "read_toml",
]


def default_config_path(env: Mapping[str, str] | None = None) -> Path:
    """The per-user file: `$XDG_CONFIG_HOME/bwmon/bwmon.toml`, else `~/.config/bwmon/bwmon.toml`."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(env.get("HOME", "~")) / ".config"
    return (base / "bwmon" / "bwmon.toml").expanduser()


def find_config(
    config: Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[Path | None, bool]:
    """The file to read and whether it was named explicitly (then it must exist)."""
    env = os.environ if env is None else env
    if config is not None:
        return Path(config), True
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]), True
    for candidate in (default_config_path(env), SYSTEM_CONFIG):
        try:
            if candidate.is_file():
                return candidate, False
        except OSError as exc:  # e.g. a HOME this user may not enter
            raise ConfigError(
                f"{candidate}: cannot tell whether it exists ({exc.strerror}); let this user "
                "read it, set XDG_CONFIG_HOME (or HOME) to a directory it may read, or name the "
                "file with --config"
            ) from None
    return None, False


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def read_toml(path: Path, *, named_by: str = "") -> tuple[dict[str, Any], TomlLines]:
    """Parse a TOML file; any problem (missing, unreadable, bad syntax) is a ConfigError."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        hint = f" (named by {named_by})" if named_by else ""
        raise ConfigError(
            f"{path}: no such file{hint}; create it (see bwmon.toml.example) or fix the path"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied; run as a user who may read it") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _TOML_AT.search(message)
        if at:
            where = f"{path}:{at.group(1)}:{at.group(2)}"
            message = message[: at.start()]
        else:
            where = f"{path}:{text.count(chr(10)) + 1}"
            message = message.replace(" (at end of document)", " at end of file")
        raise ConfigError(f"{where}: TOML syntax error: {message}") from None
    return data, TomlLines(text)


def load_settings(
    config: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> tuple[Settings, Path | None]:
    """Effective settings and the TOML file used (None: defaults only).

    `overrides` are nested like the file (`{"general": {"interval": 2}}`) and win over all;
    `env` replaces os.environ; `flag_names` maps dotted keys to the flag that set them
    ("general.interval" → "--interval") so errors name the flag. Raises ConfigError.
    """
    settings, path, _ = load_settings_with_origins(
        config, overrides=overrides, env=env, flag_names=flag_names
    )
    return settings, path


def load_settings_with_origins(
    config: Path | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    flag_names: Mapping[str, str] | None = None,
) -> tuple[Settings, Path | None, Origins]:
    """Like load_settings, also returning where each setting came from (for `config show`)."""
    env = dict(os.environ) if env is None else dict(env)
    path, _ = find_config(config, env)
    toml_data: dict[str, Any] = {}
    lines: TomlLines | None = None
    if path is not None:
        named_by = "" if config is not None else CONFIG_ENV
        toml_data, lines = read_toml(path, named_by=named_by)
    _check_env_names(env)
    plain = _plain(dict(overrides or {}))
    try:
        settings = build_settings(LoadContext(path, env), plain)
    except SettingsError as exc:
        raise _env_parse_error(env, exc) from None
    except ValidationError as exc:
        origins = Origins(path, toml_data, lines, env, plain, flag_names or {})
        raise describe_validation(Settings, exc, origins) from None
    origins = Origins(path, toml_data, lines, env, plain, flag_names or {})
    _check_groups_apply(settings, origins)
    return settings, path, origins


def _check_groups_apply(settings: Settings, origins: Origins) -> None:
    """[[groups]] with a group_by that leaves "groups" out would never apply: say so, where
    group_by was set, rather than have every group (and the group editor) silently do
    nothing."""
    if not settings.groups or "groups" in settings.general.group_by:
        return
    where, line = origins(("general", "group_by"))
    raise ConfigError([Problem(
        where, "general.group_by",
        f'leaves out "groups", so the {len(settings.groups)} [[groups]] would never apply: '
        'add "groups" to it (first, to win over containers and units), or remove the '
        "[[groups]]", line)])


# ---------------------------------------------------------------------------------------------
# Where a bad value came from


class Origins:
    """Answers "where was the value at loc set?": the source of highest precedence holding it.

    Called with a pydantic loc it returns (where, line): `file:line`, a `BWMON_*` variable, a
    flag, or "" for a built-in default (line is 0 unless the value came from the file).
    """

    def __init__(
        self,
        path: Path | None,
        toml_data: dict[str, Any],
        lines: TomlLines | None,
        env: Mapping[str, str],
        overrides: dict[str, Any],
        flag_names: Mapping[str, str],
    ) -> None:
        self.path, self.toml_data, self.lines = path, toml_data, lines
        self.env = env
        try:
            self.env_data: dict[str, Any] = MappingEnvSource(Settings, env)()
        except SettingsError:
            self.env_data = {}
        self.overrides, self.flag_names = overrides, flag_names

    def __call__(self, loc: Loc) -> tuple[str, int]:
        depths = [
            _depth(self.overrides, loc),
            _depth(self.env_data, loc),
            _depth(self.toml_data, loc),
        ]
        best = max(depths)
        if best == 0:
            return "", 0
        if depths[0] == best:
            return self._flag(loc), 0
        if depths[1] == best:
            return self._env_var(loc), 0
        line = self.lines.find(loc) if self.lines else None
        return (f"{self.path}:{line}" if line else str(self.path)), line or 0

    def origin(self, loc: Loc) -> str:
        """Where the value at loc was set, only if a source holds it whole ("" = default)."""
        holders = [self.overrides, self.env_data, self.toml_data]
        if not any(_depth(data, loc) == len(loc) for data in holders):
            return ""
        return self(loc)[0]

    def _flag(self, loc: Loc) -> str:
        keys = [p for p in loc if isinstance(p, str)]
        for n in range(len(keys), 0, -1):
            name = self.flag_names.get(".".join(keys[:n]))
            if name:
                return name
        return "command line"

    def _env_var(self, loc: Loc) -> str:
        keys: list[str] = []
        for part in loc:
            if not isinstance(part, str):
                break
            keys.append(part)
        by_lower = {k.lower(): k for k in self.env}
        for n in range(len(keys), 0, -1):
            name = (ENV_PREFIX + "__".join(keys[:n])).lower()
            if name in by_lower:
                return by_lower[name]
        return "environment"


def _depth(data: Any, loc: Loc) -> int:
    """How many leading parts of loc exist in a nested dict/list."""
    depth = 0
    for part in loc:
        in_dict = isinstance(data, dict) and isinstance(part, str) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_dict or in_list):
            break
        data = data[part]
        depth += 1
    return depth


def _plain(value: Any) -> Any:
    """Models to dicts, recursively, so overrides validate (and are blamed) like file values."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _check_env_names(env: Mapping[str, str]) -> None:
    """A `BWMON_X__Y` variable whose X is no section is a typo: say so instead of ignoring it.

    Plain `BWMON_NAME` variables without `__` are left alone: notification commands get such
    variables (BWMON_APP, BWMON_TIME…) and may well run bwmon themselves.
    """
    problems = []
    fields = set(Settings.model_fields)
    for name in env:
        if not name.upper().startswith(ENV_PREFIX) or name.upper() == CONFIG_ENV:
            continue
        section, nested, _ = name[len(ENV_PREFIX) :].partition("__")
        # BWMON_APP, BWMON_TIME…: what notification commands receive, not settings
        if section.lower() not in fields and nested:
            known = ", ".join(sorted(fields))
            problems.append(
                Problem(name, "", f"unknown setting (sections: {known}; nest keys with __)")
            )
    if problems:
        raise ConfigError(problems)


def _env_parse_error(env: Mapping[str, str], exc: SettingsError) -> ConfigError:
    """pydantic-settings could not decode a JSON value: name the variable and the fix."""
    field = re.search(r'field "(\w+)"', str(exc))
    section = field.group(1).lower() if field else ""
    for name, value in env.items():
        lower = name.lower()
        if lower.startswith((ENV_PREFIX + section).lower()) and lower != CONFIG_ENV.lower():
            example = (
                '["ssh", "scp"]' if "__" in name else '[{"name": "web", "patterns": ["nginx"]}]'
            )
            return ConfigError(
                [Problem(name, "", f"expected a JSON value such as {example}, found {value!r}")]
            )
    return ConfigError(f"environment: {exc}")
