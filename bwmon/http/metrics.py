"""`/metrics`: bwmon's state in the Prometheus text format, through prometheus-client.

Byte counters are `counter`s fed by every snapshot (not sampled at scrape time), so `rate()`
works, bwmon restarts read as counter resets, and a row that vanishes between two scrapes still
counts. Labels are app, pipe and rule names — never PIDs or command lines unless
`per_process_metrics` asks for them — and the number of names is capped.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from bwmon import __version__
from bwmon.core.feed import SnapshotFeed
from bwmon.core.model import Level, LogEvent, RowKind, Snapshot
from bwmon.core.runtime.process_tree import tree_usage
from bwmon.http.counters import MonotonicCounters
from bwmon.http.place_counters import PlaceCounters
from bwmon.http.tickcache import TickCache

ALERT_SOURCE = "alert"
MAX_ALERT_SERIES = 1000


class BwmonCollector(Collector):
    """Turns the feed's snapshots and alert events into metric families."""

    def __init__(
        self,
        feed: SnapshotFeed,
        *,
        per_process: bool = False,
        max_names: int = 100,
        stale_after: float = 10.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.feed = feed
        self.per_process = per_process
        self.stale_after = stale_after
        self.wall = wall
        self.apps = MonotonicCounters(max_names)
        self.pipes = MonotonicCounters(max_names)
        self.processes = MonotonicCounters(max_names)
        self.kinds = MonotonicCounters(8)  # unattributed, forwarded, filtered, host
        self.places = PlaceCounters(max_names)  # per container, per systemd unit
        self._units: dict[str, str] = {}
        self._proc_names: dict[str, tuple[str, str, str]] = {}  # key -> (app, pid, name)
        self.alerts: dict[tuple[str, str, str], int] = {}
        self.ticks = 0
        self._cpu = 0.0
        for event in feed.log.tail():
            self.on_event(event)
        if feed.latest is not None:
            self.on_snapshot(feed.latest)
        self._unsubscribe = [feed.subscribe(self.on_snapshot), feed.log.subscribe(self.on_event)]

    def close(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    def on_snapshot(self, s: Snapshot) -> None:
        """Feed the counters from one tick (cheap: one pass over the rows)."""
        self.ticks += 1
        apps, pipes, kinds = [], [], []
        for row in s.apps:
            if row.kind is RowKind.PROCESS:
                continue  # process-view rows: per-process series only with per_process_metrics
            if row.kind is RowKind.APP:
                apps.append((row.name, row.total_in, row.total_out))
                self._units[row.name] = row.unit.value
            elif row.kind is RowKind.PIPE:
                pipes.append((row.name, row.total_in, row.total_out))
            else:
                kinds.append((row.kind.value, row.total_in, row.total_out))
        kinds.append(("filtered", s.filtered.total_in, s.filtered.total_out))
        kinds.append(("host", s.host.total_in, s.host.total_out))
        self.apps.update(s.time, apps)
        self.pipes.update(s.time, pipes)
        self.kinds.update(s.time, kinds)
        self.places.update(s.processes)
        if self.per_process:
            procs = []
            for p in s.processes:
                key = f"{p.info.key.pid}/{p.info.key.start}"
                self._proc_names[key] = (p.app, str(p.info.key.pid), p.info.name)
                procs.append((key, p.total_in, p.total_out))
            self.processes.update(s.time, procs)
            live = {label for label, _, _ in self.processes.items()}
            for key in [k for k in self._proc_names if k not in live]:
                del self._proc_names[key]
        if len(self._units) > 4 * self.apps.cap:
            live = {label for label, _, _ in self.apps.items()}
            self._units = {k: v for k, v in self._units.items() if k in live}

    def on_event(self, e: LogEvent) -> None:
        """Follow alert events (source "alert", data rule/app/direction/event) into states."""
        if e.source != ALERT_SOURCE:
            return
        data = dict(e.data)
        key = (data.get("rule", ""), data.get("app", ""), data.get("direction", ""))
        kind = data.get("event")
        active = kind in ("fired", "repeat") if kind else e.level is not Level.INFO
        if key not in self.alerts and len(self.alerts) >= MAX_ALERT_SERIES:
            cleared = [k for k, v in self.alerts.items() if not v]
            if not cleared:
                return
            del self.alerts[cleared[0]]
        self.alerts[key] = int(active)

    def collect(self) -> Iterator[Metric]:
        snap = self.feed.latest
        app = CounterMetricFamily(
            "bwmon_app_bytes",
            "Bytes per application and direction since bwmon started "
            "(unit ip: whole IP packets from conntrack; payload: pipe payload).",
            labels=["app", "direction", "unit"],
        )
        for name, b_in, b_out in self.apps.items():
            unit = self._units.get(name, "ip")
            app.add_metric([name, "in", unit], b_in)
            app.add_metric([name, "out", unit], b_out)
        yield app
        pipe = CounterMetricFamily(
            "bwmon_pipe_bytes",
            "Payload bytes through each pipe monitor: in = client to target, out = back.",
            labels=["pipe", "direction"],
        )
        for name, b_in, b_out in self.pipes.items():
            pipe.add_metric([name, "in"], b_in)
            pipe.add_metric([name, "out"], b_out)
        yield pipe
        for family, label, counters, text in (
            ("bwmon_container_bytes", "container", self.places.containers,
             "Bytes of the processes of each container (runtime name, namespace/pod/container,"
             " ip netns name or netns:INODE)."),
            ("bwmon_unit_bytes", "unit", self.places.units,
             "Bytes of the processes of each systemd unit."),
        ):
            fam = CounterMetricFamily(family, text, labels=[label, "direction"])
            for name, b_in, b_out in counters.items():
                fam.add_metric([name, "in"], b_in)
                fam.add_metric([name, "out"], b_out)
            yield fam
        kinds = dict((k, (i, o)) for k, i, o in self.kinds.items())
        for kind, text in (
            ("unattributed", "Bytes of local flows no process could be found for."),
            ("forwarded", "Bytes of flows with no local end (routed or NATed through this host)."),
            ("filtered", "Bytes hidden by include/exclude/ignore-local filters."),
            ("host", "Whole-host bytes, each flow counted once."),
        ):
            fam = CounterMetricFamily(f"bwmon_{kind}_bytes", text, labels=["direction"])
            b_in, b_out = kinds.get(kind, (0, 0))
            fam.add_metric(["in"], b_in)
            fam.add_metric(["out"], b_out)
            yield fam
        if self.per_process:
            proc = CounterMetricFamily(
                "bwmon_process_bytes",
                "Bytes per process (per_process_metrics = true).",
                labels=["app", "pid", "process", "direction"],
            )
            for key, b_in, b_out in self.processes.items():
                a, pid, pname = self._proc_names.get(key, ("(other)", "", "(other)"))
                proc.add_metric([a, pid, pname, "in"], b_in)
                proc.add_metric([a, pid, pname, "out"], b_out)
            yield proc
        alert = GaugeMetricFamily(
            "bwmon_alert_active",
            "1 while an alert rule is above its threshold for an app and direction.",
            labels=["rule", "app", "direction"],
        )
        for (rule, app_name, direction), active in sorted(self.alerts.items()):
            alert.add_metric([rule, app_name, direction], active)
        yield alert
        yield from self._health(snap)

    def fresh(self, snap: Snapshot | None) -> bool:
        """True when `snap` exists and is younger than `stale_after` seconds."""
        return snap is not None and self.wall() - snap.time <= self.stale_after

    def _health(self, snap: Snapshot | None) -> Iterator[Metric]:
        source = GaugeMetricFamily(
            "bwmon_source_up", "1 when a measuring source worked at the last tick.",
            labels=["source"],
        )
        for s in snap.sources if snap else ():
            source.add_metric([s.name], int(s.active))
        yield source
        yield GaugeMetricFamily(
            "bwmon_up",
            f"1 when bwmon is measuring: a snapshot in the last {self.stale_after:g} s and a "
            "byte source counting (conntrack with accounting on and flows tracked, or a pipe).",
            value=int(self.fresh(snap) and snap is not None and snap.measuring),
        )
        check = GaugeMetricFamily(
            "bwmon_check_ok", "1 when the doctor's check passed at its latest run (every "
            "minute); the alert log says why one fails and the command that fixes it.",
            labels=["check"],
        )
        for finding in snap.checks if snap else ():
            check.add_metric([finding.check], int(finding.ok))
        yield check
        yield from self._own_usage()
        yield GaugeMetricFamily(
            "bwmon_last_tick_timestamp_seconds",
            "Wall-clock time of the latest snapshot.",
            value=snap.time if snap else 0,
        )
        yield CounterMetricFamily(
            "bwmon_ticks", "Snapshots received by the HTTP view.", value=self.ticks
        )
        info = GaugeMetricFamily("bwmon_build_info", "bwmon's version and Python's; always 1.",
                                 labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1)
        yield info

    def _own_usage(self) -> Iterator[Metric]:
        """bwmon's own cost: its process tree (pipes, workers, conntrack -E, alert
        commands), children included."""
        usage = tree_usage()
        self._cpu = max(self._cpu, usage.cpu_seconds)  # a child reaped elsewhere leaves the tree
        yield CounterMetricFamily(
            "bwmon_tree_cpu_seconds", "CPU seconds used by bwmon and its child processes, "
            "those already ended included.", value=self._cpu)
        memory = GaugeMetricFamily(
            "bwmon_tree_memory_bytes", "Memory of bwmon and its running child processes: rss "
            "(resident) and pss (shared pages divided among the processes sharing them).",
            labels=["kind"])
        memory.add_metric(["rss"], usage.rss)
        if usage.pss is not None:  # a child of another user's may hide its smaps
            memory.add_metric(["pss"], usage.pss)
        yield memory
        yield GaugeMetricFamily("bwmon_tree_processes",
                                "Processes in bwmon's tree (bwmon included).",
                                value=usage.processes)


class _Frozen:
    """Metric families collected in the loop, exposed to generate_latest in a worker thread."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


class MetricsPage:
    """Renders `/metrics` once per change of snapshot, alert log or freshness.

    The collector's state is read in the event loop (it changes there); the text exposition,
    the costly part, runs in a worker thread.
    """

    def __init__(self, collector: BwmonCollector) -> None:
        self.collector = collector
        self._key: object = None
        self.cache = TickCache(self._changed)

    def _changed(self) -> bool:
        c = self.collector
        key = (c.ticks, c.feed.log.count, c.fresh(c.feed.latest))
        if key == self._key:
            return False
        self._key = key
        return True

    async def render(self) -> bytes:
        def prepare() -> Callable[[], bytes]:
            frozen = _Frozen(list(self.collector.collect()))
            return lambda: generate_latest(frozen)

        return await self.cache.get("metrics", prepare)
