"""The history view (h) with a store that cannot be written, in a real tmux pane at 80x24:
found trying bwmon-tui with `history.path` under a directory that cannot be made. The view
said "cannot be written now: the alert log says why" (the log is hidden at 80x24, behind the
detail pane) and then "no history store … yet: bwmon records one while it runs", which it
cannot. It must say why, and nothing that contradicts it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers.terminal import REPO, Tmux
from tests.tui.test_ssh_e2e import tui_command

pytestmark = pytest.mark.terminal  # a real tmux pane: run once, on python3

def test_history_view_says_why_the_store_cannot_be_written(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux (Debian: tmux)")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the store's directory should be\n")
    config = tmp_path / "bwmon.toml"
    config.write_text(f'[general]\nevents = false\nebpf = "off"\n\n[history]\n'
                      f'path = "{blocker}/history.sqlite"\n')
    command = f"env PYTHONPATH={REPO} {tui_command()} --config {config}"
    with Tmux(f"bwmon-hist-unwritable-{os.getpid()}", command, (80, 24),
              env={"TERM": "xterm-256color"}) as tmux:
        tmux.wait(lambda s: "In/s" in s, 30)
        tmux.keys("h")
        screen = tmux.wait(lambda s: "History" in s and "cannot" in s, 15)
        text = " ".join(screen.split())
        assert f"cannotcreatethedirectory{blocker}" in "".join(screen.split()), screen
        assert "records one while it runs" not in text, screen
        assert "history.path" in text, screen
