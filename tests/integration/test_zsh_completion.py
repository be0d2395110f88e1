"""The generated zsh completion in a real zsh, typed into a real tmux pane with Tab."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import REPO

COMPLETIONS = REPO / "contrib" / "completions"


class Pane:
    def __init__(self) -> None:
        self.socket = f"bwmon-zsh-{os.getpid()}"
        self.tmux("new-session", "-d", "-x", "160", "-y", "30",
                  f"env -i TERM=xterm HOME={REPO} PATH=/usr/bin:/bin zsh -f")
        self.type(f"fpath=({COMPLETIONS} $fpath); autoload -U compinit; compinit -u -D; "
                  f"cd {REPO}; echo RE''ADY", "Enter")
        self.wait_for("READY\n", 10)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, text=True,
                              capture_output=True, timeout=10).stdout

    def type(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p")

    def wait_for(self, text: str, timeout: float = 5) -> str:
        deadline = time.monotonic() + timeout
        while text not in (screen := self.screen()):
            assert time.monotonic() < deadline, f"{text!r} never showed:\n{screen}"
            time.sleep(0.1)
        return screen

    def complete(self, line: str, expect: str) -> str:
        self.type("C-u", "clear", "Enter")
        time.sleep(0.2)
        self.type(line, "Tab")
        return self.wait_for(expect)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True,
                       timeout=10)


@pytest.fixture
def pane() -> Iterator[Pane]:
    p = Pane()
    try:
        yield p
    finally:
        p.close()


def test_zsh_completes_subcommands_flags_and_describes_them(pane: Pane) -> None:
    pane.complete("bwmon do", "bwmon doctor")
    screen = pane.complete("bwmon doctor --", "--json")
    assert "apply the fixes" in screen  # flags come with their help
    screen = pane.complete("bwmon config ex", "export-rules")
    assert "example" in screen and "Prometheus recording and alerting rules" in screen
    pane.complete("bwmon-tui --no-m", "bwmon-tui --no-mouse")
    pane.complete("bwmon monitor --config docs/man/bwmon.", "docs/man/bwmon.1")
