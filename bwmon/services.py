"""What runs around the engine in every front end: alert monitor, HTTP server, config reload,
and the heap trimmer that keeps RSS at what is live.

`bwmon run`, `bwmon serve` and `bwmon-tui` all use `engine_services`, so each starts and stops
the same things in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TextIO

from bwmon.core.config.settings import Settings
from bwmon.core.engine import Engine


@contextlib.asynccontextmanager
async def engine_services(
    engine: Engine,
    settings: Settings,
    *,
    alerts: bool = True,
    alerts_stderr: TextIO | None = None,
    http: bool = True,
    config_path: Path | None = None,
    reload: Callable[[], Settings] | None = None,
) -> AsyncIterator[object | None]:
    """Start the alert monitor, the HTTP server (when `http.listen` is set) and the watcher
    that applies an edited config file, and trim the heap every TRIM_SECONDS; stop them on
    exit. Yields the HTTP server (or None)."""
    from bwmon.core.alerts.monitor import attach
    from bwmon.core.config.reload import ConfigReloader
    from bwmon.core.runtime.heap import trim_forever

    monitor, unsubscribe = (attach(engine, settings, stderr=alerts_stderr) if alerts
                            else (None, None))
    server = None
    if http and settings.http.listen:
        from bwmon.http.server import start_http_from_settings

        server = await start_http_from_settings(engine, settings)
    tasks = [asyncio.create_task(trim_forever())]
    if config_path is not None and reload is not None:
        reloader = ConfigReloader(engine, config_path, reload, wall=time.time,
                                  on_alerts=monitor.update_rules if monitor else None)
        tasks.append(asyncio.create_task(reloader.run()))
    try:
        yield server
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if server is not None:
            await server.close()
        if unsubscribe is not None:
            unsubscribe()
        if monitor is not None:
            await monitor.close()
