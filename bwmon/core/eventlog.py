"""The alert log: a bounded list of time-stamped events that consumers can follow."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from bwmon.core.model import Level, LogEvent


class EventLog:
    """Alerts, notification outcomes and source problems, newest last, at most `capacity`."""

    def __init__(self, capacity: int = 500) -> None:
        self._events: deque[LogEvent] = deque(maxlen=capacity)
        self._subscribers: list[Callable[[LogEvent], None]] = []
        self.count = 0  # events ever appended (for "new since" checks)

    def append(self, event: LogEvent) -> None:
        self._events.append(event)
        self.count += 1
        for callback in list(self._subscribers):
            callback(event)

    def add(
        self, time: float, level: Level, source: str, message: str, **data: object
    ) -> LogEvent:
        event = LogEvent(time, level, source, message, tuple((k, str(v)) for k, v in data.items()))
        self.append(event)
        return event

    def tail(self, n: int | None = None) -> tuple[LogEvent, ...]:
        events = tuple(self._events)
        return events if n is None else events[-n:]

    def subscribe(self, callback: Callable[[LogEvent], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)
