"""`bwmon run`: the aggregator headless (bwmon 1.1's runaggregator.py).

Conntrack monitors, pipes, app groups and alerts together: prints the app table each tick and
every alert on stderr in 1.1's one-line format (with `--json`, alert-log events are JSON lines
`{"event": …}` on stdout between the snapshots); `--http` serves the HTTP view beside it.
"""

from __future__ import annotations

import argparse
import asyncio

from bwmon.cli.headless import log_text, run_engine
from bwmon.cli.log_lines import LogLines
from bwmon.cli.monitor import add_output_options
from bwmon.cli.options import add_settings_options, settings_and_path_from_args
from bwmon.core.model import LogEvent


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run",
        help="monitors, pipes, groups and alerts together; table on stdout, alerts on stderr",
        description="Run every configured monitor and pipe, group processes into apps, "
        "evaluate alert rules (running their commands) and print the app table each tick.",
    )
    add_settings_options(p)
    add_output_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings, path = settings_and_path_from_args(args)
    if settings.http.listen:
        from bwmon.http.listen import parse_listen, require_token

        addr, _ = parse_listen(settings.http.listen)
        require_token(addr, settings.http.token)
    json_lines = bool(args.json)

    lines = LogLines(lambda: settings.general.log_level)

    def on_log(event: LogEvent) -> None:
        if event.source != "alert":  # alerts are printed in the 1.1 format
            lines.event(event, log_text(event))

    return asyncio.run(
        run_engine(settings, json_lines=json_lines, processes=args.processes, count=args.count,
                   alerts=True, on_log=None if json_lines else on_log, events_json=json_lines,
                   config_path=path,
                   reload=lambda: settings_and_path_from_args(args)[0])
    )
