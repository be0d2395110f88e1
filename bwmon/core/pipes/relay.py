"""A metering TCP relay: listen, connect each client to the target, count payload bytes.

"in" is what clients sent to the target, "out" what the target sent back to clients. Each
connection is moved by two pumps (see pipes.pumps): a thread per direction on the splice path,
a coroutine per direction on the streams path. The asyncio side only accepts, connects and keeps
the books; `report()` gives cumulative counters as a JSON-able dict (see bwmon.core.pipes.child).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import os
import resource
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bwmon.core.pipes.pumps import make_pipe, splice_available, splice_pump, stream_pump
from bwmon.core.pipes.shaping import TokenBucket

CONNECT_TIMEOUT = 10.0
MAX_EVENTS = 50  # events kept between two reports (the rest are counted)
MAX_CLOSED_LISTED = 100  # closed connections listed in one report
# File descriptors one connection holds: two sockets, plus two kernel pipes on the splice path.
FDS_SPLICE = 6
FDS_STREAMS = 2
FD_RESERVE = 48  # kept for the listener, stdio, the event loop, resolvers and the control pipe


def fd_capacity(per_connection: int) -> tuple[int, int]:
    """(connections the file descriptor limit allows, that limit). The soft limit is raised to
    the hard one first, as far as the hard one allows (`ulimit -n` sets both)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        want = hard if hard != resource.RLIM_INFINITY else 1 << 20
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
    if soft == resource.RLIM_INFINITY:
        return 1 << 30, soft
    return max(1, (soft - FD_RESERVE) // per_connection), soft


class RelayError(Exception):
    """The relay cannot run as asked (port in use, unknown address): a user-fixable problem."""


def format_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(slots=True, eq=False)
class _Conn:
    """One client connection and its cumulative payload counters."""

    peer: str
    client: socket.socket
    target: socket.socket | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    open: bool = True
    pumps_left: int = 2
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_in(self, n: int) -> None:
        self.bytes_in += n

    def add_out(self, n: int) -> None:
        self.bytes_out += n

    def abort(self) -> None:
        """Wake both pumps: shut both sockets down both ways."""
        for sock in (self.client, self.target):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def client_dict(self) -> dict[str, Any]:
        return {"peer": self.peer, "in": self.bytes_in, "out": self.bytes_out, "open": self.open}


class Relay:
    """One pipe: listen on `listen:port`, forward to `target_host:target_port`.

    Shaping rates are bytes/s (None = unlimited). `use_splice=None` picks splice when available.
    """

    def __init__(
        self,
        listen: str,
        port: int,
        target_host: str,
        target_port: int,
        *,
        shape_in: float | None = None,
        shape_out: float | None = None,
        max_connections: int = 256,
        use_splice: bool | None = None,
    ) -> None:
        self.listen = listen
        self.port = port
        self.target_host = target_host
        self.target_port = target_port
        self.use_splice = splice_available() if use_splice is None else use_splice
        now = time.monotonic()
        self.bucket_in = TokenBucket(shape_in, now)
        self.bucket_out = TokenBucket(shape_out, now)
        self.address = ""  # "addr:port" actually bound, set by start()
        self._sock: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: set[_Conn] = set()
        self._closed_recent: list[_Conn] = []
        self._closed_in = 0
        self._closed_out = 0
        self.accepted = 0
        self.rejected = 0
        self.failed = 0
        self._events: list[str] = []
        self._events_dropped = 0
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._max_connections = 0
        self.fd_limit = 0
        self.max_connections = max_connections

    @property
    def max_connections(self) -> int:
        """Concurrent connections served: as asked, or fewer when the file descriptor limit
        (`ulimit -n`) allows fewer — then the first refusal says so."""
        return self._max_connections

    @max_connections.setter
    def max_connections(self, wanted: int) -> None:
        cap, self.fd_limit = fd_capacity(FDS_SPLICE if self.use_splice else FDS_STREAMS)
        self.asked_connections = wanted
        self._max_connections = max(1, min(wanted, cap))
        self._told_limit = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting. Raises RelayError with a message naming the fix."""
        self._loop = asyncio.get_running_loop()
        await self._resolve_target()
        self._sock = await self._bind()
        host, port = self._sock.getsockname()[:2]
        self.address = format_addr(host, port)
        self._accept_task = asyncio.create_task(self._accept_loop())

    async def _resolve_target(self) -> list[tuple[Any, ...]]:
        assert self._loop is not None
        try:
            infos = await self._loop.getaddrinfo(
                self.target_host, self.target_port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise RelayError(
                f"cannot resolve target host {self.target_host!r}: {exc.strerror}; "
                "check the name or give an IP address"
            ) from None
        return list(infos)

    async def _bind(self) -> socket.socket:
        assert self._loop is not None
        host = self.listen
        try:
            ipaddress.ip_address(host)
        except ValueError:
            try:
                infos = await self._loop.getaddrinfo(
                    host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
                )
            except socket.gaierror as exc:
                raise RelayError(
                    f"cannot resolve listen address {host!r}: {exc.strerror}"
                ) from None
            host = str(infos[0][4][0])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server(
                (host, self.port), family=family, backlog=1024, dualstack_ipv6=(host == "::")
            )
        except OSError as exc:
            where = format_addr(host, self.port)
            hint = {
                98: "another program uses it; pick another port or stop that program",
                13: "ports below 1024 need root",
                99: "that address is not on this machine",
            }.get(exc.errno or 0, "check the listen address and port")
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise RelayError(f"cannot listen on {where}: {reason} ({hint})") from None
        sock.setblocking(False)
        return sock

    async def close(self) -> None:
        """Stop accepting, end every connection, wait (briefly) for the pumps to finish."""
        self._stop.set()
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
        if self._sock is not None:
            self._sock.close()
        for conn in list(self._conns):
            conn.abort()
        deadline = time.monotonic() + 2.0
        while self._conns and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for task in list(self._tasks):
            task.cancel()

    # -- run-time settings ----------------------------------------------------------------

    def set_shaping(self, shape_in: float | None, shape_out: float | None) -> None:
        now = time.monotonic()
        self.bucket_in.set_rate(shape_in, now)
        self.bucket_out.set_rate(shape_out, now)

    def event(self, message: str) -> None:
        if len(self._events) < MAX_EVENTS:
            self._events.append(message)
        else:
            self._events_dropped += 1

    # -- connections ----------------------------------------------------------------------

    async def _accept_loop(self) -> None:
        assert self._loop is not None and self._sock is not None
        while True:
            try:
                client, addr = await self._loop.sock_accept(self._sock)
            except OSError as exc:  # EMFILE and friends: report, breathe, go on
                self.event(f"accept failed: {exc.strerror}")
                await asyncio.sleep(0.1)
                continue
            peer = format_addr(addr[0], addr[1])
            if len(self._conns) >= self.max_connections:
                self._refuse(client, peer, f"{self.max_connections} connections already open")
                continue
            self.accepted += 1
            conn = _Conn(peer, client)
            self._conns.add(conn)
            task = asyncio.create_task(self._serve(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _refuse(self, client: socket.socket, peer: str, why: str) -> None:
        self.rejected += 1
        if self.max_connections < self.asked_connections and not self._told_limit:
            self._told_limit = True
            why += (f" (max_connections {self.asked_connections} lowered to "
                    f"{self.max_connections}: this process may open {self.fd_limit} files; "
                    "raise the limit, e.g. ulimit -n 65536 or LimitNOFILE= in the service)")
        self.event(f"client {peer} refused: {why}")
        client.close()

    def _out_of_files(self, conn: _Conn, exc: OSError) -> None:
        """No file descriptor (or thread) left for a connection: refuse it, hold nothing."""
        self.rejected += 1
        self.event(f"client {conn.peer} refused: {exc.strerror or exc} (this process may open "
                   f"{self.fd_limit} files; raise the limit, e.g. ulimit -n 65536, or lower "
                   "max_connections)")
        for sock in (conn.client, conn.target):
            if sock is not None:
                sock.close()
        conn.errors.clear()
        self._finished(conn)

    async def _connect_target(self) -> socket.socket:
        assert self._loop is not None
        infos = await self._resolve_target()
        last: Exception | None = None
        for family, type_, proto, _, addr in infos:
            sock = socket.socket(family, type_, proto)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(self._loop.sock_connect(sock, addr), CONNECT_TIMEOUT)
                return sock
            except (OSError, TimeoutError) as exc:
                sock.close()
                last = exc
        if isinstance(last, OSError) and last.errno:
            raise OSError(last.errno, os.strerror(last.errno))
        raise OSError(0, f"no answer within {CONNECT_TIMEOUT:g} s")

    async def _serve(self, conn: _Conn) -> None:
        target = format_addr(self.target_host, self.target_port)
        try:
            conn.target = await self._connect_target()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self._out_of_files(conn, exc)
                return
            self.failed += 1
            self.event(f"client {conn.peer} closed: cannot reach target {target}: {exc.strerror}")
            conn.client.close()
            self._finished(conn)
            return
        except RelayError as exc:
            self.failed += 1
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            self.event(f"client {conn.peer} closed: cannot reach target {target}: {reason}")
            conn.client.close()
            self._finished(conn)
            return
        for sock in (conn.client, conn.target):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.use_splice:
            self._start_splice(conn)
        else:
            await self._run_streams(conn)

    def _start_splice(self, conn: _Conn) -> None:
        """Both kernel pipes first, then both threads: a connection that cannot have them all
        is refused whole, holding nothing (never a half-started connection left open)."""
        assert conn.target is not None
        pipes: list[tuple[int, int, int]] = []
        try:
            pipes = [make_pipe(), make_pipe()]
        except OSError as exc:
            for r, w, _ in pipes:
                os.close(r)
                os.close(w)
            self._out_of_files(conn, exc)
            return
        conn.client.setblocking(True)
        conn.target.setblocking(True)
        jobs = (
            (conn.client, conn.target, conn.add_in, self.bucket_in, pipes[0]),
            (conn.target, conn.client, conn.add_out, self.bucket_out, pipes[1]),
        )
        for n, (src, dst, count, bucket, pipe) in enumerate(jobs):
            try:
                threading.Thread(
                    target=self._splice_thread,
                    args=(conn, src, dst, count, bucket, pipe),
                    name=f"pipe {conn.peer}",
                    daemon=True,
                ).start()
            except RuntimeError as exc:  # no thread left: end what started, refuse the rest
                for r, w, _ in pipes[n:]:
                    os.close(r)
                    os.close(w)
                with conn.lock:
                    conn.pumps_left -= 2 - n
                    last = conn.pumps_left == 0
                conn.errors.append(str(exc))
                conn.abort()
                if last:
                    self._out_of_files(conn, OSError(0, f"cannot start a thread: {exc}"))
                return

    def _splice_thread(
        self,
        conn: _Conn,
        src: socket.socket,
        dst: socket.socket,
        count: Callable[[int], None],
        bucket: TokenBucket,
        pipe: tuple[int, int, int],
    ) -> None:
        error = splice_pump(src, dst, count, bucket, self._stop, pipe)
        with conn.lock:
            if error:
                conn.errors.append(error)
                conn.abort()
            conn.pumps_left -= 1
            last = conn.pumps_left == 0
        if last:
            conn.client.close()
            if conn.target is not None:
                conn.target.close()
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is counting
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._finished, conn)

    async def _run_streams(self, conn: _Conn) -> None:
        assert conn.target is not None
        c_reader, c_writer = await asyncio.open_connection(sock=conn.client, limit=1 << 20)
        t_reader, t_writer = await asyncio.open_connection(sock=conn.target, limit=1 << 20)
        for w in (c_writer, t_writer):
            w.transport.set_write_buffer_limits(high=1 << 20)
        try:
            results = await asyncio.gather(
                stream_pump(c_reader, t_writer, conn.add_in, self.bucket_in),
                stream_pump(t_reader, c_writer, conn.add_out, self.bucket_out),
            )
            conn.errors.extend(r for r in results if r)
        finally:
            for w in (c_writer, t_writer):
                w.close()
            self._finished(conn)

    def _finished(self, conn: _Conn) -> None:
        if not conn.open:
            return
        conn.open = False
        self._conns.discard(conn)
        self._closed_in += conn.bytes_in
        self._closed_out += conn.bytes_out
        if len(self._closed_recent) < MAX_CLOSED_LISTED:
            self._closed_recent.append(conn)
        if conn.errors and conn.target is not None:
            self.event(f"client {conn.peer} closed: {conn.errors[0]}")

    # -- reporting ------------------------------------------------------------------------

    def report(self, error: str | None = None) -> dict[str, Any]:
        """Cumulative counters, the open connections and those closed since the last report."""
        live = list(self._conns)
        events = self._events
        if self._events_dropped:
            events.append(f"... and {self._events_dropped} more events")
        self._events, self._events_dropped = [], 0
        closed, self._closed_recent = self._closed_recent, []
        return {
            "listen": self.address,
            "target": format_addr(self.target_host, self.target_port),
            "in": self._closed_in + sum(c.bytes_in for c in live),
            "out": self._closed_out + sum(c.bytes_out for c in live),
            "connections": len(live),
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "clients": [c.client_dict() for c in live + closed],
            "events": events,
            "error": error,
        }
