"""AlertMonitor on a ManualFeed: what the alert log, stderr and the JSON stream receive."""

from __future__ import annotations

import io
import json
import re

import pytest

from bwmon.core.alerts.monitor import AlertMonitor, attach, event_to_json, legacy_line
from bwmon.core.alerts.rules import AlertEvent
from bwmon.core.config.settings import AlertSettings, NotifySettings, Settings
from bwmon.core.eventlog import EventLog
from bwmon.core.feed import ManualFeed
from bwmon.core.model import Level, Snapshot
from tests.helpers.factories import T0, app_row, snapshot

KIB = 1024.0


def snap(seq: int, rate_in: float, name: str = "ssh") -> Snapshot:
    return snapshot(seq, [app_row(name, rate_in)])


def ssh_rule(**kw: object) -> AlertSettings:
    return AlertSettings.model_validate({"name": "SSH", "match": "ssh", "in_threshold": 100, **kw})


def test_events_go_to_the_alert_log_with_levels_and_data() -> None:
    feed = ManualFeed()
    monitor = AlertMonitor([ssh_rule()], NotifySettings(), feed.log)
    feed.subscribe(monitor.on_snapshot)
    for seq, rate in enumerate((0, 250 * KIB, 250 * KIB, 10 * KIB)):
        feed.push(snap(seq, rate))
    alerts = [e for e in feed.log.tail() if e.source == "alert"]
    assert [e.level for e in alerts] == [Level.WARNING, Level.INFO]
    fired, cleared = alerts
    assert "ssh" in fired.message and "250 KiB/s" in fired.message
    assert "100 KiB/s" in fired.message and "back to normal" in cleared.message
    data = dict(fired.data)
    assert data["rule"] == "SSH" and data["direction"] == "in" and data["event"] == "fired"
    assert data["average"] == str(250 * 1024) and data["threshold"] == str(100 * 1024)
    assert fired.time == T0 + 1


def test_headless_stderr_gets_the_old_one_line_format() -> None:
    err = io.StringIO()
    log = EventLog()
    monitor = AlertMonitor([ssh_rule()], NotifySettings(), log, stderr=err)
    long_name = "ssh " + "x" * 80
    for seq, rate in enumerate((0, 150 * KIB, 1 * KIB)):
        monitor.on_snapshot(snap(seq, rate, long_name))
    first, second = err.getvalue().splitlines()
    pattern = (r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d: (.{50}) exceeding 'in' bandwidth limit"
               r" +100\.00: +150\.00 kB/s \(150\.00 %\)$")
    match = re.match(pattern, first)
    assert match, first
    assert match[1] == long_name[:47] + "..."
    assert "back to normal 'in'" in second and "1.00 kB/s (1.00 %)" in second


def test_quiet_unless_stderr_is_given(capsys: pytest.CaptureFixture[str]) -> None:
    monitor = AlertMonitor([ssh_rule()], NotifySettings(), EventLog())
    for seq, rate in enumerate((0, 150 * KIB)):
        monitor.on_snapshot(snap(seq, rate))
    assert len(monitor.events) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_update_rules_takes_effect_on_the_next_snapshot() -> None:
    log = EventLog()
    monitor = AlertMonitor([ssh_rule(in_threshold=500)], NotifySettings(), log)
    monitor.on_snapshot(snap(0, 0))
    monitor.on_snapshot(snap(1, 200 * KIB))
    assert monitor.events == []
    monitor.update_rules([ssh_rule(in_threshold=100)])
    monitor.on_snapshot(snap(2, 200 * KIB))
    assert [e.kind for e in monitor.events] == ["fired"]


def test_event_to_json_is_serialisable_and_complete() -> None:
    event = AlertEvent("SSH", "ssh", "out", "repeat", 123456.789, 102400.0, 5.0, T0)
    data = json.loads(json.dumps(event_to_json(event)))
    assert data == {"type": "alert", "time": T0, "rule": "SSH", "app": "ssh", "direction": "out",
                    "event": "repeat", "average": 123456.789, "threshold": 102400.0, "window": 5.0}


def test_legacy_line_of_a_repeat_says_exceeding_like_1_1_did() -> None:
    event = AlertEvent("SSH", "ssh", "out", "repeat", 204.8 * KIB, 100 * KIB, 5.0, T0)
    assert legacy_line(event).endswith(
        "ssh exceeding 'out' bandwidth limit     100.00:     204.80 kB/s (204.80 %)")


def test_attach_subscribes_settings_rules_to_a_feed() -> None:
    settings = Settings(alerts=[ssh_rule()])
    feed = ManualFeed()
    monitor, unsubscribe = attach(feed, settings)
    feed.push(snap(0, 0))
    feed.push(snap(1, 300 * KIB))
    assert [e.kind for e in monitor.events] == ["fired"]
    unsubscribe()
    feed.push(snap(2, 0))
    assert [e.kind for e in monitor.events] == ["fired"]


async def test_the_1_1_notification_file_drives_alerts_in_kib_per_second() -> None:
    from bwmon.core.config.legacy_ini import load_notification_config
    from tests.conftest import LEGACY

    rules = load_notification_config(LEGACY / "notifications.sample.cfg")
    log = EventLog()
    monitor = AlertMonitor(rules, NotifySettings(), log)
    # [wget] in_threshold=50 (kB/s, 1 kB = 1024 B), interval=5. 49.5 KiB/s is above 50 000 B/s
    # but below 50 KiB/s: a rule read as 1000-byte kB would fire.
    for seq in range(12):
        monitor.on_snapshot(snap(seq, 0 if seq == 0 else 49.5 * KIB, "wget"))
        assert monitor.events == []
    fired_at = []
    for seq in range(12, 20):
        monitor.on_snapshot(snap(seq, 60 * KIB, "wget"))
        fired_at += [(seq, e.rule, e.kind) for e in monitor.events]
    # 60 KiB/s replaces the 49.5 of the 5 s window one second at a time; the average passes
    # 50 KiB/s after one tick.
    assert fired_at == [(12, "wget", "fired")]
    await monitor.close()
    # notification_command=true ran and succeeded
    assert [dict(e.data)["status"] for e in log.tail() if e.source == "notify"] == ["0"]


def test_an_active_alert_whose_rule_is_removed_ends_in_the_log_and_the_header() -> None:
    """A config reload that drops a rule: its active alert is no longer evaluated, so the log
    says it ended and the TUI header's list of active alerts lets it go."""
    from bwmon.tui.active_alerts import ActiveAlerts

    log = EventLog()
    shown = ActiveAlerts()
    log.subscribe(shown.add)
    monitor = AlertMonitor([ssh_rule()], NotifySettings(), log)
    monitor.on_snapshot(snap(0, 0))
    monitor.on_snapshot(snap(1, 200 * KIB))
    assert shown.summary().startswith("ALERT ssh in")
    monitor.update_rules([])
    assert shown.summary() == ""
    ended = log.tail()[-1]
    assert dict(ended.data)["event"] == "ended" and "[SSH] was removed" in ended.message
