"""The built-in HTTP server: JSON API, `/metrics` and the chart page, in bwmon's own event loop.

Requests are tiny and answers cached per snapshot, so the server shares the tick loop cheaply.
Hostile clients are bounded: a deadline for each request head, a head-size limit, a deadline for
each write, and two caps on open connections: connections that have not yet made an authorized
request share `max_pending` places, the oldest dropped first when a new one arrives, and those
that have (every client without a token) share `max_connections`, so unauthenticated clients,
however many, cannot lock out the ones holding the token (Prometheus, the chart page).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from prometheus_client import exposition

from bwmon.core.config.settings import Settings
from bwmon.core.feed import SnapshotFeed
from bwmon.core.store.location import store_path
from bwmon.http.api import ApiError, JsonApi, check_live_grouping, dumps
from bwmon.http.listen import HttpConfigError, parse_listen, require_token
from bwmon.http.metrics import BwmonCollector, MetricsPage
from bwmon.http.protocol import MAX_HEAD, HttpError, Request, read_request, response
from bwmon.http.store_history import store_history

JSON = "application/json"
HTML = "text/html; charset=utf-8"
# the classic text format every Prometheus version reads (what generate_latest writes)
METRICS = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", exposition.CONTENT_TYPE_LATEST)
PAGE_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)
CHALLENGE = (("WWW-Authenticate", 'Basic realm="bwmon", charset="UTF-8"'),
             ("WWW-Authenticate", 'Bearer realm="bwmon"'))

LINGER = 0.5  # seconds a refused connection is kept half-closed before it is dropped
Reply = tuple[int, bytes, str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one client may cost: the defaults suit a monitor scraped by a few clients."""

    max_connections: int = 64  # connections that made an authorized request
    max_pending: int = 64  # connections that have not (yet): the oldest is dropped for a new one
    head_timeout: float = 5.0  # seconds to send a whole request head (and idle keep-alive)
    write_timeout: float = 10.0  # seconds for a client to take one response
    max_requests: int = 100  # per keep-alive connection


class HttpServer:
    """Serves one feed; `port` is the bound port (useful with port 0), `close()` stops it."""

    def __init__(
        self,
        feed: SnapshotFeed,
        token: str | None = None,
        *,
        per_process_metrics: bool = False,
        stale_after: float = 10.0,
        limits: Limits = Limits(),
        store: Path | None = None,
    ) -> None:
        self.feed = feed
        self.store = store  # the history store behind /api/v1/history?range=… (None: off)
        self.token = token or None
        self.limits = limits
        self.api = JsonApi(feed)
        self.collector = BwmonCollector(
            feed, per_process=per_process_metrics, stale_after=stale_after
        )
        self.metrics = MetricsPage(self.collector)
        self.page = resources.files("bwmon.http").joinpath("page.html").read_bytes()
        self.address = ""
        self.port = 0
        self.rejected = 0  # connections refused because the cap was reached
        self.evicted = 0  # unauthenticated connections dropped to make room for a new one
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        # tasks of connections without an authorized request yet, oldest first, and writers
        self._pending: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._served: set[asyncio.Task[None]] = set()

    async def start(self, addr: str, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, addr, port, limit=MAX_HEAD)
        self.address = addr
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}/"

    async def close(self) -> None:
        """Stop listening, drop open connections, unsubscribe from the feed."""
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.collector.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._pending) >= self.limits.max_pending:  # cut the oldest stranger, not us
            oldest, its_writer = next(iter(self._pending.items()))
            del self._pending[oldest]
            self.evicted += 1
            its_writer.transport.abort()
            oldest.cancel()
        self._pending[task] = writer
        self._conns.add(task)
        try:
            await self._serve(reader, writer, task)
            writer.close()  # sends what is still buffered, then FIN
            async with asyncio.timeout(self.limits.write_timeout):
                await writer.wait_closed()
        except (OSError, TimeoutError, asyncio.CancelledError):  # the client went away
            pass
        except Exception as exc:  # a bug must not take the monitor down: log it, drop the client
            print(f"bwmon http: internal error: {exc!r}", file=sys.stderr)
        finally:
            self._conns.discard(task)
            self._pending.pop(task, None)
            self._served.discard(task)
            writer.transport.abort()  # no-op after a clean close

    def _admit(self, task: asyncio.Task[None], req: Request) -> bool:
        """After an authorized request, move the connection to the served share; False when
        that share is full (the client is told to come back)."""
        if task in self._served or task not in self._pending or not self.authorized(req):
            return True
        if len(self._served) >= self.limits.max_connections:
            return False
        del self._pending[task]
        self._served.add(task)
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     task: asyncio.Task[None]) -> None:
        for _ in range(self.limits.max_requests):
            try:
                req = await read_request(reader, self.limits.head_timeout)
            except TimeoutError:
                return
            except HttpError as err:
                body = dumps({"error": err.message})
                await self._send(writer, response(err.status, body, JSON, headers=err.headers))
                await self._linger(reader, writer)
                return
            if req is None:
                return
            if not self._admit(task, req):
                self.rejected += 1
                await self._send(writer, response(503, b"too many connections\n", "text/plain",
                                                  headers=(("Retry-After", "5"),)))
                await self._linger(reader, writer)
                return
            status, body, ctype, headers = await self.dispatch(req)
            keep = req.keep_alive and status < 500
            await self._send(writer, response(status, body, ctype, head_only=req.method == "HEAD",
                                              keep_alive=keep, headers=headers))
            if not keep:
                return

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Half-close and discard what the client still sends, briefly, so the error it was
        sent arrives instead of a connection reset."""
        with contextlib.suppress(TimeoutError, OSError):
            writer.write_eof()
            async with asyncio.timeout(LINGER):
                while await reader.read(65536):
                    pass

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        async with asyncio.timeout(self.limits.write_timeout):
            await writer.drain()

    def authorized(self, req: Request) -> bool:
        """With a token: `Authorization: Bearer TOKEN`, or Basic auth with TOKEN as password."""
        if self.token is None:
            return True
        scheme, _, cred = req.headers.get("authorization", "").partition(" ")
        cred = cred.strip()
        if scheme.lower() == "basic":
            try:
                cred = base64.b64decode(cred, validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return False
        elif scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(cred.encode(), self.token.encode())

    async def _history(self, r: Request) -> bytes:
        """The live rates; with range, since or until: the history store's buckets."""
        if any(r.param(k) is not None for k in ("range", "since", "until")):
            return await store_history(self.store, r.query.get("app", []), r.param("range"),
                                       r.param("since"), r.param("until"), r.param("top"),
                                       r.param("by"), r.param("container"), r.param("unit"))
        check_live_grouping(r.param("by"), r.param("container"), r.param("unit"))
        return await self.api.history(r.query.get("app", []), r.param("seconds"),
                                      r.param("top"))

    async def dispatch(self, req: Request) -> Reply:
        """Route one request to its answer: (status, body, content type, extra headers)."""
        if not self.authorized(req):
            body = dumps({"error": "a token is required: send 'Authorization: Bearer TOKEN'"})
            return 401, body, JSON, CHALLENGE
        routes: dict[str, Callable[[Request], Awaitable[bytes]]] = {
            "/api/v1/snapshot": lambda r: self.api.snapshot(),
            "/api/v1/history": self._history,
            "/api/v1/alerts": lambda r: self.api.alerts(
                r.param("limit"), r.param("source"), r.param("since")),
        }
        if req.path in ("/", "/index.html"):
            return 200, self.page, HTML, (("Content-Security-Policy", PAGE_CSP),)
        route = routes.get(req.path)
        if route is None and req.path != "/metrics":
            paths = ["/", "/metrics", *routes]
            return 404, dumps({"error": f"no such path {req.path!r}", "paths": paths}), JSON, ()
        try:
            if route is None:
                return 200, await self.metrics.render(), METRICS, ()
            return 200, await route(req), JSON, ()
        except ApiError as err:
            return err.status, err.body, JSON, ()
        except Exception as exc:  # a rendering bug: say so, keep serving the rest
            print(f"bwmon http: cannot render {req.path}: {exc!r}", file=sys.stderr)
            return 500, dumps({"error": f"cannot render {req.path}: {exc}"}), JSON, ()


async def start_http(
    feed: SnapshotFeed,
    listen: str,
    token: str | None,
    *,
    per_process_metrics: bool = False,
    stale_after: float = 10.0,
    limits: Limits = Limits(),
    store: Path | None = None,
) -> HttpServer:
    """Parse `listen` ("PORT", "ADDR:PORT", "[V6]:PORT"), check the token rule, start serving.

    Raises HttpConfigError (a ValueError and a UserError) for a bad address, a missing token
    off loopback, or a port that cannot be bound.
    """
    addr, port = parse_listen(listen)
    require_token(addr, token)
    server = HttpServer(feed, token, per_process_metrics=per_process_metrics,
                        stale_after=stale_after, limits=limits, store=store)
    try:
        await server.start(addr, port)
    except OSError as exc:
        server.collector.close()
        raise HttpConfigError(
            f"--http {listen}: cannot listen on {addr} port {port} ({exc.strerror or exc}); "
            "choose another port or stop what uses it"
        ) from None
    return server


async def start_http_from_settings(feed: SnapshotFeed, settings: Settings) -> HttpServer | None:
    """Start the server `settings.http` describes; None when `http.listen` is unset."""
    http = settings.http
    if not http.listen:
        return None
    stale = max(10.0, 3 * settings.general.interval)
    store = store_path(settings.history.path) if settings.history.enabled else None
    return await start_http(feed, http.listen, http.token,
                            per_process_metrics=http.per_process_metrics, stale_after=stale,
                            store=store)
