"""/metrics per container and per systemd unit: counters that keep a gone process's bytes,
and a bounded number of series."""

from __future__ import annotations

import dataclasses

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bwmon.core.feed import ManualFeed
from bwmon.http import start_http
from bwmon.http.metrics import BwmonCollector
from tests.helpers import factories
from tests.helpers.factories import process_info, process_row
from tests.integration.test_http_metrics import scrape

WEB = dataclasses.replace(process_info("nginx", pid=10), container="web", unit="")
API = dataclasses.replace(process_info("python3", pid=11), container="shop/front/api")
SSHD = dataclasses.replace(process_info("sshd", pid=12), unit="ssh.service")


def tick(seq: int, *rows: tuple[object, int]) -> object:
    procs = [process_row(info, info.name, 0.0, 0.0, total, total // 2)  # type: ignore[arg-type]
             for info, total in rows]
    return factories.snapshot(seq, processes=procs)


async def test_containers_and_units_are_counted_and_keep_exited_bytes() -> None:
    feed = ManualFeed()
    server = await start_http(feed, "0", None)
    feed.push(tick(1, (WEB, 1000), (SSHD, 50)))  # type: ignore[arg-type]
    feed.push(tick(2, (WEB, 3000), (API, 400), (SSHD, 80)))  # type: ignore[arg-type]
    feed.push(tick(3, (API, 900)))  # type: ignore[arg-type]  # nginx's row went: bytes stay
    try:
        samples, types = await scrape(server.port)
    finally:
        await server.close()
    assert types["bwmon_container_bytes"] == "counter" and types["bwmon_unit_bytes"] == "counter"

    def value(family: str, label: str, name: str, direction: str) -> float:
        return samples[(f"{family}_total", tuple(sorted(((label, name),
                                                          ("direction", direction)))))]
    assert value("bwmon_container_bytes", "container", "web", "in") == 3000
    assert value("bwmon_container_bytes", "container", "web", "out") == 1500
    assert value("bwmon_container_bytes", "container", "shop/front/api", "in") == 900
    assert value("bwmon_unit_bytes", "unit", "ssh.service", "in") == 80


def test_series_per_family_are_capped() -> None:
    feed = ManualFeed()
    infos = [dataclasses.replace(process_info("p", pid=100 + i), container=f"c{i}")
             for i in range(5)]
    feed.push(tick(1, *[(info, 100) for info in infos]))  # type: ignore[arg-type]
    collector = BwmonCollector(feed, max_names=2)
    text = generate_latest(collector).decode()  # type: ignore[arg-type]
    family = next(f for f in text_string_to_metric_families(text)
                  if f.name == "bwmon_container_bytes")
    names = {s.labels["container"] for s in family.samples}
    assert names == {"c0", "c1", "(other)"}
    other = sum(s.value for s in family.samples
                if s.labels["container"] == "(other)" and s.labels["direction"] == "in")
    assert other == 300
    collector.close()
