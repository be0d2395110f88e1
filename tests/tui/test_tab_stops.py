"""The output layer's own tab stops and line feeds: set where a screen's figures keep changing,
so that the moves between them cost a byte or two; the terminal shows exactly the same, the
stops are put back when the program leaves, and a resize (tmux resets stops) is safe. Tabs
are used only once the terminal has answered that its stops are where they are meant to be."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pyte
import pytest

from bwmon.tui.output.moves import cursor_move
from bwmon.tui.output.screen import ScreenDiff
from bwmon.tui.output.tab_stops import TUNE_EVERY, set_stops_sequence, tab_moves
from tests.helpers.terminal import Terminal, first_difference
from tests.tui.test_screen_diff import ROW, line

DEFAULT_STOPS = set(range(8, 120, 8))


class TtyPair:
    """Frames shown raw on one emulator and through ScreenDiff on another, both as a tty
    with ONLCR delivers them (a line feed arrives as CR LF)."""

    def __init__(self, cols: int, rows: int, **options: Any) -> None:
        self.size = (cols, rows)
        self.diff = ScreenDiff(tabs=8, **options)
        self.raw = Terminal(cols, rows)
        self.ours = Terminal(cols, rows)

    def show(self, frame: str) -> str:
        out = self.diff.feed(frame, self.size)
        self.raw.feed(frame)
        self.ours.feed(out.replace("\n", "\r\n"))
        problem = first_difference(self.ours.cells(), self.raw.cells())
        assert problem is None, f"screens differ at {problem}; sent {out!r}"
        return out


def figures(tick: int, rows: int = 12) -> str:
    """A table whose figures change on every row each tick, at a few fixed columns, as
    bwmon-tui's rate, total and connection columns do."""
    return "".join(line(y, 0, (ROW, f"app-{y:02d}      {tick * 7 + y:4d} KiB{' ' * 15}"
                                    f"{tick * 3 + y:4d} MiB{' ' * 17}{tick % 9 + y:3d}"
                                    f"{' ' * 15}{(tick + y) % 10}"))
                   for y in range(rows))


def wire(out: str) -> int:
    return len(out.encode()) + out.count("\n")


def test_own_tab_stops_make_a_changing_table_cheaper_and_look_the_same() -> None:
    tuned, plain = TtyPair(120, 14, set_tabs=True, newline=True), TtyPair(120, 14)
    cost = {"tuned": 0, "plain": 0}
    for tick in range(3 * TUNE_EVERY):
        frame = figures(tick)
        out = tuned.show(frame)
        sent = plain.show(frame)
        if tick >= 2 * TUNE_EVERY:  # after the tuner has looked
            cost["tuned"] += wire(out)
            cost["plain"] += wire(sent)
    stops = tuned.ours.screen.tabstops
    assert stops != DEFAULT_STOPS and len(stops) < len(DEFAULT_STOPS), sorted(stops)
    assert cost["tuned"] < 0.8 * cost["plain"], cost
    # Leaving: the terminal's stops are every 8 columns again, for the shell.
    tuned.ours.feed(tuned.diff.restore_tabs())
    assert tuned.ours.screen.tabstops == DEFAULT_STOPS
    assert tuned.diff.restore_tabs() == ""  # nothing more to put back


def test_no_own_stops_without_the_capability() -> None:
    pair = TtyPair(120, 14)
    for tick in range(2 * TUNE_EVERY + 1):
        out = pair.show(figures(tick))
        assert "\x1bH" not in out and "\x1b[3g" not in out
    assert pair.diff.restore_tabs() == ""


def test_after_a_resize_the_default_stops_are_set_again_before_tabs_are_used() -> None:
    """tmux resets a pane's tab stops when it is resized, xterm keeps them: either way,
    after a resize our stops are unknown, so the defaults are set again (known state)."""
    pair = TtyPair(120, 14, set_tabs=True)
    for tick in range(2 * TUNE_EVERY + 1):
        pair.show(figures(tick))
    assert pair.ours.screen.tabstops != DEFAULT_STOPS
    pair.ours.screen.tabstops = set(range(8, 120, 8))  # as tmux does on a resize
    for term in (pair.raw, pair.ours):
        term.resize(110, 14)
        term.feed("\x1b[2J")
    pair.size = (110, 14)
    out = pair.show("\x1b[2J" + figures(99))
    assert out.startswith("\x1b[3g")
    assert pair.ours.screen.tabstops == set(range(8, 110, 8))


def test_line_feed_moves_to_the_next_row_only_where_the_tty_adds_the_cr() -> None:
    on, off = TtyPair(100, 6, newline=True), TtyPair(100, 6)
    for pair in (on, off):
        pair.show(figures(0, 4))
    assert "\n" in on.show(figures(1, 4))
    assert "\n" not in off.show(figures(1, 4))


@pytest.mark.parametrize(("stops", "frm", "to"), [
    ((13, 35, 59), (0, 2), (35, 2)),
    ((13, 35, 59), (14, 2), (58, 2)),  # to the stop after it, one back
    ((13, 35, 59), (60, 2), (70, 2)),  # past the last stop: no tab
    ((13, 35, 59), (40, 1), (13, 2)),  # next row, from column 0
])
def test_moves_with_own_stops_land_where_meant(stops: tuple[int, ...], frm: tuple[int, int],
                                               to: tuple[int, int]) -> None:
    term = Terminal(80, 4)
    term.feed(set_stops_sequence(stops, 0))
    assert term.screen.tabstops == set(stops)
    term.feed(cursor_move(None, None, *frm))
    move = cursor_move(*frm, *to, stops, 80, True)
    term.feed(move.replace("\n", "\r\n"))
    assert (term.screen.cursor.x, term.screen.cursor.y) == to, repr(move)


def test_tab_moves_never_tab_past_the_last_stop() -> None:
    assert tab_moves(60, 70, (13, 35, 59), 80) == []
    assert tab_moves(0, 35, (13, 35, 59), 80) == ["\t\t"]


def test_bwmon_tui_sets_its_stops_and_puts_them_back_on_quitting() -> None:
    """In a real pty (TERM=xterm-256color, ONLCR) with a terminal that answers: the terminal
    gets its own stops while the demo runs, and every 8 columns again after `q`."""
    from tests.helpers.terminal import PtyApp

    app = PtyApp(["--demo", "30"], size=(120, 40), env={"BWMON_GENERAL__INTERVAL": "0.25"})
    try:
        assert app.wait_for(b"firefox", timeout=60), bytes(app.output[-300:])
        term = Terminal(120, 40)
        seen = 0
        for _ in range(40):  # ~16 drawn frames are needed; a loaded machine draws fewer
            app.read_for(0.5)
            term.feed(bytes(app.output[seen:]).decode("utf-8", "replace"))
            seen = len(app.output)
            if term.screen.tabstops != DEFAULT_STOPS:
                break
        assert term.screen.tabstops != DEFAULT_STOPS  # set while it runs
        app.send(b"q")
        assert app.wait_exit() == 0, bytes(app.output[-500:])
    finally:
        app.close()
    term = Terminal(120, 40)
    term.feed(bytes(app.output).decode("utf-8", "replace"))
    assert term.screen.tabstops == DEFAULT_STOPS


def _demo_output(seconds: float = 5, **options: Any) -> bytes:
    """What bwmon-tui --demo sends in `seconds` (~20 frames: more than the tuner needs) and
    on quitting, in a pty with a terminal as in `options` (PtyApp)."""
    from tests.helpers.terminal import PtyApp

    env = {"BWMON_GENERAL__INTERVAL": "0.25", **options.pop("env", {})}
    app = PtyApp(["--demo", "30"], size=(120, 40), env=env, **options)
    try:
        assert app.wait_for(b"firefox", timeout=60), bytes(app.output[-300:])
        app.read_for(seconds)
        app.send(b"q")
        assert app.wait_exit() == 0, bytes(app.output[-500:])
    finally:
        app.close()
    return bytes(app.output)


def test_bwmon_tui_leaves_the_tab_stops_alone_when_told() -> None:
    """BWMON_TUI_TABSTOPS=0: the terminal's stops are never touched; tabs are still used,
    with its stops every 8 columns, once it has answered that they are."""
    out = _demo_output(env={"BWMON_TUI_TABSTOPS": "0"})
    assert b"\x1bH" not in out and b"\x1b[3g" not in out
    asked = out.index(b"\x1b[6n")
    assert b"\t" in out[asked:]


@pytest.mark.parametrize("terminal", ["silent", "stops every 4"])
def test_no_tabs_unless_the_terminal_shows_its_stops_are_every_8(terminal: str) -> None:
    """A terminal that does not answer the cursor position request, or whose stops are not
    every 8 columns (`tabs -4`), gets no tab after the question, and its stops are left as
    they are; the picture is drawn all the same."""
    options: dict[str, Any] = {"answer": False} if terminal == "silent" else {"tabs": 4}
    out = _demo_output(**options)
    asked = out.index(b"\x1b[6n")
    assert b"\t" not in out[asked + len(b"\x1b[6n"):]
    assert b"\x1bH" not in out and b"\x1b[3g" not in out
    assert out.count(b"firefox") >= 1


class _DeafToStops(Terminal):
    """An emulator that takes the sequences setting tab stops and does nothing with them."""

    def __init__(self, cols: int, rows: int) -> None:
        super().__init__(cols, rows)
        self.screen.set_tab_stop = lambda: None  # type: ignore[method-assign]
        self.screen.clear_tab_stop = lambda how=0: None  # type: ignore[method-assign]
        self.stream = pyte.Stream(self.screen)  # the stream binds the screen's methods


@pytest.mark.parametrize("takes_stops", [True, False])
def test_own_stops_are_used_only_once_the_terminal_shows_it_has_them(takes_stops: bool) -> None:
    """With the check on: no tab before the terminal answers the first question; then the
    tuner's own stops, asked about in turn. A terminal that took them: they are used, and
    put back on leaving. One that ignored the sequences: no tab is used after its answer,
    the screens still agree, and stops every 8 are sent on leaving all the same."""
    pair = TtyPair(120, 14, set_tabs=True, newline=True, check=True)
    if not takes_stops:
        pair.ours = _DeafToStops(120, 14)
    replies: list[str] = []  # the emulator's answers (CSI row ; column R), as a terminal's
    pair.ours.screen.write_process_input = replies.append  # type: ignore[method-assign]

    def answer() -> None:
        while replies:
            column = int(replies.pop(0).rstrip("R").split(";")[1])
            assert pair.diff.cursor_report(column - 1)

    assert "\t" not in pair.show(figures(0))  # not asked yet: no tab
    asked = pair.diff.ask_tabs()
    assert asked.endswith("\x1b[6n")
    pair.ours.feed(asked)
    assert "\t" not in pair.show(figures(1))  # asked, not answered: still none
    answer()
    used = sum("\t" in pair.show(figures(tick)) for tick in range(2, 6))
    assert used >= 3  # the terminal's stops every 8, confirmed
    own = ""
    for tick in range(6, 3 * TUNE_EVERY):
        out = pair.show(figures(tick))
        if "\x1bH" in out:
            own = out
            answer()
            break
    assert own, "the tuner set no stops of its own"
    later = "".join(pair.show(figures(tick)) for tick in range(40, 50))
    if takes_stops:
        assert "\t" in later and pair.ours.screen.tabstops != DEFAULT_STOPS
    else:
        assert "\t" not in later
        assert pair.diff.tuner is None  # no second try
    assert pair.diff.restore_tabs().startswith("\x1b[3g")
    assert pair.diff.cursor_report(5) is False  # nothing asked: not ours


def test_in_tmux_the_stops_are_confirmed_and_tabs_used(tmp_path: Path) -> None:
    """tmux, a real terminal implementation, answers the question about its stops: after the
    answer bwmon-tui moves with tabs (and sets its own stops), and the picture is right."""
    import shutil
    import sys

    from tests.helpers.terminal import REPO, Tmux

    if shutil.which("tmux") is None:
        pytest.fail("needs tmux (Debian: tmux)", pytrace=False)
    record = tmp_path / "frames.jsonl"
    command = (f"cd {REPO} && BWMON_GENERAL__INTERVAL=0.25 {sys.executable} "
               f"tests/tui/record_frames.py {record} --demo 30")
    tmux = Tmux(f"bwmon-stops-{os.getpid()}", command, (120, 40))
    try:
        tmux.wait(lambda s: "firefox" in s, timeout=60)
        time.sleep(6)  # ~24 frames: the answer, then the tuner's look at 16 frames
        tmux.keys("Space")  # pause: the picture stands still to be compared
        for _ in range(5):
            time.sleep(1.0)
            shown = [row.rstrip() for row in tmux.screen().splitlines()]
            frames = [json.loads(line) for line in record.read_text().splitlines()]
            textual = Terminal(120, 40)  # what Textual's own output of these frames shows
            for frame in frames:
                textual.feed(frame["raw"].replace("\n", "\r\n"))
            expected = [row.rstrip() for row in textual.text()][:len(shown)]
            if shown == expected:
                break
        tmux.keys("q")
        tmux.wait(lambda s: tmux.pane_dead(), timeout=20)
    finally:
        tmux.kill()
    assert shown == expected
    asked = next(i for i, f in enumerate(frames) if f.get("ask_tabs"))
    assert any("\t" in f["out"] for f in frames[asked + 1:])
    assert any("\x1bH" in f["out"] for f in frames[asked + 1:])


def test_stops_changed_while_suspended_end_the_use_of_tabs() -> None:
    """Back from Ctrl+Z the question is asked again (the driver asks on every start): no tab
    until the answer; an answer showing other stops (`tabs -4` run in the shell meanwhile)
    ends the use of tabs and of own stops."""
    pair = TtyPair(120, 14, set_tabs=True, newline=True, check=True)
    replies: list[str] = []
    pair.ours.screen.write_process_input = replies.append  # type: ignore[method-assign]

    def ask_and_answer() -> None:
        pair.ours.feed(pair.diff.ask_tabs())
        assert "\t" not in pair.show(figures(1))
        column = int(replies.pop(0).rstrip("R").split(";")[1])
        assert pair.diff.cursor_report(column - 1)

    pair.show(figures(0))
    ask_and_answer()
    assert "\t" in pair.show(figures(2))
    pair.ours.feed(pair.diff.restore_tabs())  # Ctrl+Z: stops put back (none of ours yet)
    pair.ours.screen.tabstops = set(range(4, 120, 4))  # the user's `tabs -4`
    ask_and_answer()
    later = "".join(pair.show(figures(tick)) for tick in range(3, 3 + 3 * TUNE_EVERY))
    assert "\t" not in later and "\x1bH" not in later
    assert pair.diff.tuner is None
