"""The alert log pane: time-stamped alerts, notification outcomes and source problems."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from bwmon.core.model import Level, LogEvent
from bwmon.tui.format import clock

_LEVEL_STYLE = {Level.INFO: "", Level.WARNING: "bold yellow", Level.ERROR: "bold red"}
_LEVEL_TAG = {Level.INFO: "info", Level.WARNING: "WARN", Level.ERROR: "ERR "}


def event_line(event: LogEvent) -> Text:
    line = Text()
    line.append(clock(event.time) + " ", style="dim")
    line.append(_LEVEL_TAG[event.level] + " ", style=_LEVEL_STYLE[event.level])
    line.append(f"{event.source}: ", style="bold")
    line.append(event.message)
    return line


class AlertLog(RichLog):
    """A bounded RichLog that adds each event once, however many times it is offered."""

    def __init__(self, capacity: int = 500, *, id: str | None = None) -> None:
        super().__init__(max_lines=capacity, wrap=True, markup=False, auto_scroll=True, id=id)
        self.capacity = capacity
        self.entries: deque[str] = deque(maxlen=capacity)
        self._seen: OrderedDict[LogEvent, None] = OrderedDict()

    def add_events(self, events: Iterable[LogEvent]) -> int:
        """Write the events not shown yet, oldest first; returns how many were new."""
        added = 0
        for event in sorted(events, key=lambda e: e.time):
            if event in self._seen:
                continue
            self._seen[event] = None
            while len(self._seen) > 4 * self.capacity:
                self._seen.popitem(last=False)
            line = event_line(event)
            self.entries.append(line.plain)
            self.write(line)
            added += 1
        return added
