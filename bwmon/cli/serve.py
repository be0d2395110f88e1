"""`bwmon serve`: the headless agent — measure, evaluate alerts, serve the HTTP view.

No terminal output but log lines on stderr (with journald priorities when stderr is the
journal; see log_lines), so it suits a systemd unit. Stops cleanly on SIGTERM or SIGINT;
SIGHUP reads the configuration file again, as daemons do (`systemctl reload bwmon`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

from bwmon.cli.log_lines import LogLines
from bwmon.cli.options import add_settings_options, settings_and_path_from_args
from bwmon.core.config.settings import Settings
from bwmon.core.errors import UserError
from bwmon.core.model import Level, LogEvent

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


def log_text(event: LogEvent) -> str:
    data = " ".join(f"{k}={v}" for k, v in event.data)
    tail = f" ({data})" if data else ""
    return f"bwmon: {event.level.value}: {event.source}: {event.message}{tail}"


async def serve(settings: Settings, config_path: Path | None = None,
                reload: Callable[[], Settings] | None = None) -> int:
    """Run the engine, the alert monitor and the HTTP server until a stop signal."""
    from bwmon.core.engine import Engine
    from bwmon.services import engine_services

    engine = Engine(settings)
    lines = LogLines(lambda: engine.settings.general.log_level)
    unsubscribe_log = engine.log.subscribe(lambda event: lines.event(event, log_text(event)))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, engine.stop)
    try:
        async with engine_services(engine, settings, config_path=config_path, reload=reload,
                                   reload_on_sighup=True) as server:
            url = server.url  # type: ignore[attr-defined]
            lines.line(Level.INFO, f"bwmon: serving {url} (JSON /api/v1/snapshot, /metrics)")
            await engine.run()
    finally:
        unsubscribe_log()
        lines.line(Level.INFO, "bwmon: stopped")
    return 0
