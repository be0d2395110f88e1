"""The settings flags every measuring command shares, and turning them into `Settings`.

Flags not given stay None and leave the file's (or environment's) value alone; given flags win.
The bwmon 1.1 INI files (`--app-config`, `--monitor-config`, `--notification-config`) each
replace the matching list of bwmon.toml (groups, monitors, alerts).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from bwmon.core.config.errors import ConfigError
from bwmon.core.config.legacy_ini import (
    load_app_config,
    load_monitor_config,
    load_notification_config,
)
from bwmon.core.config.loading import load_settings
from bwmon.core.config.settings import Settings
from bwmon.core.errors import UserError

# dotted setting → the flag that sets it, so errors name the flag
FLAG_NAMES = {
    "general.auto_group": "--auto-group",
    "general.include": "--include",
    "general.exclude": "--exclude",
    "general.bandwidth": "--bandwidth/--traffic",
    "general.lookback": "--no-lookback",
    "general.ignore_local": "--ignore-local",
    "general.interval": "--interval",
    "http.listen": "--http",
    "groups": "--app-config",
    "monitors": "--monitor-config",
    "alerts": "--notification-config",
}


def regex_arg(value: str) -> str:
    """argparse type: a regular expression that compiles (else a clean usage error)."""
    try:
        re.compile(value)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"invalid regular expression {value!r}: {exc}") from None
    return value


def add_settings_options(parser: argparse.ArgumentParser) -> None:
    """Add --config, the 1.1 INI files, filters, view and interval flags, and --http."""
    files = parser.add_argument_group("configuration files")
    files.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        default=None,
        help="bwmon.toml to read (default: $BWMON_CONFIG, ~/.config/bwmon/bwmon.toml, "
        "/etc/bwmon/bwmon.toml)",
    )
    files.add_argument(
        "--app-config",
        metavar="FILE",
        type=Path,
        default=None,
        help="bwmon 1.1 app groups INI ([App] shortname=regex); replaces the file's groups",
    )
    files.add_argument(
        "--monitor-config",
        metavar="FILE",
        type=Path,
        default=None,
        help="bwmon 1.1 monitors INI (type=monitor|pipe); replaces the file's monitors",
    )
    files.add_argument(
        "--notification-config",
        metavar="FILE",
        type=Path,
        default=None,
        help="bwmon 1.1 notifications INI; replaces the file's alerts",
    )
    opts = parser.add_argument_group("measuring")
    opts.add_argument(
        "--auto-group",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="group ungrouped processes by their command's basename",
    )
    opts.add_argument(
        "--include",
        metavar="REGEX",
        action="append",
        type=regex_arg,
        default=None,
        help="only show processes whose command line matches (repeatable)",
    )
    opts.add_argument(
        "--exclude",
        metavar="REGEX",
        action="append",
        type=regex_arg,
        default=None,
        help="hide processes whose command line matches (repeatable; wins over --include)",
    )
    view = opts.add_mutually_exclusive_group()
    view.add_argument(
        "--bandwidth",
        dest="bandwidth",
        action="store_const",
        const=True,
        default=None,
        help="show bandwidth (bytes per second)",
    )
    view.add_argument(
        "--traffic",
        dest="bandwidth",
        action="store_const",
        const=False,
        help="show cumulative traffic instead of bandwidth",
    )
    opts.add_argument(
        "--no-lookback",
        dest="lookback",
        action="store_const",
        const=False,
        default=None,
        help="count only traffic after start, not what conntrack already held",
    )
    opts.add_argument(
        "--ignore-local",
        action="store_const",
        const=True,
        default=None,
        help="hide loopback traffic (reported as filtered)",
    )
    opts.add_argument(
        "--interval",
        metavar="SECONDS",
        type=float,
        default=None,
        help="seconds between two updates (default 1)",
    )
    opts.add_argument(
        "--http",
        metavar="[ADDR:]PORT",
        default=None,
        help="serve the HTTP view (JSON, /metrics, chart) on this port (address 127.0.0.1 "
        "unless given)",
    )


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the given flags set, nested like bwmon.toml (absent flags: absent keys)."""
    general: dict[str, Any] = {}
    for flag, key in (
        ("auto_group", "auto_group"),
        ("include", "include"),
        ("exclude", "exclude"),
        ("bandwidth", "bandwidth"),
        ("lookback", "lookback"),
        ("ignore_local", "ignore_local"),
        ("interval", "interval"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            general[key] = value
    out: dict[str, Any] = {}
    if general:
        out["general"] = general
    if getattr(args, "http", None) is not None:
        out["http"] = {"listen": args.http}
    return out


def legacy_overrides(args: argparse.Namespace, warnings: list[str]) -> dict[str, Any]:
    """Lists read from the bwmon 1.1 INI files named by flags (each replaces its list)."""
    out: dict[str, Any] = {}
    if getattr(args, "app_config", None) is not None:
        out["groups"] = load_app_config(args.app_config, warnings=warnings)
    if getattr(args, "monitor_config", None) is not None:
        out["monitors"] = load_monitor_config(args.monitor_config, warnings=warnings)
    if getattr(args, "notification_config", None) is not None:
        out["alerts"] = load_notification_config(args.notification_config, warnings=warnings)
    return out


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Effective settings for a command; ConfigError becomes UserError, warnings go to stderr."""
    settings, _ = settings_and_path_from_args(args)
    return settings


def settings_and_path_from_args(args: argparse.Namespace) -> tuple[Settings, Path | None]:
    """Like settings_from_args, also returning the bwmon.toml in use (None: none)."""
    warnings: list[str] = []
    try:
        overrides = legacy_overrides(args, warnings)
        overrides.update(overrides_from_args(args))
        settings, path = load_settings(
            getattr(args, "config", None), overrides=overrides, flag_names=FLAG_NAMES
        )
    except ConfigError as exc:
        raise user_error(exc) from None
    finally:
        for warning in warnings:
            print(f"bwmon: warning: {warning}", file=sys.stderr)
    return settings, path


def user_error(exc: ConfigError) -> UserError:
    """One `bwmon: ` line per problem (the CLI prefixes only the first line itself)."""
    return UserError(str(exc).replace("\n", "\nbwmon: "))
