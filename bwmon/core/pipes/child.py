"""The pipe child: `python -m bwmon.core.pipes.child --port P --target-host H [...]` runs one relay.

The monitor starts one such process per configured pipe, so the data path never competes with
the UI's event loop and a crash takes down only that pipe.

Protocol. stdout carries one JSON object per line, every `--interval` seconds and once at exit:

    {"listen": "127.0.0.1:8080", "target": "example.org:80",
     "in": 1200, "out": 53000,          # cumulative payload bytes since this child started:
                                        #   in = client → target, out = target → client
     "connections": 1,                  # client connections open now
     "accepted": 3, "rejected": 0, "failed": 1,   # cumulative: accepted, over the limit,
                                                  #   target unreachable
     "clients": [{"peer": "127.0.0.1:50312", "in": 1200, "out": 53000, "open": true}],
                                        # open connections plus those closed since last line
     "events": ["client 127.0.0.1:50310 closed: cannot reach target ...: Connection refused"],
                                        # things worth logging since the previous line
     "error": null}                     # why the child cannot run (then it exits, status 2)

stdin (with `--control`) takes JSON lines that change settings at run time:
`{"shape_in": 100, "shape_out": null, "max_connections": 50}` (kB/s, 1 kB = 1024 B; null =
unlimited; absent keys unchanged). End of stdin stops the child: it never outlives its monitor,
and with `--parent-death` the kernel kills it too when the monitor dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from bwmon.core.config.limits import LIMIT_EXPECTED, check_limit
from bwmon.core.pipes.relay import Relay, RelayError
from bwmon.core.pipes.shaping import kbps_to_rate

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None) -> None:
    """Ask the kernel to SIGKILL us when our parent dies; exit now if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def limit_arg(text: str) -> float:
    """A shaping limit flag: the same check and message as bwmon.toml's shape_in/shape_out."""
    try:
        return check_limit(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {LIMIT_EXPECTED}, found {text}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bwmon.core.pipes.child", description=__doc__.split("\n")[0]
    )
    p.add_argument("--listen", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, required=True, help="local port (0 = any free port)")
    p.add_argument("--target-host", required=True)
    p.add_argument("--target-port", type=int, help="port at the target (default: --port)")
    p.add_argument("--shape-in", type=limit_arg, help="limit client→target, kB/s")
    p.add_argument("--shape-out", type=limit_arg, help="limit target→client, kB/s")
    p.add_argument("--max-connections", type=int, default=256)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between reports")
    p.add_argument("--no-splice", action="store_true", help="use the asyncio streams path")
    p.add_argument("--control", action="store_true", help="read settings from stdin; exit at EOF")
    p.add_argument("--parent-death", type=int, metavar="PID", help="die when PID (parent) dies")
    return p


def make_relay(args: argparse.Namespace) -> Relay:
    """A Relay from parsed arguments (shared by the child and `bwmon pipe`)."""
    return Relay(
        args.listen,
        args.port,
        args.target_host,
        args.target_port if args.target_port is not None else args.port,
        shape_in=kbps_to_rate(args.shape_in),
        shape_out=kbps_to_rate(args.shape_out),
        max_connections=args.max_connections,
        use_splice=False if args.no_splice else None,
    )


def apply_control(relay: Relay, line: bytes) -> None:
    """Apply one stdin control line; a malformed one becomes an event, not a crash."""
    try:
        change: dict[str, Any] = json.loads(line)
        if not isinstance(change, dict):
            raise ValueError("not an object")
        shape_in = change.get("shape_in", relay.bucket_in.rate and relay.bucket_in.rate / 1024)
        shape_out = change.get("shape_out", relay.bucket_out.rate and relay.bucket_out.rate / 1024)
        relay.set_shaping(kbps_to_rate(shape_in), kbps_to_rate(shape_out))
        if "max_connections" in change:
            relay.max_connections = max(1, int(change["max_connections"]))
    except (ValueError, TypeError) as exc:
        relay.event(f"ignored control line {line[:80]!r}: {exc}")


def _emit(report: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(report, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _read_control(relay: Relay, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        apply_control(relay, line)
    stop.set()


async def serve(args: argparse.Namespace) -> int:
    relay = make_relay(args)
    try:
        await relay.start()
    except RelayError as exc:
        _emit(
            {
                "listen": None,
                "in": 0,
                "out": 0,
                "connections": 0,
                "clients": [],
                "events": [],
                "error": str(exc),
            }
        )
        return 2
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    control = asyncio.create_task(_read_control(relay, stop)) if args.control else None
    try:
        while not stop.is_set():
            _emit(relay.report())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.interval)
    except BrokenPipeError:  # our reader is gone: stop quietly
        pass
    finally:
        if control is not None:
            control.cancel()
        await relay.close()
    with contextlib.suppress(BrokenPipeError):
        _emit(relay.report())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.parent_death is not None:
        die_with_parent(args.parent_death)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
