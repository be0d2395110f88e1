"""A real server on loopback answering from known synthetic snapshots: JSON and auth."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bwmon.core.feed import ManualFeed
from bwmon.http import HttpConfigError, HttpServer, start_http
from tests.integration.test_http_synthetic import T0, feed_with_ticks, get, snapshot


@pytest.fixture
async def served() -> AsyncIterator[tuple[ManualFeed, HttpServer]]:
    feed = feed_with_ticks(3)
    server = await start_http(feed, "0", None)
    yield feed, server
    await server.close()


async def test_snapshot_json_matches_the_engine_snapshot(
    served: tuple[ManualFeed, HttpServer],
) -> None:
    feed, server = served
    reply = await get(server.port, "/api/v1/snapshot")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    doc = reply.json()
    assert isinstance(doc, dict)
    snap = feed.latest
    assert snap is not None
    assert doc["seq"] == snap.seq == 3 and doc["time"] == snap.time
    by_name = {a["name"]: a for a in doc["apps"]}
    for row in snap.apps:
        got = by_name[row.name]
        assert (got["kind"], got["unit"]) == (row.kind.value, row.unit.value)
        assert (got["rate_in"], got["rate_out"]) == (row.rate_in, row.rate_out)
        assert (got["total_in"], got["total_out"]) == (row.total_in, row.total_out)
    assert by_name["Firefox"]["pids"] == [4242]
    assert by_name["Firefox"]["connections"][0]["remote"] == "93.184.216.34:443"
    assert doc["unattributed"]["total_in"] == 300 and doc["unattributed"]["total_out"] == 600
    assert doc["forwarded"] is None
    assert doc["filtered"] == {"rate_in": 1.0, "rate_out": 2.0, "total_in": 11, "total_out": 22}
    assert doc["host"]["loopback_total"] == 42
    procs = {p["pid"]: p for p in doc["processes"]}
    assert procs[5151]["app"] == "curl" and procs[5151]["cmdline"].startswith("curl ")
    assert {s["name"]: s["active"] for s in doc["sources"]} == {
        "conntrack-file": True, "pipe:web-pipe": True}


async def test_the_snapshot_follows_new_ticks(served: tuple[ManualFeed, HttpServer]) -> None:
    feed, server = served
    first = (await get(server.port, "/api/v1/snapshot")).json()
    feed.push(snapshot(4, firefox=99_000, curl=None, pipe=1))
    second = (await get(server.port, "/api/v1/snapshot")).json()
    assert isinstance(first, dict) and isinstance(second, dict)
    assert second["seq"] == 4 and first["seq"] == 3
    assert "curl" not in {a["name"] for a in second["apps"]}


async def test_no_snapshot_yet_is_a_retryable_503() -> None:
    server = await start_http(ManualFeed(), "0", None)
    try:
        reply = await get(server.port, "/api/v1/snapshot")
        assert reply.status == 503 and b"retry" in reply.body
    finally:
        await server.close()


async def test_history_returns_what_was_recorded(served: tuple[ManualFeed, HttpServer]) -> None:
    _, server = served
    doc = (await get(server.port, "/api/v1/history?app=Firefox")).json()
    assert isinstance(doc, dict)
    assert doc["series"] == {"Firefox": {"t": [T0 + 1, T0 + 2, T0 + 3],
                                         "in": [1000.0, 2000.0, 3000.0],
                                         "out": [100.0, 200.0, 300.0]}}
    assert doc["units"] == {"Firefox": "ip"}
    recent = (await get(server.port, "/api/v1/history?app=Firefox&seconds=1.5")).json()
    assert isinstance(recent, dict) and recent["series"]["Firefox"]["t"] == [T0 + 2, T0 + 3]
    everything = (await get(server.port, "/api/v1/history")).json()
    assert isinstance(everything, dict)
    assert set(everything["series"]) == {"Firefox", "curl", "web-pipe", "(unattributed)"}


async def test_history_top_picks_the_busiest_rows(
    served: tuple[ManualFeed, HttpServer],
) -> None:
    _, server = served
    doc = (await get(server.port, "/api/v1/history?top=2")).json()
    assert isinstance(doc, dict)
    assert list(doc["series"]) == ["Firefox", "web-pipe"]  # 3.3 kB/s and 2 kB/s beat the rest
    assert list(doc["units"]) == ["Firefox", "web-pipe"]


async def test_history_errors_say_what_exists(served: tuple[ManualFeed, HttpServer]) -> None:
    _, server = served
    missing = await get(server.port, "/api/v1/history?app=Nope")
    assert missing.status == 404 and b"Firefox" in missing.body
    bad = await get(server.port, "/api/v1/history?seconds=soon")
    assert bad.status == 400 and b"seconds" in bad.body
    assert (await get(server.port, "/api/v1/history?top=-1")).status == 400


async def test_live_history_refuses_a_grouping_it_cannot_honour(
        served: tuple[ManualFeed, HttpServer]) -> None:
    """Found in a user trial: `by=container` without a range answered per app, as if `by`
    were not there. The live history keeps rates per app: by=app is honoured, other groupings
    and container=/unit= are a 400 that points at the store (which answers them)."""
    _, server = served
    plain = await get(server.port, "/api/v1/history")
    by_app = await get(server.port, "/api/v1/history?by=app")
    assert by_app.status == 200 and json.loads(by_app.body) == json.loads(plain.body)
    for grouping in ("container", "unit"):
        answer = await get(server.port, f"/api/v1/history?by={grouping}")
        assert answer.status == 400, answer.body
        error = json.loads(answer.body)["error"]
        assert f"by={grouping}" in error and "range=1h" in error, error
    unknown = await get(server.port, "/api/v1/history?by=pod")
    assert unknown.status == 400
    assert json.loads(unknown.body)["by"] == ["app", "container", "unit"]
    for query in ("container=web", "unit=nginx.service", "container="):
        answer = await get(server.port, f"/api/v1/history?{query}")
        assert answer.status == 400 and b"range=1h" in answer.body, (query, answer.body)


async def test_alerts_lists_the_log(served: tuple[ManualFeed, HttpServer]) -> None:
    feed, server = served
    feed.log.add(T0 + 9, feed.log.tail()[0].level, "pipe:web-pipe", "restarted")
    doc = (await get(server.port, "/api/v1/alerts")).json()
    assert isinstance(doc, dict)
    assert [e["source"] for e in doc["events"]] == ["alert", "pipe:web-pipe"]
    assert doc["events"][0]["data"]["app"] == "Firefox"
    only = (await get(server.port, "/api/v1/alerts?source=alert&limit=5")).json()
    assert isinstance(only, dict) and len(only["events"]) == 1
    later = (await get(server.port, f"/api/v1/alerts?since={T0 + 5}")).json()
    assert isinstance(later, dict) and [e["message"] for e in later["events"]] == ["restarted"]


async def test_head_and_unknown_paths(served: tuple[ManualFeed, HttpServer]) -> None:
    _, server = served
    head = await get(server.port, "/api/v1/snapshot", method="HEAD")
    assert head.status == 200 and head.body == b"" and int(head.headers["content-length"]) > 100
    assert (await get(server.port, "/admin")).status == 404
    assert (await get(server.port, "/metrics", method="POST")).status == 405


async def test_default_bind_is_loopback_only() -> None:
    server = await start_http(ManualFeed(), "0", None)
    try:
        assert server.address == "127.0.0.1"
        sockets = server._server.sockets if server._server else ()
        assert [s.getsockname()[0] for s in sockets] == ["127.0.0.1"]
    finally:
        await server.close()


async def test_off_loopback_needs_a_token() -> None:
    with pytest.raises(HttpConfigError, match="BWMON_HTTP__TOKEN"):
        await start_http(ManualFeed(), "0.0.0.0:0", None)


def _outside_address() -> str | None:
    """A non-loopback address of this host, to reach the server the way a remote client would."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
            return str(s.getsockname()[0])
        except OSError:
            return None


async def test_token_is_required_when_bound_off_loopback() -> None:
    feed = feed_with_ticks(2)
    server = await start_http(feed, "0.0.0.0:0", "s3cret")
    host = _outside_address() or "127.0.0.1"
    try:
        for path in ("/api/v1/snapshot", "/metrics", "/", "/api/v1/history"):
            refused = await get(server.port, path, host=host)
            assert refused.status == 401, path
            assert "www-authenticate" in refused.headers
            assert b"Firefox" not in refused.body
        assert (await get(server.port, "/metrics", host=host, token="wrong")).status == 401
        ok = await get(server.port, "/api/v1/snapshot", host=host, token="s3cret")
        assert ok.status == 200 and b"Firefox" in ok.body
        # a browser's login prompt: any user name, the token as password
        assert (await get(server.port, "/", host=host, basic="me:s3cret")).status == 200
        assert (await get(server.port, "/", host=host, basic="me:nope")).status == 401
    finally:
        await server.close()


async def test_a_busy_port_is_a_clear_error() -> None:
    first = await start_http(ManualFeed(), "0", None)
    try:
        with pytest.raises(HttpConfigError, match="choose another port"):
            await start_http(ManualFeed(), str(first.port), None)
    finally:
        await first.close()


async def test_a_snapshot_that_cannot_be_encoded_is_a_500_not_a_dead_server() -> None:
    feed = ManualFeed()
    broken = snapshot(1, firefox=1, curl=None, pipe=1)
    feed.push(replace(broken, apps=(replace(broken.apps[0], rate_in=float("nan")),)))
    server = await start_http(feed, "0", None)
    try:
        reply = await get(server.port, "/api/v1/snapshot")
        assert reply.status == 500 and b"cannot render" in reply.body
        assert (await get(server.port, "/metrics")).status == 200
    finally:
        await server.close()


async def test_keep_alive_serves_several_requests_on_one_connection(
    served: tuple[ManualFeed, HttpServer],
) -> None:
    _, server = served
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for path in ("/api/v1/alerts", "/metrics"):
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 ") and b"Connection: keep-alive" in head
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            assert len(await reader.readexactly(length)) == length
    finally:
        writer.close()
