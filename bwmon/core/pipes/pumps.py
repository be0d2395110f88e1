"""The two ways a pipe moves one direction of one connection, counting payload bytes exactly.

`splice_pump` runs in a thread of its own: `os.splice` moves data socket → pipe → socket inside
the kernel (zero copy), with a 1 MiB pipe buffer. `stream_pump` is the portable asyncio-streams
path, used where splice is missing or when forced (`--no-splice`, `BWMON_PIPE_NO_SPLICE=1`).
Both propagate a half-close: end of input becomes `shutdown(SHUT_WR)` on the other side.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import threading
from collections.abc import Callable

from bwmon.core.pipes.shaping import TokenBucket

PIPE_SIZE = 1 << 20  # bytes in flight per direction (splice pipe buffer)
STREAM_CHUNK = 256 * 1024  # largest read of the streams path
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
SPLICE_F_MOVE = getattr(os, "SPLICE_F_MOVE", 1)

Count = Callable[[int], None]


def splice_available() -> bool:
    """True when this system can splice (Linux, Python ≥ 3.10) and nobody asked not to."""
    if os.environ.get("BWMON_PIPE_NO_SPLICE", "") not in ("", "0"):
        return False
    return hasattr(os, "splice")


def make_pipe() -> tuple[int, int, int]:
    """A kernel pipe sized to PIPE_SIZE when allowed (non-root users may be capped)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    # over fs.pipe-max-size or the user's pipe quota: keep the default size
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_SIZE)
    size = fcntl.fcntl(w, F_GETPIPE_SZ)
    return r, w, size


def splice_pump(
    src: socket.socket,
    dst: socket.socket,
    count: Count,
    bucket: TokenBucket | None,
    stop: threading.Event,
    pipe: tuple[int, int, int],
) -> str | None:
    """Move src → dst until end of input (blocking sockets; call from a thread) through
    `pipe` (from `make_pipe`, made by the caller so that running out of file descriptors is
    found before any thread starts); the pipe is closed on return.

    Returns None on a clean end (dst's write side is then shut down), or the error's text.
    `count(n)` is called with the bytes delivered to dst, as they are delivered.
    """
    r, w, size = pipe
    sfd, dfd = src.fileno(), dst.fileno()
    try:
        while True:
            want = size
            if bucket is not None:
                want = bucket.acquire(size, stop)
                if not want:
                    return None  # stopping
            n = os.splice(sfd, w, want, flags=SPLICE_F_MOVE)
            if bucket is not None:
                bucket.refund(want - n)
            if n == 0:
                break
            while n:
                m = os.splice(r, dfd, n, flags=SPLICE_F_MOVE)
                n -= m
                count(m)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        os.close(r)
        os.close(w)


async def stream_pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    count: Count,
    bucket: TokenBucket | None,
) -> str | None:
    """Move reader → writer until end of input; the asyncio twin of `splice_pump`."""
    try:
        while True:
            want = STREAM_CHUNK
            if bucket is not None:
                want = await bucket.acquire_async(STREAM_CHUNK)
            data = await reader.read(want)
            if bucket is not None:
                bucket.refund(want - len(data))
            if not data:
                break
            writer.write(data)
            await writer.drain()
            count(len(data))
        if writer.can_write_eof():
            writer.write_eof()
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
