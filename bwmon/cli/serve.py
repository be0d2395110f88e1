"""`bwmon serve`: the headless agent — measure, evaluate alerts, serve the HTTP view.

No terminal output but log lines on stderr (journald-friendly), so it suits a systemd unit.
Stops cleanly on SIGTERM, SIGINT or SIGHUP.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from bwmon.cli.options import add_settings_options, settings_and_path_from_args
from bwmon.core.config.settings import Settings
from bwmon.core.errors import UserError
from bwmon.core.model import LogEvent

NO_LISTEN = (
    "bwmon serve needs an address to serve on: give --http [ADDR:]PORT (e.g. --http 9100) "
    "or set listen under [http] in bwmon.toml"
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="headless agent: measure and serve JSON, /metrics and the chart over HTTP",
        description="Run bwmon without a terminal (e.g. under systemd): measure, evaluate "
        "alerts and serve the HTTP view. Binds 127.0.0.1 unless an address is given; "
        "any other address needs a token (http.token or BWMON_HTTP__TOKEN).",
    )
    add_settings_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings, path = settings_and_path_from_args(args)
    if not settings.http.listen:
        raise UserError(NO_LISTEN)
    from bwmon.http.listen import parse_listen, require_token

    addr, _ = parse_listen(settings.http.listen)  # fail before the engine starts anything
    require_token(addr, settings.http.token)
    return asyncio.run(serve(settings, path, lambda: settings_and_path_from_args(args)[0]))


def _log_line(event: LogEvent) -> None:
    data = " ".join(f"{k}={v}" for k, v in event.data)
    tail = f" ({data})" if data else ""
    print(f"bwmon: {event.level.value}: {event.source}: {event.message}{tail}",
          file=sys.stderr, flush=True)


async def serve(settings: Settings, config_path: Path | None = None,
                reload: Callable[[], Settings] | None = None) -> int:
    """Run the engine, the alert monitor and the HTTP server until a stop signal."""
    from bwmon.core.engine import Engine
    from bwmon.services import engine_services

    engine = Engine(settings)
    unsubscribe_log = engine.log.subscribe(_log_line)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, engine.stop)
    try:
        async with engine_services(engine, settings, config_path=config_path,
                                   reload=reload) as server:
            print(f"bwmon: serving {server.url} (JSON /api/v1/snapshot, /metrics)",  # type: ignore[attr-defined]
                  file=sys.stderr, flush=True)
            await engine.run()
    finally:
        unsubscribe_log()
        print("bwmon: stopped", file=sys.stderr, flush=True)
    return 0
