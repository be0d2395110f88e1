"""/api/v1/history over a range answers from the history store: one point per bucket, exact
bytes, busiest apps first; bad ranges are a 400 with the reason; the chart page's range
selector draws a stored range in headless Chromium."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from bwmon.core.store.calendar import HOUR
from bwmon.core.store.retention import Retention
from bwmon.core.store.tally import AppKey, MinuteBytes
from bwmon.core.store.writer import StoreWriter
from bwmon.http import start_http
from tests.integration.test_http_chart import chromium, needs_chromium
from tests.integration.test_http_synthetic import feed_with_ticks, get


def minutes_of(now: int) -> list[int]:
    return [m // 60 * 60 for m in range(now - 30 * HOUR + 300, now, 600)]


def store_with(tmp_path: Path, now: int) -> Path:
    """Three apps, each some bytes every 10 minutes of the last 30 hours, 5 minutes off `now`'s
    phase, so that no point sits on the edge of a range that the server takes a moment later."""
    path = tmp_path / "history.sqlite"
    w = StoreWriter(path, Retention())
    w.open()
    w.write([MinuteBytes(minute, AppKey(name, "ip"), 1000 * (k + 1), 7)
             for k, name in enumerate(("firefox", "apt", "ssh"))
             for minute in minutes_of(now)])
    w.close()
    return path


async def test_a_range_is_answered_from_the_store(tmp_path: Path) -> None:
    now = int(time.time())
    store = store_with(tmp_path, now)
    server = await start_http(feed_with_ticks(3), "0", None, store=store)
    try:
        reply = await get(server.port, "/api/v1/history?range=1h&top=2")
        since = now - 5 * HOUR
        exact = await get(server.port, f"/api/v1/history?since={since}&until={now + 60}")
        one = await get(server.port, "/api/v1/history?range=24h&app=apt")
        live = await get(server.port, "/api/v1/history")
        bad = [await get(server.port, f"/api/v1/history?{q}") for q in
               ("range=2y", "since=yesterday", "since=10&until=5", "range=1h&app=nope")]
    finally:
        await server.close()
    doc = json.loads(reply.body)
    assert reply.status == 200 and doc["source"] == "store" and doc["table"] == "minutes"
    assert list(doc["series"]) == ["ssh", "apt"]  # the busiest two
    s = doc["series"]["ssh"]
    assert len(s["t"]) in (60, 61) and s["t"] == sorted(s["t"])  # one point per minute
    assert sum(s["bytes_in"]) == doc["totals"]["ssh"]["bytes_in"] == 18_000  # 6 points of 3000
    assert s["in"][s["bytes_in"].index(3000)] == 50  # 3000 bytes in a minute: 50 B/s
    rows = json.loads(exact.body)
    minutes = minutes_of(now)
    assert rows["totals"]["firefox"]["bytes_in"] == 1000 * sum(
        1 for m in minutes if since // 60 * 60 <= m)
    assert rows["table"] == "minutes" and rows["since"] == since // 60 * 60
    assert list(json.loads(one.body)["series"]) == ["apt"]
    assert json.loads(one.body)["table"] == "hours"
    assert "source" not in json.loads(live.body)  # without a range: the live answer
    assert [b.status for b in bad] == [400, 400, 400, 404]
    assert "1h, 24h, 7d, 30d" in json.loads(bad[0].body)["error"]


async def test_a_range_by_container_and_by_unit(tmp_path: Path) -> None:
    """nginx in two containers and in a unit: by=container gives a series per container
    ("" for bytes in none), app= and unit= keep only their rows."""
    now = int(time.time())
    path = tmp_path / "history.sqlite"
    w = StoreWriter(path, Retention())
    w.open()
    w.write([MinuteBytes(minute, key, b, 1)
             for minute in minutes_of(now)
             for key, b in ((AppKey("nginx", "ip", "web-a"), 300),
                            (AppKey("nginx", "ip", "web-b"), 200),
                            (AppKey("nginx", "ip", None, "nginx.service"), 50),
                            (AppKey("ssh", "ip", None, "session-3.scope"), 7))])
    w.close()
    server = await start_http(feed_with_ticks(3), "0", None, store=path)
    try:
        by_c = await get(server.port, "/api/v1/history?range=1h&by=container")
        nginx_u = await get(server.port, "/api/v1/history?range=1h&by=unit&app=nginx")
        in_unit = await get(server.port, "/api/v1/history?range=1h&unit=nginx.service")
        bad = await get(server.port, "/api/v1/history?range=1h&by=pod")
    finally:
        await server.close()
    doc = json.loads(by_c.body)
    assert by_c.status == 200 and doc["by"] == "container"
    assert list(doc["series"]) == ["web-a", "web-b", ""]
    points = len([m for m in minutes_of(now) if m >= doc["since"]])
    assert {k: v["bytes_in"] for k, v in doc["totals"].items()} == {
        "web-a": 300 * points, "web-b": 200 * points, "": 57 * points}
    assert sum(doc["series"]["web-b"]["bytes_in"]) == 200 * points
    doc = json.loads(nginx_u.body)
    assert {k: v["bytes_in"] for k, v in doc["totals"].items()} == {
        "": 500 * points, "nginx.service": 50 * points}
    doc = json.loads(in_unit.body)
    assert doc["by"] == "app" and list(doc["totals"]) == ["nginx"]
    assert doc["totals"]["nginx"]["bytes_in"] == 50 * points
    assert bad.status == 400 and "app, container, unit" in json.loads(bad.body)["error"]


async def test_without_a_store_a_range_says_history_is_off() -> None:
    server = await start_http(feed_with_ticks(3), "0", None)
    try:
        reply = await get(server.port, "/api/v1/history?range=24h")
    finally:
        await server.close()
    assert reply.status == 404 and "history.enabled" in json.loads(reply.body)["error"]


@needs_chromium
@pytest.mark.parametrize("chosen", ["24h", "7d"])
async def test_the_chart_page_draws_a_stored_range(tmp_path: Path, chosen: str) -> None:
    now = int(time.time())
    store = store_with(tmp_path, now)
    server = await start_http(feed_with_ticks(3), "0", None, store=store)
    try:
        dom = await chromium(tmp_path, f"{server.url}#range={chosen}", "--dump-dom")
    finally:
        await server.close()
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None, dom[:500]
    attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', body.group(0)))
    assert attrs["status"] == "ok" and attrs["range"] == chosen
    assert attrs["apps"] == "3"
    buckets = {"24h": (24, 25), "7d": (168, 169)}[chosen]  # hours, aligned to whole hours
    assert int(attrs["points"]) in {3 * n * 2 for n in buckets}
    assert "bytes in" in dom and "history store" in dom
