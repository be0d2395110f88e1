"""`bwmon config convert|show|path|check|export-rules|example`: migrate 1.1 INI files, inspect
and validate settings, carry the alert rules over to Prometheus, print the commented example.

`convert` writes a commented bwmon.toml (tomlkit) that loads back to the same settings as the
old files; `show` prints the effective settings with where each came from; `path` prints the
file in use; `check` validates a file (and the environment and flags) without starting anything;
`export-rules` prints the [[alerts]] as Prometheus rules (bwmon.cli.prometheus_rules);
`example` prints the bwmon.toml.example shipped in the package.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import BaseModel
from tomlkit.items import Item, Table

from bwmon.cli.options import (
    FLAG_NAMES,
    add_settings_options,
    legacy_overrides,
    overrides_from_args,
    user_error,
)
from bwmon.core.config.errors import ConfigError
from bwmon.core.config.loading import (
    CONFIG_ENV,
    SYSTEM_CONFIG,
    default_config_path,
    find_config,
    load_settings_with_origins,
)
from bwmon.core.config.settings import Settings
from bwmon.core.config.toml_lines import Loc
from bwmon.core.errors import UserError

Origin = Callable[[Loc], str]
LISTS = ("monitors", "groups", "alerts")
SECRETS = {("HttpSettings", "token")}  # (model, field): never printed, only said to be set
LEGACY_FLAGS = {
    "groups": "--app-config",
    "monitors": "--monitor-config",
    "alerts": "--notification-config",
}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "config",
        help="convert bwmon 1.1 INI files, show, locate or check settings",
        description="Convert bwmon 1.1 INI files to bwmon.toml, show the effective settings, "
        "print the file in use, or check a file.",
    )

    def usage(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return 2

    p.set_defaults(func=usage)
    cmds = p.add_subparsers(dest="config_command", metavar="ACTION")

    convert = cmds.add_parser(
        "convert", help="print (or write) a bwmon.toml equivalent to bwmon 1.1 INI files"
    )
    for flag, what in (
        ("--app-config", "app groups ([App] shortname=regex)"),
        ("--monitor-config", "monitors (type=monitor|pipe)"),
        ("--notification-config", "notifications (process_filter, thresholds)"),
    ):
        convert.add_argument(flag, metavar="FILE", type=Path, help=f"bwmon 1.1 {what} file")
    convert.add_argument("--output", "-o", metavar="FILE", type=Path, help="write here, not stdout")
    convert.add_argument("--force", action="store_true", help="overwrite an existing --output file")
    convert.set_defaults(func=run_convert)

    show = cmds.add_parser("show", help="print the effective settings as TOML, with their origin")
    add_settings_options(show)
    show.set_defaults(func=run_show)

    path = cmds.add_parser(
        "path", help="print the bwmon.toml in use (and where it is looked for)",
        epilog="exit status: 0 a file is in use; 1 none (built-in defaults); 2 a bad --config.")
    path.add_argument("--config", metavar="FILE", type=Path, help="as for the other commands")
    path.set_defaults(func=run_path)

    check = cmds.add_parser("check", help="validate a bwmon.toml (default: the one in use)")
    check.add_argument("file", metavar="FILE", type=Path, nargs="?", help="the file to check")
    add_settings_options(check)
    check.set_defaults(func=run_check)

    rules = cmds.add_parser(
        "export-rules", help="print Prometheus recording and alerting rules equivalent to the "
        "[[alerts]] of bwmon.toml, for a fleet's Prometheus")
    add_settings_options(rules)
    rules.add_argument("--scrape-interval", metavar="SECONDS", type=float, default=15.0,
                       help="Prometheus' scrape interval for bwmon (default 15): rate() ranges "
                       "span at least 4 of them")
    rules.add_argument("--output", "-o", metavar="FILE", type=Path, help="write here, not stdout")
    rules.set_defaults(func=run_export_rules)

    example = cmds.add_parser(
        "example", help="print bwmon.toml.example: every setting, commented, loadable as is")
    example.set_defaults(func=run_example)


def run(args: argparse.Namespace) -> int:
    return int(args.func(args))


# ---------------------------------------------------------------------------------------------
# Rendering settings as TOML


def _toml_value(value: Any) -> Any:
    """JSON-mode values for tomlkit; regexes with backslashes as 'literal' strings (no escapes)."""
    if isinstance(value, list):
        array = tomlkit.array()
        array.extend(_toml_value(v) for v in value)
        return array
    if isinstance(value, str) and "\\" in value and "'" not in value and "\n" not in value:
        return tomlkit.string(value, literal=True)
    return value


def _table(model: BaseModel, *, only_changed: bool, keep: Sequence[str] = ()) -> Table:
    """A TOML table of a model: every field (or only non-defaults plus `keep`), None as comment."""
    table = tomlkit.table()
    data = model.model_dump(mode="json")
    defaults = type(model).model_fields
    for name, value in data.items():
        field = defaults[name]
        is_default = not field.is_required() and value == _default_json(model, name)
        if only_changed and is_default and name not in keep:
            continue
        if value is None:
            table.add(tomlkit.comment(f"{name} = (unset)"))
            continue
        if (type(model).__name__, name) in SECRETS:  # shown to whoever reads the terminal
            table.add(tomlkit.comment(f"{name} = (set; not shown)"))
            continue
        table.add(name, _toml_value(value))
    return table


def _default_json(model: BaseModel, name: str) -> Any:
    field = type(model).model_fields[name]
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        return default.model_dump(mode="json")
    if isinstance(default, Path):
        return str(default)
    return default


def settings_document(
    settings: Settings,
    *,
    only_changed: bool = False,
    origin: Origin | None = None,
    header: Sequence[str] = (),
    notes: Mapping[tuple[str, int], str] | None = None,
) -> tomlkit.TOMLDocument:
    """Settings as a TOML document; `origin(loc)` comments where a value came from."""
    doc = tomlkit.document()
    for line in header:
        doc.add(tomlkit.comment(line))
    if header:
        doc.add(tomlkit.nl())
    for section, field in Settings.model_fields.items():
        value = getattr(settings, section)
        if section in LISTS:
            if not value:
                if not only_changed:
                    doc.add(tomlkit.comment(f"[[{section}]]: none"))
                    doc.add(tomlkit.nl())
                continue
            aot = tomlkit.aot()
            for index, item in enumerate(value):
                table = _table(item, only_changed=only_changed, keep=("name", "type"))
                comment = (notes or {}).get((section, index)) or (
                    origin((section, index)) if origin else ""
                )
                if comment:
                    table.comment(comment)
                aot.append(table)
            doc.add(section, aot)
            continue
        table = _table(value, only_changed=only_changed)
        if only_changed and not table:
            continue
        if origin is not None:
            for key in list(table.keys()):
                where = origin((section, key))
                item = table.item(key)
                if where and isinstance(item, Item):
                    item.comment(where)
        if field.description:
            table.comment(field.description)
        doc.add(section, table)
    return doc


def _dumps(doc: tomlkit.TOMLDocument) -> str:
    text = tomlkit.dumps(doc)
    return text if text.endswith("\n") else text + "\n"


# ---------------------------------------------------------------------------------------------
# Subcommands


def run_convert(args: argparse.Namespace) -> int:
    if not (args.app_config or args.monitor_config or args.notification_config):
        raise UserError(
            "config convert: name at least one of --app-config, --monitor-config, "
            "--notification-config"
        )
    warnings: list[str] = []
    try:
        lists = legacy_overrides(args, warnings)
        settings = Settings.model_validate(lists)
    except ConfigError as exc:
        raise user_error(exc) from None
    finally:
        for warning in warnings:
            print(f"bwmon: warning: {warning}", file=sys.stderr)
    notes = {}
    for section, items in lists.items():
        source = getattr(args, LEGACY_FLAGS[section].lstrip("-").replace("-", "_"))
        for index, item in enumerate(items):
            notes[(section, index)] = f"from {source.name} [{item.name}]"
    header = [
        "bwmon.toml converted from bwmon 1.1 files by `bwmon config convert`:",
        *(
            f"  {flag} {getattr(args, flag[2:].replace('-', '_'))}"
            for flag in LEGACY_FLAGS.values()
            if getattr(args, flag[2:].replace("-", "_"))
        ),
        "Thresholds and shaping limits are kB/s (1 kB = 1024 bytes), as in bwmon 1.1.",
        "Every other setting keeps its default: see bwmon.toml.example for all of them.",
    ]
    if any(m.shape_in for m in settings.monitors):
        header.append("shape_in/shape_out come from shape_threshold, which 1.1 never enforced.")
    text = _dumps(settings_document(settings, only_changed=True, header=header, notes=notes))
    if args.output is None:
        sys.stdout.write(text)
        return 0
    if args.output.exists() and not args.force:
        raise UserError(f"{args.output}: exists; pass --force to overwrite it")
    _write_atomically(args.output, text)
    print(f"bwmon: wrote {args.output}", file=sys.stderr)
    return 0


def _write_atomically(path: Path, text: str) -> None:
    """Temp file beside the target, then rename: a crash never leaves half a config."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror})") from None


def _load(args: argparse.Namespace, config: Path | None) -> tuple[Settings, Path | None, Origin]:
    warnings: list[str] = []
    try:
        overrides = legacy_overrides(args, warnings)
        overrides.update(overrides_from_args(args))
        settings, path, origins = load_settings_with_origins(
            config, overrides=overrides, flag_names=FLAG_NAMES
        )
    except ConfigError as exc:
        raise user_error(exc) from None
    finally:
        for warning in warnings:
            print(f"bwmon: warning: {warning}", file=sys.stderr)
    return settings, path, origins.origin


def run_show(args: argparse.Namespace) -> int:
    settings, path, origin = _load(args, args.config)
    source = str(path) if path else "none (built-in defaults)"
    header = [
        f"Effective bwmon settings. File: {source}.",
        "A comment after a value says where it came from; no comment = built-in default.",
    ]
    sys.stdout.write(_dumps(settings_document(settings, origin=origin, header=header)))
    return 0


def run_path(args: argparse.Namespace) -> int:
    try:
        path, explicit = find_config(args.config)
    except ConfigError as exc:
        raise user_error(exc) from None
    if path is not None and (not explicit or path.is_file()):
        print(path)
        return 0
    if path is not None:
        raise UserError(
            f"{path}: no such file (named by {'--config' if args.config else CONFIG_ENV})"
        )
    print(
        "bwmon: no bwmon.toml in use (built-in defaults). Looked for "
        f"${CONFIG_ENV}, {default_config_path()}, {SYSTEM_CONFIG}",
        file=sys.stderr,
    )
    return 1


def run_check(args: argparse.Namespace) -> int:
    settings, path, _ = _load(args, args.file or args.config)
    what = str(path) if path else "built-in defaults (no bwmon.toml found)"
    counts = ", ".join(f"{len(getattr(settings, name))} {name}" for name in LISTS)
    print(f"{what}: OK ({counts})")
    return 0


def run_export_rules(args: argparse.Namespace) -> int:
    from bwmon.cli.prometheus_rules import export_rules

    if not args.scrape_interval > 0:
        raise UserError(f"--scrape-interval {args.scrape_interval:g}: expected seconds above 0")
    settings, _, _ = _load(args, args.config)
    text = export_rules(settings, scrape_interval=args.scrape_interval)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    _write_atomically(args.output, text)
    print(f"bwmon: wrote {args.output}", file=sys.stderr)
    return 0


def run_example(args: argparse.Namespace) -> int:
    """The example shipped in the package, for installs without the source tree."""
    from importlib.resources import files

    sys.stdout.write(files("bwmon").joinpath("bwmon.toml.example").read_text(encoding="utf-8"))
    return 0
