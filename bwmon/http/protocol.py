"""A small, strict HTTP/1.1 request reader and response writer for the built-in server.

Only what bwmon serves: GET and HEAD, no request bodies, bounded head size and header count,
CRLF line ends. Anything else is answered with a 4xx/5xx status and the connection closed.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, unquote, urlsplit

MAX_HEAD = 8192
MAX_HEADERS = 64
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSIONS = ("HTTP/1.0", "HTTP/1.1")


class HttpError(Exception):
    """A request the server refuses: answered with `status`, then the connection closes."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    version: str
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.1":
            return "close" not in conn
        return "keep-alive" in conn

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


async def read_request(reader: asyncio.StreamReader, timeout: float) -> Request | None:
    """Read one request head within `timeout` seconds; None when the peer closed cleanly first.

    The deadline covers the whole head, so a client trickling bytes (slowloris) is cut off.
    The reader's limit (set by the server) bounds the head size.
    """
    try:
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError(400, "incomplete request") from None
    except asyncio.LimitOverrunError:
        raise HttpError(431, f"request head larger than {MAX_HEAD} bytes") from None
    return parse_head(head)


def parse_head(head: bytes) -> Request:
    """Parse a request line and headers (bytes up to and including the blank line)."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "non-ASCII bytes in request head") from None
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in _VERSIONS:
        raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
    if not _TOKEN.match(method):
        raise HttpError(400, "malformed method")
    if not target.startswith("/") and target != "*":  # "*": OPTIONS *, answered 405 below
        raise HttpError(400, "request target must be a path")
    headers: dict[str, str] = {}
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, f"more than {MAX_HEADERS} header fields")
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name):
            raise HttpError(400, "malformed header field")
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if "transfer-encoding" in headers or headers.get("content-length", "0").strip() != "0":
        raise HttpError(400, "request bodies are not accepted")
    if method not in ("GET", "HEAD"):
        raise HttpError(405, "only GET and HEAD", (("Allow", "GET, HEAD"),))
    if target == "*":
        raise HttpError(400, "request target must be a path")
    parts_url = urlsplit(target)
    return Request(
        method=method,
        path=unquote(parts_url.path),
        query=parse_qs(parts_url.query, keep_blank_values=True),
        version=version,
        headers=headers,
    )


def response(
    status: int,
    body: bytes,
    content_type: str,
    *,
    head_only: bool = False,
    keep_alive: bool = False,
    headers: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """The bytes of a complete HTTP/1.1 response (the body left out for HEAD)."""
    reason = HTTPStatus(status).phrase
    lines = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{k}: {v}" for k, v in headers),
    ]
    out = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return out if head_only else out + body
