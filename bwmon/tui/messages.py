"""Messages from the feed to the app. A newer snapshot replaces one still queued, so a slow
terminal skips frames instead of falling behind (toolong's trick)."""

from __future__ import annotations

from textual.message import Message

from bwmon.core.model import Snapshot


class SnapshotReady(Message):
    """The feed published `snapshot`."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotReady)
