"""Alert evaluation: a pure step from (rules, state, snapshot) to (new state, alert events).

Each (rule, app) pair keeps the rates of the last `window` seconds, weighted by the time each
tick covers; time before the app (or bwmon) was first seen counts as idle. Per direction an
alert fires once when the average crosses above the threshold, repeats after the cooldown while
still above, and clears only when the average falls below threshold × (1 − hysteresis).
No clock, no I/O: time comes from the snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bwmon.core.config.settings import KB, AlertSettings
from bwmon.core.model import AppRow, Snapshot
from bwmon.core.regrouping import Moves

Direction = Literal["in", "out"]
EventKind = Literal["fired", "repeat", "cleared"]
DIRECTIONS: tuple[Direction, ...] = ("in", "out")


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert happening. Rates in bytes/s, window in seconds, time in epoch seconds.

    `command` is the argv template the rule asks to run for this event (its `command` for
    fired/repeat, its `clear_command` for cleared), empty when there is none.
    """

    rule: str
    app: str
    direction: Direction
    kind: EventKind
    average: float
    threshold: float
    window: float
    time: float
    command: tuple[str, ...] = ()
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class _Sample:
    elapsed: float
    rate_in: float
    rate_out: float


@dataclass(frozen=True, slots=True)
class Window:
    """The samples of the last `length` seconds with running sums, so averaging is O(1).

    Invariant after `add`: the samples after the oldest cover less than `length` seconds, so
    only the oldest can straddle the window's start.
    """

    samples: tuple[_Sample, ...] = ()
    span: float = 0.0  # seconds covered by all samples
    sum_in: float = 0.0  # ∑ rate × elapsed (bytes)
    sum_out: float = 0.0

    def add(self, sample: _Sample, length: float) -> Window:
        samples = (*self.samples, sample)
        span = self.span + sample.elapsed
        sum_in = self.sum_in + sample.rate_in * sample.elapsed
        sum_out = self.sum_out + sample.rate_out * sample.elapsed
        drop = 0
        while span - samples[drop].elapsed >= length:
            old = samples[drop]
            span -= old.elapsed
            sum_in -= old.rate_in * old.elapsed
            sum_out -= old.rate_out * old.elapsed
            drop += 1
        return Window(samples[drop:], span, sum_in, sum_out)

    def average(self, length: float, direction: Direction) -> float:
        """Mean rate over the last `length` seconds (see `window_average`)."""
        if not self.samples:
            return 0.0
        oldest = self.samples[0]
        rest = self.span - oldest.elapsed
        if rest >= length:  # the rule's window shrank since the last add
            return window_average(self.samples, length, direction)
        total, rate = (
            (self.sum_in, oldest.rate_in) if direction == "in" else (self.sum_out, oldest.rate_out)
        )
        part = min(oldest.elapsed, length - rest)
        return max(0.0, total - rate * (oldest.elapsed - part)) / length


@dataclass(frozen=True, slots=True)
class PairState:
    """What one (rule, app) pair remembers: recent samples and, per direction, alert status."""

    window: Window = Window()
    active_in: bool = False
    active_out: bool = False
    last_in: float = 0.0  # time of the last fired/repeat notice
    last_out: float = 0.0

    def active(self, direction: Direction) -> bool:
        return self.active_in if direction == "in" else self.active_out

    def last(self, direction: Direction) -> float:
        return self.last_in if direction == "in" else self.last_out

    def with_status(self, direction: Direction, active: bool, last: float) -> PairState:
        if direction == "in":
            return PairState(self.window, active, self.active_out, last, self.last_out)
        return PairState(self.window, self.active_in, active, self.last_in, last)

    def with_window(self, window: Window) -> PairState:
        return PairState(window, self.active_in, self.active_out, self.last_in, self.last_out)


PairKey = tuple[str, str]  # (rule key, app name)


@dataclass(frozen=True, slots=True)
class AlertState:
    """The evaluator's memory between snapshots; treat as immutable (`evaluate` makes a new one)."""

    pairs: Mapping[PairKey, PairState] = field(default_factory=dict)

    def active(self) -> list[tuple[str, str, Direction]]:
        """(rule key, app, direction) of every alert currently above its threshold."""
        return [
            (rule, app, d)
            for (rule, app), pair in self.pairs.items()
            for d in DIRECTIONS
            if pair.active(d)
        ]


def rule_keys(rules: Sequence[AlertSettings]) -> list[str]:
    """A stable key per rule: its name, with `#2`, `#3`… for later rules of the same name."""
    seen: dict[str, int] = {}
    keys = []
    for rule in rules:
        seen[rule.name] = seen.get(rule.name, 0) + 1
        n = seen[rule.name]
        keys.append(rule.name if n == 1 else f"{rule.name}#{n}")
    return keys


def matches(pattern: re.Pattern[str], row: AppRow, field: str = "") -> bool:
    """A rule matches a row when its regex is found in the app name or any process command
    line; with `field` "container:" or "unit:" (a rule's `match = "container:RE"`), in any of
    its processes' container or unit names instead."""
    if field == "container:":
        return any(p.container and pattern.search(p.container) for p in row.processes)
    if field == "unit:":
        return any(p.unit and pattern.search(p.unit) for p in row.processes)
    if pattern.search(row.name):
        return True
    return any(pattern.search(p.cmdline) for p in row.processes)


def rule_pattern(match: str) -> tuple[str, re.Pattern[str]]:
    """(field, regex) of a rule's `match`: "container:RE" and "unit:RE" name a field."""
    for prefix in ("container:", "unit:"):
        if match.startswith(prefix):
            return prefix, re.compile(match[len(prefix):])
    return "", re.compile(match)


def window_average(samples: Sequence[_Sample], window: float, direction: Direction) -> float:
    """Time-weighted mean rate over the last `window` seconds; uncovered time counts as idle.

    The reference definition; `Window.average` gives the same figure from running sums.
    """
    left = window
    total = 0.0
    for s in reversed(samples):
        if left <= 0:
            break
        span = min(s.elapsed, left)
        total += span * (s.rate_in if direction == "in" else s.rate_out)
        left -= span
    return total / window


def _threshold(rule: AlertSettings, direction: Direction) -> float:
    """The rule's limit in bytes/s for one direction; 0 when it sets none."""
    kbs = rule.in_threshold if direction == "in" else rule.out_threshold
    return float(kbs) * KB if kbs else 0.0


def _event(
    rule: AlertSettings, app: str, d: Direction, kind: EventKind, avg: float, time: float
) -> AlertEvent:
    command = rule.clear_command if kind == "cleared" else rule.command
    return AlertEvent(
        rule=rule.name,
        app=app,
        direction=d,
        kind=kind,
        average=avg,
        threshold=_threshold(rule, d),
        window=rule.window,
        time=time,
        command=tuple(command),
        timeout=rule.timeout,
    )


def _step_direction(
    rule: AlertSettings, app: str, d: Direction, pair: PairState, now: float
) -> tuple[PairState, AlertEvent | None]:
    """Advance one direction of one pair: fire on crossing, repeat after cooldown, clear below."""
    threshold = _threshold(rule, d)
    if threshold <= 0:
        return pair, None
    avg = pair.window.average(rule.window, d)
    if not pair.active(d):
        if avg > threshold:
            return pair.with_status(d, True, now), _event(rule, app, d, "fired", avg, now)
        return pair, None
    if avg < threshold * (1.0 - rule.hysteresis):
        return pair.with_status(d, False, pair.last(d)), _event(rule, app, d, "cleared", avg, now)
    if avg > threshold and rule.cooldown > 0 and now - pair.last(d) >= rule.cooldown:
        return pair.with_status(d, True, now), _event(rule, app, d, "repeat", avg, now)
    return pair, None


def _gone(
    rule: AlertSettings, app: str, pair: PairState, now: float
) -> list[AlertEvent]:
    """A pair whose app vanished (or stopped matching): active alerts clear at rate 0."""
    return [_event(rule, app, d, "cleared", 0.0, now) for d in DIRECTIONS if pair.active(d)]


def _merged(parts: Sequence[tuple[PairState, float]]) -> PairState:
    """One pair from the shares of several: samples summed newest to newest, an alert active
    (with its last notice) if it was active in any of them."""
    longest = max((p.window.samples for p, _ in parts), key=len)
    samples = []
    for back in range(1, len(longest) + 1):
        rate_in = rate_out = 0.0
        for pair, share in parts:
            if back <= len(pair.window.samples):
                s = pair.window.samples[-back]
                rate_in += s.rate_in * share
                rate_out += s.rate_out * share
        samples.append(_Sample(longest[-back].elapsed, rate_in, rate_out))
    samples.reverse()
    window = Window(tuple(samples), sum(s.elapsed for s in samples),
                    sum(s.rate_in * s.elapsed for s in samples),
                    sum(s.rate_out * s.elapsed for s in samples))
    on = [p for p, share in parts if share > 0]
    return PairState(window, any(p.active_in for p in on), any(p.active_out for p in on),
                     max((p.last_in for p in on), default=0.0),
                     max((p.last_out for p in on), default=0.0))


def carry_over(state: AlertState, moves: Moves) -> AlertState:
    """Rows were renamed (groups changed): each (rule, row) pair goes along with the row's
    processes, so an alert already active for them stays active under the new name (it does
    not fire again, nor clear under the old one)."""
    if not moves:
        return state
    parts: dict[PairKey, list[tuple[PairState, float]]] = {}
    for (rule, app), pair in state.pairs.items():
        for target, share in moves.get(app, {app: 1.0}).items():
            parts.setdefault((rule, target), []).append((pair, share))
    return AlertState({key: found[0][0] if len(found) == 1 and found[0][1] == 1.0
                       else _merged(found) for key, found in parts.items()})


def evaluate(
    rules: Sequence[AlertSettings], state: AlertState, snapshot: Snapshot
) -> tuple[AlertState, list[AlertEvent]]:
    """One tick of alerting: returns the new state and the events this snapshot caused.

    Every row of `snapshot.apps` is checked against every rule, so apps that appear later are
    caught; pairs whose app is gone are dropped (clearing any alert they had raised). Pairs of
    rules no longer present are dropped silently.
    """
    now = snapshot.time
    state = carry_over(state, dict((old, dict(to)) for old, to in snapshot.regrouped))
    keys = rule_keys(rules)
    new_pairs: dict[PairKey, PairState] = {}
    events: list[AlertEvent] = []
    for key, rule in zip(keys, rules, strict=True):
        if not (_threshold(rule, "in") or _threshold(rule, "out")):
            continue
        field, pattern = rule_pattern(rule.match)
        for row in snapshot.apps:
            if not matches(pattern, row, field):
                continue
            pair = state.pairs.get((key, row.name), PairState())
            if snapshot.elapsed > 0:
                sample = _Sample(snapshot.elapsed, max(row.rate_in, 0.0), max(row.rate_out, 0.0))
                pair = pair.with_window(pair.window.add(sample, rule.window))
            for d in DIRECTIONS:
                pair, event = _step_direction(rule, row.name, d, pair, now)
                if event is not None:
                    events.append(event)
            new_pairs[(key, row.name)] = pair
    by_key = dict(zip(keys, rules, strict=True))
    for (key, app), pair in state.pairs.items():
        if (key, app) not in new_pairs and key in by_key:
            events.extend(_gone(by_key[key], app, pair, now))
    return AlertState(new_pairs), events
