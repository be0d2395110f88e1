"""What the output layer may use beyond plain cursor moves, as terminfo says for TERM: REP
(repeat the last character) and tab stops. Each is used only where it is shorter, and the
terminal shows the same as without it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bwmon.tui.output.moves import cursor_move
from tests.helpers.terminal import REPO, Terminal
from tests.tui.test_screen_diff import GRAPH, ROW, Pair, line

_PROBE = """
import json, os, pty, sys, termios
from bwmon.tui.output.driver import terminal_caps
fd = None
if sys.argv[2] != "plain":
    master, fd = pty.openpty()
    attrs = termios.tcgetattr(fd)
    if sys.argv[2] == "tab3":  # a tty that expands tabs into spaces
        attrs[1] = (attrs[1] & ~termios.TABDLY) | termios.TAB3 | termios.OPOST
    elif sys.argv[2] == "raw":  # no output processing: a line feed keeps the column
        attrs[1] &= ~termios.OPOST
    else:  # "onlcr": as a tty normally is, a line feed goes out as CR LF
        attrs[1] |= termios.OPOST | termios.ONLCR
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
print(json.dumps(terminal_caps(sys.argv[1], fd)))
"""


def caps(term: str, tty: str = "plain") -> list[object]:
    """terminal_caps in a fresh process (curses reads one terminfo entry per process)."""
    done = subprocess.run([sys.executable, "-c", _PROBE, term, tty], capture_output=True,
                          text=True, cwd=REPO, check=True)
    return list(json.loads(done.stdout))


# [REP, tab stops every n, may set its own stops, line feed lands in column 0]
@pytest.mark.parametrize(("term", "tty", "expected"), [
    ("xterm-256color", "plain", [True, 8, True, False]),
    ("tmux-256color", "plain", [False, 8, True, False]),  # tmux's terminfo has no REP
    ("linux", "plain", [False, 8, True, False]),
    ("vt52", "plain", [False, 8, False, False]),  # tabs, but no hts/tbc to set them
    ("xterm-256color", "tab3", [True, 0, False, True]),  # tabs would arrive as spaces
    ("xterm-256color", "onlcr", [True, 8, True, True]),
    ("xterm-256color", "raw", [True, 8, True, False]),
    ("no-such-terminal", "plain", [False, 0, False, False]),
    ("", "plain", [False, 0, False, False]),
])
def test_capabilities_come_from_terminfo(term: str, tty: str, expected: list[object]) -> None:
    assert caps(term, tty) == expected


def test_runs_of_one_character_are_sent_with_rep_only_when_the_terminal_has_it() -> None:
    """A highlighted row moving: its blanks and bars arrive as one character and a repeat
    count where the terminal has REP, and look the same either way."""
    row = "\x1b[38;5;16;48;5;39m"
    frames = [line(1, 0, (ROW, "app-1" + " " * 30 + "1.00 KiB"), (GRAPH, "▇▇▇▇▇▇")),
              line(1, 0, (row, "app-1" + " " * 30 + "1.00 KiB"), (GRAPH, "▇▇▇▇▇▇"))]
    sent = {}
    for rep in (False, True):
        pair = Pair(60, 4, rep=rep)
        pair.show(frames[0])
        sent[rep] = pair.show(frames[1])  # every cell's pen changed: all re-sent
    assert "\x1b[29b" in sent[True] and "b" not in sent[False].replace("app-1", "")
    assert len(sent[True]) < len(sent[False]) - 20


@pytest.mark.parametrize(("frm", "to", "move"), [
    ((50, 3), (64, 3), "\t\t"),  # two tab stops: 56, 64
    ((50, 3), (63, 3), "\t\t\b"),  # to the stop after it, one back
    ((9, 2), (72, 2), "\x1b[63C"),  # seven tabs would be longer than the column move
    ((110, 0), (118, 0), "\x1b[8C"),  # no tab stop at column 120 on a 120-column screen
])
def test_tab_moves_land_where_meant_and_only_when_shorter(
        frm: tuple[int, int], to: tuple[int, int], move: str) -> None:
    assert cursor_move(*frm, *to, 8, 120) == move
    term = Terminal(120, 8)
    term.feed(cursor_move(None, None, *frm) + move)
    assert (term.screen.cursor.x, term.screen.cursor.y) == to


def test_no_tabs_without_tab_stops() -> None:
    assert "\t" not in cursor_move(50, 3, 64, 3)
