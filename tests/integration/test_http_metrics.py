"""`/metrics` from a real server, read back with prometheus-client's own text parser."""

from __future__ import annotations

import dataclasses
import itertools
import platform

from prometheus_client.parser import text_string_to_metric_families

from bwmon import __version__
from bwmon.core.feed import ManualFeed
from bwmon.core.model import Finding, Level, SourceStatus
from bwmon.http import start_http
from tests.integration.test_http_synthetic import T0, feed_with_ticks, get, snapshot

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(port: int) -> tuple[Samples, dict[str, str]]:
    reply = await get(port, "/metrics")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    types = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def app_bytes(samples: Samples, app: str, direction: str, unit: str = "ip") -> float:
    key = ("bwmon_app_bytes_total",
           (("app", app), ("direction", direction), ("unit", unit)))
    return samples[key]


async def test_metrics_match_the_snapshot_and_are_counters() -> None:
    feed = feed_with_ticks(3)
    server = await start_http(feed, "0", None)
    try:
        samples, types = await scrape(server.port)
    finally:
        await server.close()
    assert types["bwmon_app_bytes"] == "counter" and types["bwmon_pipe_bytes"] == "counter"
    assert app_bytes(samples, "Firefox", "in") == 30_000
    assert app_bytes(samples, "Firefox", "out") == 3_000
    assert app_bytes(samples, "curl", "in") == 6_000
    pipe = {d: samples[("bwmon_pipe_bytes_total", (("direction", d), ("pipe", "web-pipe")))]
            for d in ("in", "out")}
    assert pipe == {"in": 6_000, "out": 120_000}
    assert samples[("bwmon_unattributed_bytes_total", (("direction", "out"),))] == 600
    assert samples[("bwmon_filtered_bytes_total", (("direction", "in"),))] == 11
    assert samples[("bwmon_alert_active",
                    (("app", "Firefox"), ("direction", "in"), ("rule", "budget")))] == 1
    assert samples[("bwmon_source_up", (("source", "pipe:web-pipe"),))] == 1
    # bounded cardinality: app names only — no PID, no command line by default
    labels = {k for (_, lbl) in samples for k, _ in lbl}
    assert "pid" not in labels and "cmdline" not in labels
    assert not any(name.startswith("bwmon_process") for name, _ in samples)


async def test_counters_stay_monotonic_across_ticks_gaps_and_a_pipe_restart() -> None:
    feed = ManualFeed()
    server = await start_http(feed, "0", None)
    seen: list[tuple[float, float, float]] = []
    try:
        ticks = [
            dict(firefox=10_000, curl=1_000, pipe=50_000),
            dict(firefox=20_000, curl=None, pipe=90_000),  # curl gone for a tick
            dict(firefox=30_000, curl=1_500, pipe=4_000),  # pipe child restarted at 0
            dict(firefox=40_000, curl=1_700, pipe=9_000),
        ]
        for seq, tick in enumerate(ticks, start=1):
            feed.push(snapshot(seq, **tick))  # type: ignore[arg-type]
            samples, _ = await scrape(server.port)
            seen.append((app_bytes(samples, "Firefox", "in"), app_bytes(samples, "curl", "in"),
                         samples[("bwmon_pipe_bytes_total",
                                  (("direction", "out"), ("pipe", "web-pipe")))]))
    finally:
        await server.close()
    for earlier, later in itertools.pairwise(seen):
        assert all(b >= a for a, b in zip(earlier, later, strict=True)), seen
    assert seen[-1] == (40_000, 1_700, 90_000 + 9_000)


async def test_alert_state_follows_fired_and_cleared() -> None:
    feed = feed_with_ticks(2)
    server = await start_http(feed, "0", None)
    key = ("bwmon_alert_active", (("app", "Firefox"), ("direction", "in"), ("rule", "budget")))
    try:
        assert (await scrape(server.port))[0][key] == 1
        feed.log.add(T0 + 5, Level.INFO, "alert", "back to normal", rule="budget",
                     app="Firefox", direction="in", event="cleared")
        assert (await scrape(server.port))[0][key] == 0
    finally:
        await server.close()


async def test_health_reports_stale_and_failed_sources() -> None:
    feed = ManualFeed()
    server = await start_http(feed, "0", None)
    server.collector.wall = lambda: T0 + 1.5  # half a second after the pushed tick
    try:
        empty, _ = await scrape(server.port)
        assert empty[("bwmon_up", ())] == 0  # nothing measured yet
        feed.push(snapshot(1, firefox=1, curl=None, pipe=1, up=False))
        samples, _ = await scrape(server.port)
    finally:
        await server.close()
    assert samples[("bwmon_up", ())] == 1
    assert samples[("bwmon_source_up", (("source", "pipe:web-pipe"),))] == 0
    assert samples[("bwmon_source_up", (("source", "conntrack-file"),))] == 1


async def test_up_means_measuring_and_every_check_is_exported() -> None:
    """Fresh snapshots whose byte sources count nothing (accounting off) read as down."""
    feed = ManualFeed()
    server = await start_http(feed, "0", None)
    server.collector.wall = lambda: T0 + 1.5
    checks = (Finding("cap-net-admin", True, "held"),
              Finding("accounting", False, "byte accounting is off", "sysctl -w …"))
    base = snapshot(1, firefox=1, curl=None, pipe=1, up=False)
    idle = dataclasses.replace(base, checks=checks, sources=(
        SourceStatus("conntrack-file", False, "counts nothing", counts_bytes=True),
        SourceStatus("sockets", True, "netlink"),  # finds owners, counts no bytes
        SourceStatus("pipe:web-pipe", False, "restarting", counts_bytes=True)))
    try:
        feed.push(idle)
        samples, types = await scrape(server.port)
    finally:
        await server.close()
    assert samples[("bwmon_up", ())] == 0
    assert samples[("bwmon_check_ok", (("check", "accounting"),))] == 0
    assert samples[("bwmon_check_ok", (("check", "cap-net-admin"),))] == 1
    build = [lbl for name, lbl in samples if name == "bwmon_build_info"]
    assert build == [(("python", platform.python_version()), ("version", __version__))]
    # the tree's own cost: this test process at least, counting up
    assert types["bwmon_tree_cpu_seconds"] == "counter"
    assert samples[("bwmon_tree_cpu_seconds_total", ())] > 0
    assert samples[("bwmon_tree_processes", ())] >= 1
    rss = samples[("bwmon_tree_memory_bytes", (("kind", "rss"),))]
    pss = samples[("bwmon_tree_memory_bytes", (("kind", "pss"),))]
    assert 0 < pss <= rss


async def test_stale_snapshots_read_as_down() -> None:
    feed = ManualFeed()
    feed.push(snapshot(1, firefox=1, curl=None, pipe=1))
    server = await start_http(feed, "0", None, stale_after=10.0)
    server.collector.wall = lambda: T0 + 1 + 11  # the engine stopped ticking 11 s ago
    try:
        samples, _ = await scrape(server.port)
    finally:
        await server.close()
    assert samples[("bwmon_up", ())] == 0
    assert samples[("bwmon_last_tick_timestamp_seconds", ())] == T0 + 1


async def test_per_process_series_only_when_asked() -> None:
    feed = feed_with_ticks(2)
    server = await start_http(feed, "0", None, per_process_metrics=True)
    try:
        samples, _ = await scrape(server.port)
    finally:
        await server.close()
    key = ("bwmon_process_bytes_total",
           (("app", "curl"), ("direction", "in"), ("pid", "5151"), ("process", "curl")))
    assert samples[key] == 4_000
