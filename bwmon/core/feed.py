"""What consumers (TUI, printers, HTTP, alerts) depend on: a feed of snapshots.

The engine is one; `ManualFeed` is another, published to by hand, for tests, screenshots and
demos. Consumers never poll sources: they subscribe and receive each new Snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from bwmon.core.eventlog import EventLog
from bwmon.core.history import History
from bwmon.core.model import Snapshot

SnapshotCallback = Callable[[Snapshot], None]


class SnapshotFeed(Protocol):
    history: History
    log: EventLog

    @property
    def latest(self) -> Snapshot | None: ...

    def subscribe(self, callback: SnapshotCallback) -> Callable[[], None]:
        """Call `callback(snapshot)` in the event loop after every tick; returns unsubscribe."""
        ...


class Publisher:
    """Subscriber bookkeeping shared by the engine and ManualFeed."""

    def __init__(self, history_capacity: int = 600, log_capacity: int = 500) -> None:
        self.history = History(history_capacity)
        self.log = EventLog(log_capacity)
        self._latest: Snapshot | None = None
        self._subscribers: list[SnapshotCallback] = []

    @property
    def latest(self) -> Snapshot | None:
        return self._latest

    def subscribe(self, callback: SnapshotCallback) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, snapshot: Snapshot) -> None:
        self._latest = snapshot
        for callback in list(self._subscribers):
            callback(snapshot)


class ManualFeed(Publisher):
    """A feed driven by hand: `push(snapshot)` records history and notifies subscribers."""

    def push(self, snapshot: Snapshot) -> None:
        self.history.record(snapshot.time, snapshot.apps)
        self.publish(snapshot)
