"""`bwmon-tui`: parse the shared settings flags plus --no-mouse and --demo, then run the app
with the engine (alerts and the optional HTTP server beside it) in the app's event loop.

Settings errors print one line and exit 2; SIGHUP (the SSH session dropped) and SIGTERM make
the app exit cleanly, which stops the engine and its pipe children.
"""

# ruff: noqa: E402  (the start-up call must come before asyncio is imported)
from __future__ import annotations

from bwmon.core.runtime.startup import prepare

prepare()  # first, before anything imports asyncio (ssl loaded on use; C heap settings)

import argparse
import asyncio
import contextlib
import gc
import sys
from collections.abc import Callable, Sequence

from bwmon import __version__
from bwmon.cli.closed_output import finish_output
from bwmon.cli.options import add_settings_options, settings_and_path_from_args
from bwmon.core.config.settings import Settings
from bwmon.core.errors import UserError
from bwmon.core.feed import ManualFeed
from bwmon.core.sanitize import clean_lines
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import EngineController, RecordingController
from bwmon.tui.demo import demo_processes, demo_snapshot


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bwmon-tui",
        description="Interactive per-application network bandwidth monitor. "
        "Press ? inside for every key, q to quit.",
        epilog="exit status: 0 quit; 2 an error you can fix, told in one line on stderr (a bad "
        "setting, an unreadable file); 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"bwmon-tui {__version__}")
    add_settings_options(parser)
    ui = parser.add_argument_group("display")
    ui.add_argument("--no-mouse", action="store_true",
                    help="no mouse reporting (for terminals or tmux setups where it misbehaves)")
    ui.add_argument("--demo", metavar="ROWS", type=int, nargs="?", const=12, default=None,
                    help="show made-up, deterministic data instead of measuring (default 12 rows)")
    return parser


def engine_app(settings: Settings, config_path: object,
               reload: Callable[[], Settings] | None = None) -> BwmonApp:
    """The real thing: Engine + alert monitor + optional HTTP server + config reload, run
    inside the app. Alerts go to the alert log, not stderr."""
    from pathlib import Path

    from bwmon.core.engine import Engine
    from bwmon.services import engine_services

    engine = Engine(settings)
    path = config_path if isinstance(config_path, Path) else None

    async def run() -> None:
        async with engine_services(engine, settings, config_path=path, reload=reload):
            await engine.run()

    return BwmonApp(engine, EngineController(engine),
                    config_path=config_path if isinstance(config_path, Path) else None,
                    engine_runner=run, engine_stopper=engine.stop)


def demo_app(settings: Settings, rows: int) -> BwmonApp:
    """Made-up data at the configured interval: to try the keys without root or traffic."""
    feed = ManualFeed()
    stop = asyncio.Event()

    async def run() -> None:
        tick = 0
        while not stop.is_set():
            feed.push(demo_snapshot(tick, rows, interval=settings.general.interval))
            tick += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.general.interval)

    controller = RecordingController(settings, demo_processes(rows))
    return BwmonApp(feed, controller, engine_runner=run, engine_stopper=stop.set, demo=True)


NO_TERMINAL = ("needs a terminal to draw on and read keys from (stdin and stderr are not "
               "both one); run it in a terminal (over SSH: ssh -t), or use `bwmon monitor` "
               "for plain output")


def on_a_terminal() -> bool:
    """Whether keys come from a terminal and the screen goes to one (Textual draws on
    stderr). Without, it would write its escape codes into a file or pipe."""
    return all(stream is not None and stream.isatty() for stream in (sys.stdin, sys.__stderr__))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:  # --help, --version, a usage error: flushed here, quietly if piped
        finish_output()
        raise
    try:
        settings, path = settings_and_path_from_args(args)
        if args.demo is not None and args.demo < 1:
            raise UserError("--demo ROWS must be at least 1")
        app = demo_app(settings, args.demo) if args.demo is not None else engine_app(
            settings, path, lambda: settings_and_path_from_args(args)[0])
    except UserError as exc:
        # one problem a line, each named by this command (the shared option code says "bwmon")
        lines = clean_lines(str(exc)).replace("\nbwmon: ", "\n").split("\n")
        print("\n".join(f"bwmon-tui: {line}" for line in lines), file=sys.stderr)
        return 2
    if not on_a_terminal():
        print(f"bwmon-tui: {NO_TERMINAL}", file=sys.stderr)
        return 2
    mouse = settings.tui.mouse and not args.no_mouse
    try:
        app.run(mouse=mouse)
    except KeyboardInterrupt:
        return 130
    finally:
        # Everything is stopped and the terminal restored: leave without the interpreter's
        # final collection over the whole heap, most of the time between q and the prompt.
        gc.freeze()
    if app.fatal_error is not None:
        print(f"bwmon-tui: {clean_lines(app.fatal_error)}", file=sys.stderr)
        return 2
    return app.return_code or 0


if __name__ == "__main__":
    sys.exit(main())
