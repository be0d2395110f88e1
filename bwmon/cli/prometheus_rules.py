"""`bwmon config export-rules`: bwmon.toml's [[alerts]] as Prometheus recording and alerting
rules, so a fleet alerts in Prometheus as each host's bwmon would.

Two traps are handled here, not left to the user:
- bwmon's `match` is *searched* (Python `re.search`), PromQL's `=~` is anchored at both ends:
  the pattern becomes `.*(?:MATCH).*`. Python-only syntax (look-around, back-references) has no
  RE2 equivalent and is refused with the rule's name.
- bwmon's thresholds are kB/s with 1 kB = 1024 bytes, as in bwmon 1.1: `threshold × 1024`
  bytes/s.
What cannot be carried over is said in the rules file: /metrics carries app names, not command
lines, so `match` is tried on the app label only; `window` shorter than a few scrapes cannot be
averaged by rate(); commands become Alertmanager's business.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from bwmon.core.alerts.rules import rule_keys
from bwmon.core.config.settings import KB, AlertSettings, Settings
from bwmon.core.errors import UserError

RECORD = "bwmon:alert_rate_bytes_per_second"
ALERT = "BwmonBandwidth"
# rate() needs two samples in its range; this many scrape intervals keep a late scrape harmless
MIN_SCRAPES_PER_RANGE = 4
BY = "instance, job, app"
# Python regex syntax that RE2 (PromQL) lacks, with what to say about it
_NOT_RE2 = (
    (re.compile(r"\(\?<?[=!]"), "look-ahead or look-behind"),
    (re.compile(r"\(\?P=|\\[1-9]"), "a back-reference"),
    (re.compile(r"\(\?>|[*+?}][+]"), "an atomic group or possessive quantifier"),
    (re.compile(r"\\Z"), r"\Z (RE2 spells it \z)"),
)


def promql_regex(match: str, rule: str) -> str:
    """A PromQL label matcher value that finds `match` anywhere, as bwmon's re.search does."""
    for syntax, what in _NOT_RE2:
        if syntax.search(match):
            raise UserError(f"alert rule {rule!r}: match {match!r} uses {what}, which "
                            "Prometheus (RE2) does not support; rewrite it without")
    return f".*(?:{match}).*"


def promql_string(text: str) -> str:
    """`text` as a PromQL string literal: raw (backticks) unless it holds a backtick."""
    if "`" not in text:
        return f"`{text}`"
    return json.dumps(text)  # a Go-style double-quoted string


def _seconds(value: float) -> str:
    return f"{max(1, round(value))}s"


def _rate(rule: AlertSettings, direction: str, scrape_interval: float) -> str:
    app = promql_string(promql_regex(rule.match, rule.name))
    rng = _seconds(max(rule.window, MIN_SCRAPES_PER_RANGE * scrape_interval))
    apps = f'rate(bwmon_app_bytes_total{{direction="{direction}",app=~{app}}}[{rng}])'
    # pipes are rows bwmon's rules see too; in /metrics they are bwmon_pipe_bytes_total{pipe}
    pipes = (f'label_replace(rate(bwmon_pipe_bytes_total{{direction="{direction}",'
             f'pipe=~{app}}}[{rng}]), "app", "$1", "pipe", "(.*)")')
    return f"sum by ({BY}) ({apps})\nor sum by ({BY}) ({pipes})"


def _block(key: str, text: str) -> list[str]:
    """A YAML literal block: PromQL as written, no escaping needed."""
    return [f"    {key}: |-", *(f"      {line}" for line in text.splitlines())]


def _yaml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar


def _rules(settings: Settings, scrape_interval: float) -> Iterator[tuple[str, list[str]]]:
    """(key, YAML lines of its recording and alerting rules) per rule and direction."""
    for key, rule in zip(rule_keys(settings.alerts), settings.alerts, strict=True):
        for direction, kbs in (("in", rule.in_threshold), ("out", rule.out_threshold)):
            if not kbs:
                continue
            limit = kbs * KB
            clear = limit * (1 - rule.hysteresis)
            series = f'{RECORD}{{rule={_label(key)},direction="{direction}"}}'
            firing = (f'ALERTS{{alertname="{ALERT}",alertstate="firing",rule={_label(key)},'
                      f'direction="{direction}"}}')
            expr = (f"{series} > {limit:g}\nor ({series} > {clear:g}\n"
                    f"    and on ({BY}, rule, direction) {firing})")
            notes = []
            if rule.window < MIN_SCRAPES_PER_RANGE * scrape_interval:
                notes.append(f"bwmon averages over {rule.window:g} s; rate() here over "
                             f"{MIN_SCRAPES_PER_RANGE} scrapes")
            if rule.command or rule.clear_command:
                notes.append("its command runs in bwmon; route this alert in Alertmanager")
            lines = [
                f"  # [[alerts]] {key}: match {rule.match!r} (searched in the app name), "
                f"{direction} above {kbs:g} kB/s = {limit:g} B/s, clears below {clear:g} B/s",
                *(f"  # {note}" for note in notes),
                f"  - record: {RECORD}",
                *_block("expr", _rate(rule, direction, scrape_interval)),
                "    labels:",
                f"      rule: {_yaml(key)}",
                f"      direction: {_yaml(direction)}",
                f"  - alert: {ALERT}",
                *_block("expr", expr),
                "    labels:",
                f"      rule: {_yaml(key)}",
                f"      direction: {_yaml(direction)}",
                "      severity: warning",
                "    annotations:",
                "      summary: " + _yaml(
                    f"{{{{ $labels.app }}}} on {{{{ $labels.instance }}}}: {direction} "
                    f"{{{{ $value | humanize1024 }}}}B/s, above bwmon rule {key} "
                    f"({kbs:g} kB/s)"),
            ]
            yield key, lines


def _label(value: str) -> str:
    return json.dumps(value)


def export_rules(settings: Settings, *, scrape_interval: float = 15.0) -> str:
    """The rules file (YAML, for Prometheus' `rule_files`) for `settings.alerts`."""
    head = [
        "# Prometheus rules generated by `bwmon config export-rules` from bwmon.toml's [[alerts]].",
        "# Thresholds: bwmon's kB/s are 1024 bytes/s each. Matches: bwmon searches its regex,",
        "# PromQL anchors it, so each one is wrapped in .*(?:...).* here. A rule fires like",
        "# bwmon's: above the threshold, and stays firing until below",
        "# threshold x (1 - hysteresis). /metrics names apps, not command lines: a match on a",
        "# command line alone finds nothing here.",
        f"# Generated for scrape_interval {scrape_interval:g}s.",
        "groups:",
        "- name: bwmon-alerts",
        "  rules:",
    ]
    body = [line for _, lines in _rules(settings, scrape_interval) for line in lines]
    if not body:
        head[-1] = "  rules: []  # bwmon.toml has no [[alerts]] with a threshold"
    return "\n".join(head + body) + "\n"
