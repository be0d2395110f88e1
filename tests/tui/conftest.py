"""Fixtures for the TUI tests: deterministic demo data, a recording controller, UTC clock."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bwmon.core.config.settings import GroupSettings, Settings
from bwmon.core.feed import ManualFeed
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import RecordingController
from bwmon.tui.demo import demo_feed, demo_processes


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Event times print in local time; pin it so pictures and assertions repeat."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def feed() -> ManualFeed:
    return demo_feed(30, 10)


@pytest.fixture
def controller() -> RecordingController:
    settings = Settings(groups=[
        GroupSettings(name="browsers", patterns=["firefox", "chrom(e|ium)"]),
        GroupSettings(name="transfer", patterns=["rsync", "curl"]),
    ])
    return RecordingController(settings, demo_processes(10))


@pytest.fixture
def app(feed: ManualFeed, controller: RecordingController) -> BwmonApp:
    return BwmonApp(feed, controller, is_root=False)
