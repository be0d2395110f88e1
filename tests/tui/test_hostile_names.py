"""A process named with terminal escapes, in a real tmux pane running bwmon-tui (issue 25).

`exec -a $'\\e]0;PWNED\\a\\e[2Jx'` would set root's pane title and wipe the screen every frame;
an OSC 52 name would write the clipboard. The names must show as visible escapes instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.hostile import CLIPBOARD, TITLE_AND_CLEAR, named_sender, socat_sink
from tests.helpers.netns import NetNS
from tests.helpers.terminal import REPO, Tmux
from tests.tui.test_ssh_e2e import tui_command

pytestmark = pytest.mark.privileged
PORT = 6001


def test_escape_names_change_no_pane_title_clipboard_or_screen(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux (Debian: tmux)")
    config = tmp_path / "bwmon.toml"
    config.write_text("")
    with NetNS() as ns:
        socat_sink(ns, PORT)
        named_sender(ns, TITLE_AND_CLEAR, PORT, comm=TITLE_AND_CLEAR)
        named_sender(ns, CLIPBOARD, PORT, comm=CLIPBOARD)
        command = (f"ip netns exec {ns.name} env PYTHONPATH={REPO} {tui_command()} "
                   f"--config {config}")
        tmux = Tmux(f"bwmon-hostile-{os.getpid()}", command, (140, 40))
        subprocess.run([*tmux.base, "set-option", "-s", "set-clipboard", "on"], check=True)

        def title() -> str:
            return subprocess.run([*tmux.base, "display-message", "-p", "-t", "main",
                                   "#{pane_title}"], capture_output=True, text=True).stdout

        def drawn(screen: str) -> bool:
            """A whole frame is on the screen, not one caught while it was being written (its
            header first drawn: a name that wiped the screen would keep it from coming back)."""
            return screen.startswith(" In ")

        try:
            first = tmux.wait(lambda s: ("PWNED" in s or "PWNED" in title()) and drawn(s),
                              timeout=60)
            # the detail pane shows the selected row's whole name: look at both rows
            tmux.keys("Down")
            second = tmux.wait(lambda s: s != first and drawn(s), timeout=20)
            tmux.keys("Up")
            third = tmux.wait(lambda s: s != second and drawn(s), timeout=20)
            assert "PWNED" not in title()
            screens = first + second + third
            assert "\\x1b]0;PWNED\\x07\\x1b[2Jx" in screens, screens
            assert "\\x1b]52;c;cHduZWQ=\\x07clip" in screens, screens
            for screen in (first, second, third):  # the header was not wiped
                assert screen.splitlines()[0].startswith(" In "), screen
            buffers = subprocess.run([*tmux.base, "list-buffers"], capture_output=True,
                                     text=True).stdout
            assert buffers == "", f"OSC 52 reached the clipboard: {buffers}"
        finally:
            tmux.kill()
