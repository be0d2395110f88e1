"""What runs around the engine in every front end: alert monitor, HTTP server, config reload,
the history recorder, and the heap trimmer that keeps RSS at what is live.

`bwmon run`, `bwmon serve` and `bwmon-tui` all use `engine_services`, so each starts and stops
the same things in the same order.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TextIO

from bwmon.core.config.reload import ConfigReloader
from bwmon.core.config.settings import Settings
from bwmon.core.engine import Engine
from bwmon.core.model import Level


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
    reload_on_sighup: bool = False,
    history: bool = True,
) -> AsyncIterator[object | None]:
    """Start the alert monitor, the HTTP server (when `http.listen` is set) and the watcher
    that applies an edited config file, and trim the heap every TRIM_SECONDS; stop them on
    exit. With `reload_on_sighup`, SIGHUP reads the config file again at once (a daemon's
    reload). With `history` (and history.enabled), the recorder writes the history store; it
    is `engine.recorder` meanwhile. Yields the HTTP server (or None)."""
    from bwmon.core.alerts.monitor import attach
    from bwmon.core.runtime.heap import trim_forever

    monitor, unsubscribe = (attach(engine, settings, stderr=alerts_stderr) if alerts
                            else (None, None))
    recorder = None
    if history and settings.history.enabled:
        from bwmon.core.store.recorder import Recorder

        recorder = Recorder(engine, settings.history, wall=time.time)
        recorder.start()
        engine.recorder = recorder
    server = None
    if http and settings.http.listen:
        from bwmon.http.server import start_http_from_settings

        server = await start_http_from_settings(engine, settings)
    tasks = [asyncio.create_task(trim_forever())]
    reloader = None
    if config_path is not None and reload is not None:
        reloader = ConfigReloader(engine, config_path, reload, wall=time.time,
                                  on_alerts=monitor.update_rules if monitor else None)
        tasks.append(asyncio.create_task(reloader.run()))
    loop = asyncio.get_running_loop()
    if reload_on_sighup:
        loop.add_signal_handler(signal.SIGHUP, _on_sighup, engine, reloader, tasks)
    try:
        yield server
    finally:
        if reload_on_sighup:
            loop.remove_signal_handler(signal.SIGHUP)
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
        if recorder is not None:
            await recorder.close()  # after the engine stopped: writes the last ticks' bytes


def _on_sighup(engine: Engine, reloader: ConfigReloader | None,
               tasks: list[asyncio.Task[None]]) -> None:
    """SIGHUP: reload the config file now; without one, say there is nothing to reload."""
    if reloader is None:
        engine.log.add(time.time(), Level.INFO, "config", "SIGHUP: no configuration file in "
                       "use (built-in defaults, BWMON_* and flags): nothing to reload")
        return
    task = asyncio.create_task(_reload(reloader))
    tasks[:] = [t for t in tasks if not t.done()] + [task]


async def _reload(reloader: ConfigReloader) -> None:
    await reloader.reload_now()
