"""An edited bwmon.toml is applied while bwmon runs; a broken edit changes nothing."""

from __future__ import annotations

from pathlib import Path

from bwmon.core.config.loading import load_settings
from bwmon.core.config.reload import ConfigReloader
from bwmon.core.config.settings import AlertSettings, MonitorSettings, Settings
from bwmon.core.engine import Engine
from bwmon.core.model import Level
from tests.helpers.factories import process_info

CURL = process_info("curl", "curl https://example.org/", pid=7, user="u", uid=1000)


class FakePipes:
    def __init__(self) -> None:
        self.updates: list[list[MonitorSettings]] = []

    async def update(self, monitors: list[MonitorSettings]) -> None:
        self.updates.append(monitors)


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    # a new mtime even within the same clock tick: the size changes with the text too
    path.touch()


async def test_groups_alerts_pipes_and_view_follow_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "bwmon.toml"
    _write(cfg, '[[groups]]\nname = "Web"\npatterns = ["nginx"]\n')
    settings, _ = load_settings(cfg)
    engine = Engine(settings)
    pipes = FakePipes()
    engine.pipes = pipes
    rules: list[list[AlertSettings]] = []
    reloader = ConfigReloader(engine, cfg, lambda: load_settings(cfg)[0],
                              on_alerts=rules.append, wall=lambda: 0.0)
    assert engine.grouper.app_of(CURL) == "curl"
    assert not await reloader.check()  # unchanged file: nothing to do

    _write(cfg, '[general]\nbandwidth = false\nhistory_seconds = 60\n\n'
                '[[groups]]\nname = "Fetchers"\npatterns = ["curl|wget"]\n\n'
                '[[alerts]]\nname = "big"\nmatch = "curl"\nin_threshold = 10\n\n'
                '[[monitors]]\nname = "ssh"\ntype = "pipe"\nport = 2222\n'
                'target_host = "127.0.0.1"\ntarget_port = 22\nshape_in = 100\n')
    assert await reloader.check()
    assert engine.grouper.app_of(CURL) == "Fetchers"
    assert engine.settings.general.bandwidth is False
    assert [r.name for r in rules[-1]] == ["big"]
    assert pipes.updates[-1][0].shape_in == 100
    message = engine.log.tail(1)[0].message
    assert "reloaded" in message and "general.history_seconds" in message  # needs a restart


async def test_a_broken_edit_keeps_the_running_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "bwmon.toml"
    _write(cfg, '[[groups]]\nname = "Fetchers"\npatterns = ["curl"]\n')
    settings, _ = load_settings(cfg)
    engine = Engine(settings)

    def load() -> Settings:
        return load_settings(cfg)[0]

    reloader = ConfigReloader(engine, cfg, load, wall=lambda: 0.0)
    _write(cfg, '[[groups]]\nname = "Fetchers"\npatterns = ["curl("]\n')
    assert not await reloader.check()
    assert engine.grouper.app_of(CURL) == "Fetchers"
    event = engine.log.tail(1)[0]
    assert event.level == Level.WARNING and "not reloaded" in event.message
    assert "bwmon.toml:3" in event.message  # the error names the line
