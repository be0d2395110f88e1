"""Glue between a snapshot feed and alerting: evaluate, log, print, notify.

`AlertMonitor.on_snapshot` is a synchronous feed subscriber: it runs the pure `evaluate`, puts
every event in the alert log (the TUI's alert pane and the JSON stream read it), prints it to
stderr in bwmon 1.1's one-line format when headless, and hands commands to the `Notifier`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TextIO

from bwmon.core.alerts.notifier import Notifier
from bwmon.core.alerts.rules import AlertEvent, AlertState, evaluate, rule_keys
from bwmon.core.config.settings import KB, AlertSettings, NotifySettings, Settings
from bwmon.core.eventlog import EventLog
from bwmon.core.feed import SnapshotFeed
from bwmon.core.model import Level, Snapshot
from bwmon.core.units import human_rate

SOURCE = "alert"


def describe(event: AlertEvent) -> str:
    """The alert-log message of an event, e.g. `ssh in above limit: 120 KiB/s > 100 KiB/s …`."""
    avg, limit = human_rate(event.average), human_rate(event.threshold)
    span = f"over {event.window:g} s [{event.rule}]"
    if event.kind == "cleared":
        return f"{event.app} {event.direction} back to normal: {avg} < {limit} {span}"
    still = "still " if event.kind == "repeat" else ""
    return f"{event.app} {event.direction} {still}above limit: {avg} > {limit} {span}"


def legacy_line(event: AlertEvent) -> str:
    """bwmon 1.1's stderr line: local date, app (50 columns), direction, kB/s, percentage."""
    stamp = datetime.fromtimestamp(event.time).strftime("%Y-%m-%d %H:%M:%S")
    app = event.app if len(event.app) <= 50 else event.app[:47] + "..."
    what = "back to normal" if event.kind == "cleared" else "exceeding"
    limit, avg = event.threshold / KB, event.average / KB
    percent = avg / limit * 100 if limit else 0.0
    return (
        f"{stamp}: {app} {what} '{event.direction}' bandwidth limit "
        f"{limit:10.2f}: {avg:10.2f} kB/s ({percent:3.2f} %)"
    )


def event_to_json(event: AlertEvent) -> dict[str, object]:
    """The JSON-stream form of an alert event (rates in bytes/s, time in epoch seconds)."""
    return {
        "type": "alert",
        "time": event.time,
        "rule": event.rule,
        "app": event.app,
        "direction": event.direction,
        "event": event.kind,
        "average": round(event.average, 3),
        "threshold": event.threshold,
        "window": event.window,
    }


class AlertMonitor:
    """Evaluates alert rules on every snapshot and acts on the events."""

    def __init__(
        self,
        rules: Sequence[AlertSettings],
        notify_settings: NotifySettings,
        log: EventLog,
        *,
        stderr: TextIO | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.rules: list[AlertSettings] = list(rules)
        self.log = log
        self.stderr = stderr
        self.notifier = notifier or Notifier(notify_settings, log)
        self.state = AlertState()
        self.events: list[AlertEvent] = []  # events of the latest snapshot
        self.time = 0.0  # the latest snapshot's (no clock read here)

    def on_snapshot(self, snapshot: Snapshot) -> None:
        """Feed subscriber: evaluate, log, print, schedule commands. Never blocks."""
        self.time = snapshot.time
        for old, to in snapshot.regrouped:  # say where an active alert went (rules.carry_over)
            names = ", ".join(new for new, share in to if share > 0)
            for rule, app, direction in self.state.active():
                if app == old and names:
                    self.log.add(snapshot.time, Level.INFO, SOURCE,
                                 f"{old} {direction} alert goes on as {names} (regrouped)"
                                 f" [{rule}]", rule=rule, app=old, direction=direction,
                                 event="moved")
        self.state, self.events = evaluate(self.rules, self.state, snapshot)
        for event in self.events:
            self._log(event)
            if self.stderr is not None:
                print(legacy_line(event), file=self.stderr, flush=True)
            if event.command:
                self.notifier.notify(event, list(event.command), event.timeout)

    def _log(self, event: AlertEvent) -> None:
        level = Level.INFO if event.kind == "cleared" else Level.WARNING
        self.log.add(
            event.time, level, SOURCE, describe(event),
            rule=event.rule, app=event.app, direction=event.direction, event=event.kind,
            average=f"{event.average:.0f}", threshold=f"{event.threshold:.0f}",
            window=f"{event.window:g}",
        )

    def update_rules(self, rules: Sequence[AlertSettings]) -> None:
        """Swap the rules at run time; pairs of rules kept by name keep their averages. An
        alert of a rule that is gone ends without a notice but this log line (event `ended`),
        so that nothing shows it as active any more."""
        kept = set(rule_keys(rules))
        for rule, app, direction in self.state.active():
            if rule not in kept:
                self.log.add(self.time, Level.INFO, SOURCE,
                             f"{app} {direction} alert ended: its rule [{rule}] was removed",
                             rule=rule, app=app, direction=direction, event="ended")
        self.rules = list(rules)

    async def close(self) -> None:
        """Let outstanding notification commands finish (or kill them)."""
        await self.notifier.close()


def attach(
    feed: SnapshotFeed, settings: Settings, *, stderr: TextIO | None = None
) -> tuple[AlertMonitor, Callable[[], None]]:
    """Subscribe an AlertMonitor for `settings.alerts` to `feed`; returns it and `unsubscribe`."""
    monitor = AlertMonitor(settings.alerts, settings.notify, feed.log, stderr=stderr)
    return monitor, feed.subscribe(monitor.on_snapshot)
