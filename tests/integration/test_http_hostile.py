"""Slow, oversized and too many clients: cut off, refused, and the tick loop keeps its pace."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

from bwmon.core.feed import ManualFeed
from bwmon.core.model import Snapshot
from bwmon.http import Limits, start_http
from tests.helpers import factories
from tests.helpers.factories import app_row
from tests.integration.test_http_synthetic import feed_with_ticks, get, snapshot


async def test_a_slowloris_client_is_disconnected_at_the_head_deadline() -> None:
    server = await start_http(feed_with_ticks(1), "0", None, limits=Limits(head_timeout=0.5))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = time.monotonic()
        for chunk in (b"GET /metr", b"ics HTTP/1.1\r\n", b"X-Slow: 1\r\n"):
            writer.write(chunk)
            await asyncio.sleep(0.2)
        leftover = await asyncio.wait_for(reader.read(), 5)  # EOF: the server hung up
        assert leftover == b""
        assert time.monotonic() - started < 3
        writer.close()
    finally:
        await server.close()


async def test_huge_headers_are_refused_with_431() -> None:
    server = await start_http(feed_with_ticks(1), "0", None)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /metrics HTTP/1.1\r\n" + b"X-Junk: " + b"j" * 100_000 + b"\r\n\r\n")
        with_status = await asyncio.wait_for(reader.read(), 5)
        assert with_status.startswith(b"HTTP/1.1 431 ")
        writer.close()
    finally:
        await server.close()


async def test_connections_beyond_the_cap_are_refused_then_served_again() -> None:
    """Served connections (keep-alive, a request answered) fill `max_connections`: the next
    client is told to come back; once they leave, it is served."""
    server = await start_http(feed_with_ticks(1), "0", None, limits=Limits(max_connections=8))
    held = []
    try:
        for _ in range(8):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /api/v1/snapshot HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")  # answered, kept alive
            held.append(writer)
        refused = await get(server.port, "/api/v1/snapshot")
        assert refused.status == 503 and refused.headers["retry-after"] == "5"
        for writer in held:
            writer.close()
        await asyncio.sleep(0.2)
        assert (await get(server.port, "/api/v1/snapshot")).status == 200
    finally:
        await server.close()


async def test_strangers_cannot_lock_out_token_holders() -> None:
    """70 connections that never authenticate (trickling a head, reconnecting when dropped)
    against a 64-connection cap: 55 requests with the token are all served (issue 25, item 8;
    50 of them got 503 when strangers and token holders shared one cap)."""
    server = await start_http(feed_with_ticks(1), "0", "s3cret", limits=Limits(head_timeout=5))
    stop = asyncio.Event()

    async def stranger() -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(b"GET /metrics HTTP/1.1\r\n")
                while not stop.is_set() and not reader.at_eof():
                    writer.write(b"X")
                    await asyncio.sleep(0.05)
                writer.close()
            except OSError:
                await asyncio.sleep(0.01)

    strangers = [asyncio.create_task(stranger()) for _ in range(70)]
    try:
        await asyncio.sleep(0.5)  # every place taken by strangers
        assert len(server._conns) >= 64
        replies = await asyncio.gather(*(get(server.port, "/metrics", token="s3cret")
                                         for _ in range(55)))
        assert [r.status for r in replies] == [200] * 55
        assert server.evicted > 0
    finally:
        stop.set()
        await asyncio.gather(*strangers)
        await server.close()


def big_snapshot(apps: int) -> Snapshot:
    rows = [app_row(f"app-{i:05d}-" + "x" * 60, 1.0, 2.0, 3, 4) for i in range(apps)]
    return factories.snapshot(1, rows, elapsed=0.0)


async def test_a_client_that_never_reads_is_dropped_at_the_write_deadline() -> None:
    feed = ManualFeed()
    feed.push(big_snapshot(5000))  # about half a megabyte of JSON
    server = await start_http(feed, "0", None, limits=Limits(write_timeout=0.5))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    try:
        sock.sendall(b"GET /api/v1/snapshot HTTP/1.1\r\n\r\n" * 20)
        for _ in range(40):  # the server gives up on this reader, not the other way round
            await asyncio.sleep(0.1)
            if not server._conns:
                break
        assert not server._conns
        assert (await get(server.port, "/metrics")).status == 200
    finally:
        sock.close()
        await server.close()


async def test_ticks_keep_their_pace_under_attack() -> None:
    """50 ms ticks while slowloris, oversized and hammering clients hit the server."""
    feed = feed_with_ticks(1)
    server = await start_http(feed, "0", None, limits=Limits(max_connections=32))
    stop = asyncio.Event()
    tick_times: list[float] = []

    async def ticker() -> None:
        seq = 1
        while not stop.is_set():
            seq += 1
            feed.push(snapshot(seq, firefox=seq * 1000, curl=seq, pipe=seq))
            tick_times.append(time.monotonic())
            await asyncio.sleep(0.05)

    async def slowloris() -> None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", server.port)
            while not stop.is_set():
                writer.write(b"X")
                await asyncio.sleep(0.1)
            writer.close()
        except OSError:
            pass

    async def hammer() -> int:
        answered = 0
        while not stop.is_set():
            for path in ("/metrics", "/api/v1/snapshot", "/api/v1/history"):
                reply = await get(server.port, path)
                answered += reply.status == 200
        return answered

    tasks = [asyncio.create_task(ticker())]
    tasks += [asyncio.create_task(slowloris()) for _ in range(24)]
    hammers = [asyncio.create_task(hammer()) for _ in range(4)]
    await asyncio.sleep(1.5)
    stop.set()
    answered = sum(await asyncio.gather(*hammers))
    await asyncio.gather(*tasks)
    await server.close()
    gaps = [b - a for a, b in itertools.pairwise(tick_times)]
    assert answered > 0  # real clients were still served
    # 30 ticks due in 1.5 s; on a loaded 2-core machine the loop itself runs late (14 seen
    # in a full suite beside two soaks), so a third is asked here: the gap catches stalls
    assert len(tick_times) >= 10, len(tick_times)
    assert max(gaps) < 0.5, max(gaps)


async def test_a_large_answer_arrives_whole() -> None:
    feed = ManualFeed()
    feed.push(big_snapshot(5000))
    server = await start_http(feed, "0", None)
    try:
        reply = await get(server.port, "/api/v1/snapshot")
    finally:
        await server.close()
    assert len(reply.body) == int(reply.headers["content-length"])
    doc = reply.json()
    assert isinstance(doc, dict) and len(doc["apps"]) == 5000


async def test_non_finite_numbers_and_options_star_are_client_errors() -> None:
    """`?top=inf`, `?limit=inf` gave 500, `?since=nan` 200; `OPTIONS *` gave 400, not 405."""
    server = await start_http(feed_with_ticks(2), "0", None)
    try:
        for path in ("/api/v1/history?top=inf", "/api/v1/alerts?limit=inf",
                     "/api/v1/alerts?since=nan", "/api/v1/history?seconds=-inf",
                     "/api/v1/alerts?limit=1e999"):
            reply = await get(server.port, path)
            assert reply.status == 400, (path, reply)
            assert "not a finite number" in reply.json()["error"]  # type: ignore[index]
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        head = (await asyncio.wait_for(reader.read(), 5)).split(b"\r\n\r\n")[0]
        writer.close()
        assert head.startswith(b"HTTP/1.1 405 ") and b"\r\nAllow: GET, HEAD" in head, head
    finally:
        await server.close()
