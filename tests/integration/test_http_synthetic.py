"""Known synthetic snapshots and a client for the HTTP view's tests (no tests here).

The feeds are ManualFeeds pushed by hand, so every figure the server answers is known.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass

from bwmon.core.feed import ManualFeed
from bwmon.core.model import HostTotals, Level, RowKind, Snapshot, SourceStatus, Totals
from tests.helpers import factories
from tests.helpers.factories import T0, app_row, connection, process_info, process_row

FIREFOX = process_info("firefox", "/usr/lib/firefox/firefox -P default", pid=4242, start=777,
                       user="alice", uid=1000)
CURL = process_info("curl", "curl https://example.org/big.iso", pid=5151, start=888,
                    user="bob", uid=1001)


def snapshot(seq: int, *, firefox: int, curl: int | None, pipe: int,
             unattributed: int = 300, up: bool = True) -> Snapshot:
    """Tick `seq`: cumulative totals; firefox receives `firefox` bytes and sends a tenth."""
    apps = [
        app_row("Firefox", 1000.0 * seq, 100.0 * seq, firefox, firefox // 10, flows=3,
                processes=[FIREFOX],
                connections=[connection("10.0.0.1:40000", "93.184.216.34:443",
                                        firefox, firefox // 10)]),
        app_row("web-pipe", 10.0, 2000.0, pipe // 20, pipe, kind=RowKind.PIPE, flows=1),
        app_row("(unattributed)", 5.0, 6.0, unattributed, unattributed * 2,
                kind=RowKind.UNATTRIBUTED),
    ]
    procs = [process_row(FIREFOX, "Firefox", 1000.0 * seq, 100.0 * seq, firefox, firefox // 10,
                         3)]
    if curl is not None:
        apps.insert(1, app_row("curl", 500.0, 50.0, curl, curl // 100, flows=1,
                               processes=[CURL]))
        procs.append(process_row(CURL, "curl", 500.0, 50.0, curl, curl // 100, 1))
    return factories.snapshot(
        seq, apps, elapsed=1.0 if seq > 1 else 0.0, processes=procs,
        host=HostTotals(rate_in=1505.0, rate_out=156.0, total_in=firefox + (curl or 0),
                        total_out=firefox // 10, loopback_total=42, loopback_rate=1.5),
        filtered=Totals(1.0, 2.0, 11, 22),
        sources=(SourceStatus("conntrack-file", True, "/proc/net/nf_conntrack", counts_bytes=True),
                 SourceStatus("pipe:web-pipe", up, "" if up else "restarting",
                              counts_bytes=True)),
    )


def feed_with_ticks(n: int = 3) -> ManualFeed:
    """A feed that has seen `n` ticks of steady growth and one fired alert."""
    feed = ManualFeed()
    for seq in range(1, n + 1):
        feed.push(snapshot(seq, firefox=10_000 * seq, curl=2_000 * seq, pipe=40_000 * seq))
    feed.log.add(T0 + n, Level.WARNING, "alert", "Firefox in above 1 kB/s",
                 rule="budget", app="Firefox", direction="in", event="fired",
                 average="3000", threshold="1024", window="1")
    return feed


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


async def get(port: int, path: str, *, token: str | None = None, basic: str | None = None,
              host: str = "127.0.0.1", method: str = "GET") -> Reply:
    """One request over a fresh connection (Connection: close), read to the end."""
    reader, writer = await asyncio.open_connection(host, port)
    auth = ""
    if token is not None:
        auth = f"Authorization: Bearer {token}\r\n"
    if basic is not None:
        auth = f"Authorization: Basic {base64.b64encode(basic.encode()).decode()}\r\n"
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
                 .encode())
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Reply(int(lines[0].split()[1]), headers, body)
