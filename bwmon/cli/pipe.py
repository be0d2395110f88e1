"""`bwmon pipe PORT HOST [REMOTEPORT]`: one metering TCP relay, run in this process.

Prints in/out traffic and bandwidth: one refreshed line on a terminal, a line per interval
when piped, JSON lines (the pipe child's protocol plus rates) with `--json`. Ctrl-C prints the
totals and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import sys
import time
from typing import Any, TextIO

from bwmon.core.errors import UserError
from bwmon.core.pipes.child import limit_arg, make_relay
from bwmon.core.pipes.relay import Relay, RelayError

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human(n: float) -> str:
    """Bytes with a binary prefix: 1536 → '1.5 KiB'."""
    for unit in UNITS:
        if abs(n) < 1024 or unit == UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _port(text: str, lowest: int = 0) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not lowest <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside {lowest}-65535")
    return value


def _remote_port(text: str) -> int:
    """A port to connect to: 0 means "any" only for listening."""
    return _port(text, lowest=1)


def _positive(kind: type[int] | type[float]) -> Any:
    def check(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"expected a finite number above 0, found {text}")
        return value

    return check


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "pipe",
        help="relay a TCP port to HOST[:REMOTEPORT] and meter the traffic",
        description="Listen on PORT, forward each connection to HOST:REMOTEPORT (default PORT) "
        "and show the payload bytes relayed: in = client→target, out = target→client.",
    )
    p.add_argument("port", type=_port, metavar="PORT", help="local port to listen on (0 = any)")
    p.add_argument("target_host", metavar="HOST", help="host to forward to (name, IPv4 or IPv6)")
    p.add_argument("target_port", type=_remote_port, nargs="?", metavar="REMOTEPORT",
                   help="port at HOST (default: PORT)")  # fmt: skip
    p.add_argument("--listen", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1; :: for all)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON lines for scripts")
    p.add_argument("--interval", type=_positive(float), default=1.0, metavar="S",
                   help="seconds between two lines (default 1)")  # fmt: skip
    p.add_argument("--shape-in", type=limit_arg, metavar="KBS",
                   help="limit client→target to KBS kB/s (1 kB = 1024 B)")  # fmt: skip
    p.add_argument("--shape-out", type=limit_arg, metavar="KBS",
                   help="limit target→client to KBS kB/s")  # fmt: skip
    p.add_argument("--max-connections", type=_positive(int), default=256, metavar="N",
                   help="concurrent client connections (default 256; more refused)")  # fmt: skip
    p.add_argument("--no-splice", action="store_true",
                   help="use the portable asyncio path instead of zero-copy splice")  # fmt: skip
    p.set_defaults(func=run)


class _Printer:
    """Turns successive reports into rates and prints them in the chosen style."""

    def __init__(self, out: TextIO, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.tty = out.isatty() and not as_json
        self.last: tuple[float, int, int] | None = None

    def show(self, report: dict[str, Any], now: float, final: bool = False) -> None:
        rate_in = rate_out = 0.0
        if self.last is not None and now > self.last[0]:
            dt = now - self.last[0]
            rate_in = (report["in"] - self.last[1]) / dt
            rate_out = (report["out"] - self.last[2]) / dt
        self.last = (now, report["in"], report["out"])
        for message in report["events"]:
            self._line_break()
            print(f"bwmon pipe: {message}", file=sys.stderr, flush=True)
        if self.as_json:
            line = dict(report, rate_in=rate_in, rate_out=rate_out, time=time.time(), final=final)
            self.out.write(json.dumps(line) + "\n")
        elif final:
            self._line_break()
            self.out.write(
                f"total: in {human(report['in'])}, out {human(report['out'])}, "
                f"{report['accepted']} connection{'' if report['accepted'] == 1 else 's'} served\n"
            )
        else:
            text = (
                f"in {human(report['in'])} ({human(rate_in)}/s)  "
                f"out {human(report['out'])} ({human(rate_out)}/s)  "
                f"connections {report['connections']}"
            )
            self.out.write(f"\r{text}\x1b[K" if self.tty else text + "\n")
        self.out.flush()

    def _line_break(self) -> None:
        if self.tty and self.last is not None:
            self.out.write("\n")


async def _serve(args: argparse.Namespace, relay: Relay) -> int:
    try:
        await relay.start()
    except RelayError as exc:
        raise UserError(str(exc)) from None
    print(f"bwmon pipe: {relay.address} → {relay.report()['target']}", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    printer = _Printer(sys.stdout, args.json)
    try:
        while not stop.is_set():
            printer.show(relay.report(), time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.interval)
    finally:
        await relay.close()
    printer.show(relay.report(), time.monotonic(), final=True)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.target_port is None:
        args.target_port = args.port
        if args.port == 0:
            raise UserError("port 0 needs an explicit REMOTEPORT: bwmon pipe 0 HOST REMOTEPORT")
    relay = make_relay(args)
    try:
        return asyncio.run(_serve(args, relay))
    except BrokenPipeError:  # stdout closed (e.g. `| head`): nothing left to tell
        return 0
