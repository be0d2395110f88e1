"""The headless command line: `bwmon monitor|run|serve|pipe|doctor|config|report`.

Each subcommand lives in its own module with `add_parser(subparsers)` and `run(args) -> int`.
Errors a user can cause are printed as one line on stderr with exit status 2; never a traceback.
A reader that closes the output (`| head`) ends the command quietly with status 0.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bwmon import __version__
from bwmon.cli.closed_output import finish_output, silence_stdout
from bwmon.core.errors import UserError
from bwmon.core.sanitize import clean_lines

EXIT_STATUS = (
    (0, "done (also when the reader of the output closed it, as `| head` does)"),
    (2, "an error you can fix, told in one line on stderr (a bad setting, an unreadable file)"),
    (130, "interrupted (Ctrl+C)"),
)
# subcommand name -> module under bwmon.cli
COMMANDS = {
    "monitor": "bwmon.cli.monitor",
    "run": "bwmon.cli.run",
    "serve": "bwmon.cli.serve",
    "pipe": "bwmon.cli.pipe",
    "doctor": "bwmon.cli.doctor",
    "config": "bwmon.cli.config_cmd",
    "report": "bwmon.cli.report",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line, or with `only` (a name in COMMANDS) just that subcommand's: a
    command imports only its own module (`bwmon run` does not load the report's, the config
    editor's or the doctor's code, ~1 MiB)."""
    from bwmon.cli.doctor import exit_status_text

    parser = argparse.ArgumentParser(
        prog="bwmon",
        description="Per-application network bandwidth monitor (conntrack, pipes, alerts).",
        epilog=exit_status_text(EXIT_STATUS) + " bwmon doctor and bwmon config path have "
        "statuses of their own (their --help lists them).",
    )
    parser.add_argument("--version", action="version", version=f"bwmon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from bwmon.core.runtime.startup import prepare

    prepare()  # before the subcommands import asyncio: ssl loaded on use, C heap settings
    try:
        words = sys.argv[1:] if argv is None else list(argv)
        parser = build_parser(words[0] if words and words[0] in COMMANDS else None)
        args = parser.parse_args(argv)
        status = int(args.func(args) or 0)
        finish_output()
        return status
    except UserError as exc:
        print(f"bwmon: {clean_lines(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except SystemExit:  # --help, --version, a usage error: what they printed is flushed here
        finish_output()
        raise
    except BrokenPipeError:  # the reader of stdout went away: a quiet end (closed_output)
        silence_stdout()
        return 0
