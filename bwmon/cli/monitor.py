"""`bwmon monitor`: the measuring core headless (bwmon 1.1's runmonitor.py)."""

from __future__ import annotations

import argparse
import asyncio

from bwmon.cli.headless import run_engine
from bwmon.cli.options import add_settings_options, settings_and_path_from_args
from bwmon.core.config.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "monitor",
        help="print per-app traffic from conntrack, one table per tick",
        description="Measure per-application traffic from the kernel's connection tracking "
        "and print one table per tick (plain lines when piped, JSON with --json).",
    )
    add_settings_options(p)
    add_output_options(p)
    p.set_defaults(func=run)


def add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per tick (for scripts)")
    p.add_argument("--processes", action="store_true",
                   help="one row per process instead of per application")
    p.add_argument("--count", type=int, metavar="N",
                   help="stop after N printed ticks (default: run until interrupted)")


def run(args: argparse.Namespace) -> int:
    def load() -> Settings:
        settings, _ = settings_and_path_from_args(args)
        settings.monitors = [m for m in settings.monitors if m.type != "pipe"]
        return settings

    settings, path = settings_and_path_from_args(args)
    settings.monitors = [m for m in settings.monitors if m.type != "pipe"]
    return asyncio.run(run_engine(settings, json_lines=args.json, processes=args.processes,
                                  count=args.count, config_path=path, reload=load))
