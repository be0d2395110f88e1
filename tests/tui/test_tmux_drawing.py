"""bwmon-tui in a real tmux with TERM=xterm-256color or xterm, a common setup: box drawing,
separators, bars and the help box come out whole (issue 23, item 2), also after a resize and
Ctrl+L. tmux's REP repeats only ASCII characters, so `─` followed by `ESC [ n b` used to show
one `─` where Textual drew a whole line. What tmux shows (capture-pane) is compared with what
Textual's own output of the same frames shows on an independent emulator (pyte)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.terminal import REPO, Terminal, Tmux

pytestmark = pytest.mark.terminal

RECORDER = REPO / "tests" / "tui" / "record_frames.py"
BARS = "▁▂▃▄▅▆▇█"


class Replay:
    """What Textual's own output of every recorded frame shows, row by row: the frames are
    played on one emulator as they are recorded (each once, not all again on every look)."""

    def __init__(self, record: Path) -> None:
        self.record = record
        self.textual: Terminal | None = None
        self.size: tuple[int, ...] = ()
        self.played = 0

    def screen(self) -> list[str]:
        lines = self.record.read_text().split("\n")[:-1]  # whole lines: each ends with \n
        for line in lines[self.played:]:
            frame = json.loads(line)
            if self.textual is None or tuple(frame["size"]) != self.size:
                self.size = tuple(frame["size"])
                if self.textual is None:
                    self.textual = Terminal(*self.size)
                else:
                    self.textual.resize(*self.size)
            self.textual.feed(frame["raw"].replace("\n", "\r\n"))  # as the tty delivers \n
        self.played = len(lines)
        assert self.textual is not None, "no frame recorded"
        return [row.rstrip() for row in self.textual.text()]


def shows_textuals_picture(tmux: Tmux, replay: Replay, what: str,
                           ready: Callable[[list[str]], bool], settle: float = 0.2) -> list[str]:
    """tmux's picture once it is `ready` (shows what the keys just sent bring) and the same as
    Textual's, looked at `settle` seconds after the keys and then every 0.2 s; fails naming
    the first row that differs."""
    shown: list[str] = []
    expected: list[str] = []
    deadline = time.monotonic() + 10  # the last frame may still be on its way
    time.sleep(settle - 0.2)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        shown = [row.rstrip() for row in tmux.screen().splitlines()]
        expected = replay.screen()[:len(shown)]
        if shown == expected and ready(shown):
            return shown
    wrong = next((y for y, (a, b) in enumerate(zip(shown, expected, strict=False)) if a != b),
                 min(len(shown), len(expected)))
    if shown == expected:
        pytest.fail(f"{what}: tmux shows what Textual drew, but not what it should:\n"
                    + "\n".join(shown), pytrace=False)
    pytest.fail(f"{what}: tmux row {wrong} of {len(shown)} is\n  {shown[wrong:wrong + 1]!r}\n"
                f"but Textual drew\n  {expected[wrong:wrong + 1]!r}", pytrace=False)


def has_box(screen: list[str]) -> bool:
    return any(re.search("╭─+╮", row) for row in screen) and any(
        re.search("╰─+╯", row) for row in screen)


def box(screen: list[str]) -> tuple[int, int]:
    """The help box's left and right border columns, checked on every row of it."""
    top = next(y for y, row in enumerate(screen) if re.search("╭─+╮", row))
    bottom = next(y for y, row in enumerate(screen) if re.search("╰─+╯", row))
    m = re.search("╭─+╮", screen[top])
    assert m is not None and m.end() - m.start() > 40, screen[top]
    left, right = m.start(), m.end() - 1
    assert screen[bottom].index("╰") == left and screen[bottom].index("╯") == right
    for row in screen[top + 1:bottom]:
        assert row[left] == "│" and row[right] == "│", row
    return left, right


TERMS = ("xterm-256color", "xterm")


def start(term: str, record: Path) -> Tmux:
    # COLUMNS and LINES, if the test's environment has them, would win over the pane's size.
    command = (f"cd {REPO} && env -u COLUMNS -u LINES TERM={term} BWMON_GENERAL__INTERVAL=0.25 "
               f"{sys.executable} {RECORDER} {record} --demo 30")
    return Tmux(f"bwmon-draw-{os.getpid()}-{term}", command, (120, 40))


def check_drawing(tmux: Tmux, record: Path, term: str) -> None:
    tmux.wait(lambda s: sum(s.count(bar) for bar in BARS) > 20, timeout=60)  # trends drawn
    replay = Replay(record)
    tmux.keys("Space")  # pause: the picture stands still to be compared
    screen = shows_textuals_picture(tmux, replay, f"{term}: main screen", lambda s: any(
        "PAUSED" in row for row in s) and any(row.strip(" ") == "─" * 120 for row in s))
    assert any(row.strip(" ") == "─" * 120 for row in screen), f"{term}: no whole separator"
    tmux.keys("?")
    box(shows_textuals_picture(tmux, replay, f"{term}: help box", has_box))
    tmux.keys("?")  # closed again
    subprocess.run([*tmux.base, "resize-window", "-t", "main", "-x", "100", "-y", "30"],
                   check=True)
    screen = shows_textuals_picture(tmux, replay, f"{term}: after a resize to 100x30", lambda s: (
        len(s) == 30 and not has_box(s) and any(row == "─" * 100 for row in s)))
    assert len(screen) == 30 and any(row == "─" * 100 for row in screen), term
    tmux.keys("?")
    box(shows_textuals_picture(tmux, replay, f"{term}: help box at 100x30", has_box))
    tmux.keys("C-l")  # redraw: everything sent again (nothing on the screen says when)
    box(shows_textuals_picture(tmux, replay, f"{term}: help box after Ctrl+L", has_box,
                               settle=0.7))
    tmux.keys("?")
    tmux.keys("q")
    tmux.wait(lambda s: tmux.pane_dead(), timeout=20)


def test_lines_bars_and_help_box_are_whole_in_tmux(tmp_path: Path) -> None:
    """With TERM=xterm-256color and with TERM=xterm: both panes start at once (their start,
    most of the time, is shared), then each is checked in turn."""
    if shutil.which("tmux") is None:
        pytest.fail("needs tmux (Debian: tmux)", pytrace=False)
    records = {term: tmp_path / f"frames-{term}.jsonl" for term in TERMS}
    panes: dict[str, Tmux] = {}
    try:
        for term in TERMS:
            panes[term] = start(term, records[term])
        for term in TERMS:
            check_drawing(panes[term], records[term], term)
    finally:
        for tmux in panes.values():
            tmux.kill()
