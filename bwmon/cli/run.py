"""`bwmon run`: the aggregator headless (bwmon 1.1's runaggregator.py).

Conntrack monitors, pipes, app groups and alerts together: prints the app table each tick and
every alert on stderr in 1.1's one-line format (with `--json`, alert-log events are JSON lines
`{"event": …}` on stdout between the snapshots); `--http` serves the HTTP view beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from bwmon.cli.headless import event_json, log_to_stderr, run_engine
from bwmon.cli.monitor import add_output_options
from bwmon.cli.options import add_settings_options, settings_from_args
from bwmon.core.config import Settings
from bwmon.core.engine import Engine
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
    settings = settings_from_args(args)
    if settings.http.listen:
        from bwmon.http.listen import parse_listen, require_token

        addr, _ = parse_listen(settings.http.listen)
        require_token(addr, settings.http.token)
    return asyncio.run(
        run_engine(settings, json_lines=args.json, processes=args.processes, count=args.count,
                   attach=lambda engine: _attach(engine, settings, json_lines=args.json))
    )


def _attach(engine: Engine, settings: Settings, *, json_lines: bool) -> Callable[[], object]:
    """Alerts, log output and the optional HTTP server around a running engine."""
    from bwmon.core.alertmonitor import attach

    monitor, unsubscribe_alerts = attach(engine, settings,
                                         stderr=None if json_lines else sys.stderr)

    def on_log(event: LogEvent) -> None:
        if json_lines:
            print(event_json(event), flush=True)
        elif event.source != "alert":  # alerts already printed in the 1.1 format
            log_to_stderr(event)

    unsubscribe_log = engine.log.subscribe(on_log)
    server_task: asyncio.Task[object] | None = None
    if settings.http.listen:
        from bwmon.http.server import start_http_from_settings

        server_task = asyncio.ensure_future(start_http_from_settings(engine, settings))

    async def cleanup() -> None:
        unsubscribe_alerts()
        unsubscribe_log()
        await monitor.close()
        if server_task is not None:
            server = await server_task
            if server is not None:
                await server.close()  # type: ignore[attr-defined]

    return cleanup
