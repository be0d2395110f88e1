"""The alert log pane: time-stamped alerts, notification outcomes and source problems."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable

from rich.text import Text
from textual import events
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
    """A bounded RichLog that adds each event once, however many times it is offered, and
    wraps every line to the pane: nothing is cut off, at any width.

    (RichLog wraps to at least `min_width`, 78 by default, which is wider than the pane beside
    the detail view, and it keeps lines wrapped at the width they were written at: a narrower
    pane would cut them. So the minimum is 1, and a new width writes the kept lines again.)
    """

    def __init__(self, capacity: int = 500, *, id: str | None = None) -> None:
        super().__init__(max_lines=capacity, wrap=True, markup=False, auto_scroll=True,
                         min_width=1, id=id)
        self.capacity = capacity
        self.entries: deque[str] = deque(maxlen=capacity)  # the lines, as plain text
        self._lines: deque[Text] = deque(maxlen=capacity)
        self._seen: OrderedDict[LogEvent, None] = OrderedDict()
        self._wrapped_at = 0  # the content width the lines were written for

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
            self._lines.append(line)
            self.write(line, width=self._wrapped_at or None)
            added += 1
        return added

    def _wrap_width(self) -> int:
        """The text width of a line: the pane's, less a scroll bar's even before it shows
        (the bar appears once the lines fill the pane, and would cover their ends)."""
        width = self.scrollable_content_region.width
        if not self.show_vertical_scrollbar:
            width -= self.styles.scrollbar_size_vertical
        return max(1, width)

    def on_resize(self, event: events.Resize) -> None:
        super().on_resize(event)
        width = self._wrap_width() if event.size.width else 0
        if width and width != self._wrapped_at:  # (re)wrap every kept line to the new width
            self._wrapped_at = width
            self.clear()
            for line in self._lines:
                self.write(line, width=width)
