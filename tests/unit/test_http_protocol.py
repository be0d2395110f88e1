"""The strict request reader: what it accepts and the status it answers the rest with."""

from __future__ import annotations

import asyncio

import pytest

from bwmon.http.protocol import HttpError, parse_head, read_request, response


def head(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode() + b"\r\n"


def test_a_get_with_a_query_is_parsed() -> None:
    req = parse_head(head("GET /api/v1/history?app=Fire%20fox&app=curl&seconds=60 HTTP/1.1\n"
                          "Host: x\nX-A: 1\nx-a: 2\n"))
    assert (req.method, req.path, req.version) == ("GET", "/api/v1/history", "HTTP/1.1")
    assert req.query["app"] == ["Fire fox", "curl"] and req.param("seconds") == "60"
    assert req.headers["x-a"] == "1, 2"
    assert req.keep_alive


def test_connection_close_and_http10_do_not_keep_alive() -> None:
    assert not parse_head(head("GET / HTTP/1.1\nConnection: close\n")).keep_alive
    assert not parse_head(head("GET / HTTP/1.0\n")).keep_alive
    assert parse_head(head("GET / HTTP/1.0\nConnection: keep-alive\n")).keep_alive


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("POST /metrics HTTP/1.1\nContent-Length: 0\n", 405),
        ("GET /metrics HTTP/1.1\nContent-Length: 5\n", 400),
        ("GET /metrics HTTP/1.1\nTransfer-Encoding: chunked\n", 400),
        ("GET /metrics HTTP/2.0\n", 505),
        ("GET http://evil/ HTTP/1.1\n", 400),
        ("GET / HTTP/1.1\nX-A: 1\n  folded\n", 400),
        ("GET  / HTTP/1.1\n", 400),
        ("GET / HTTP/1.1\n" + "X: y\n" * 65, 431),
    ],
)
def test_refused_requests_get_a_clear_status(text: str, status: int) -> None:
    with pytest.raises(HttpError) as info:
        parse_head(head(text))
    assert info.value.status == status


def test_post_is_told_what_is_allowed() -> None:
    with pytest.raises(HttpError) as info:
        parse_head(head("DELETE / HTTP/1.1\n"))
    assert ("Allow", "GET, HEAD") in info.value.headers


async def test_a_head_larger_than_the_limit_is_refused() -> None:
    reader = asyncio.StreamReader(limit=8192)
    reader.feed_data(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    with pytest.raises(HttpError) as info:
        await read_request(reader, timeout=1)
    assert info.value.status == 431


async def test_a_trickling_head_hits_the_deadline() -> None:
    reader = asyncio.StreamReader(limit=8192)
    reader.feed_data(b"GET / HTTP/1.1\r\nHost")  # and never the rest
    with pytest.raises(TimeoutError):
        await read_request(reader, timeout=0.2)


async def test_eof_before_a_request_is_a_clean_close() -> None:
    reader = asyncio.StreamReader(limit=8192)
    reader.feed_eof()
    assert await read_request(reader, timeout=1) is None


def test_head_responses_carry_the_length_but_no_body() -> None:
    full = response(200, b"hello", "text/plain")
    bare = response(200, b"hello", "text/plain", head_only=True)
    assert full.endswith(b"\r\n\r\nhello") and bare.endswith(b"\r\n\r\n")
    assert b"Content-Length: 5" in bare and b"Connection: close" in bare
