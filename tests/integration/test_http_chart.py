"""The chart page in headless Chromium: it fetches the history from this server and draws it.

Needs Debian's `chromium` (installed by `./dev test`). With UPDATE_DOCS=1 the screenshot
is also written to docs/http-chart.png for the manual.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from bwmon.http import start_http
from tests.integration.test_http_synthetic import feed_with_ticks, get

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "bwmon" / "http" / "page.html"

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="needs the chromium package (./dev test installs it)",
)


async def chromium(tmp: Path, url: str, *extra: str) -> str:
    assert CHROMIUM is not None, "chromium is not installed"
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp / 'profile'}",
        "--window-size=1000,760", "--virtual-time-budget=4000", *extra, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode()


@needs_chromium
async def test_the_chart_draws_every_point_of_the_history(tmp_path: Path) -> None:
    ticks = 40
    feed = feed_with_ticks(ticks)
    server = await start_http(feed, "0", None)
    try:
        dom = await chromium(tmp_path, server.url, "--dump-dom")
        shot = tmp_path / "chart.png"
        await chromium(tmp_path, server.url, f"--screenshot={shot}")
    finally:
        await server.close()
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None, dom[:500]
    attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', body.group(0)))
    assert attrs["status"] == "ok"
    # 4 rows (Firefox, curl, web-pipe, unattributed) × 40 ticks, on the in and the out chart
    assert attrs["apps"] == "4"
    assert int(attrs["points"]) == 4 * ticks * 2
    assert "Firefox" in dom and "KiB/s" in dom
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    if os.environ.get("UPDATE_DOCS") == "1":
        (REPO / "docs" / "http-chart.png").write_bytes(png)


@needs_chromium
async def test_the_chart_works_behind_a_token(tmp_path: Path) -> None:
    server = await start_http(feed_with_ticks(3), "0", "s3cret")
    try:
        # the browser logs in with Basic auth (URL credentials); the page then fetches its data
        url = server.url.replace("http://", "http://me:s3cret@")
        dom = await chromium(tmp_path, url, "--dump-dom")
    finally:
        await server.close()
    assert 'data-status="ok"' in dom and 'data-apps="4"' in dom


async def test_the_page_is_self_contained() -> None:
    server = await start_http(feed_with_ticks(1), "0", None)
    try:
        reply = await get(server.port, "/")
    finally:
        await server.close()
    html = reply.body.decode()
    assert reply.status == 200 and "<canvas" in html
    # nothing fetched from elsewhere, and the browser is told to refuse it anyway
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "connect-src 'self'" in reply.headers["content-security-policy"]
    assert "default-src 'none'" in reply.headers["content-security-policy"]
