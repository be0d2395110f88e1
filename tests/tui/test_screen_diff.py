"""The curses-like output layer: what it sends must leave the terminal showing exactly what
Textual's own output would, with fewer bytes. Checked on two independent emulators (pyte)."""

from __future__ import annotations

import random
import re

import pytest

from bwmon.tui.output.driver import DiffDriver, driver_class
from bwmon.tui.output.moves import cursor_move
from bwmon.tui.output.pens import DEFAULT, UNKNOWN, Pen, PenTable
from bwmon.tui.output.screen import ScreenDiff
from tests.helpers.terminal import Terminal, first_difference

ROW = "\x1b[38;5;253;48;5;235m"
GRAPH = "\x1b[38;5;112;48;5;235m"


def line(y: int, x: int, *parts: tuple[str, str]) -> str:
    """Textual-like output: move, then each segment as full SGR + text + reset."""
    return f"\x1b[{y + 1};{x + 1}H" + "".join(f"{sgr}{text}\x1b[0m" for sgr, text in parts)


class Pair:
    """The same frames shown raw on one emulator and through ScreenDiff on another."""

    def __init__(self, cols: int, rows: int) -> None:
        self.size = (cols, rows)
        self.diff = ScreenDiff()
        self.raw = Terminal(cols, rows)
        self.ours = Terminal(cols, rows)

    def resize(self, cols: int, rows: int) -> None:
        self.size = (cols, rows)
        self.raw.resize(cols, rows)
        self.ours.resize(cols, rows)

    def show(self, frame: str) -> str:
        out = self.diff.feed(frame, self.size)
        self.raw.feed(frame)
        self.ours.feed(out)
        problem = first_difference(self.ours.cells(), self.raw.cells())
        assert problem is None, f"screens differ at {problem}; sent {out!r}"
        return out


def table(values: list[str], graph: str = "▁▂▃") -> str:
    return "".join(line(y, 0, (ROW, f"app-{y:02d}  {v:>8}  "), (GRAPH, graph))
                   for y, v in enumerate(values))


def test_only_changed_cells_are_sent() -> None:
    pair = Pair(40, 6)
    first = pair.show(table(["1.00 KiB", "2.00 KiB", "3.00 KiB"]))
    frame = table(["1.00 KiB", "2.50 KiB", "3.00 KiB"])
    out = pair.show(frame)
    assert "app-00" in first
    assert "5" in out and "app" not in out and "1.00" not in out
    assert len(out) * 5 < len(frame)


def test_changes_in_two_colours_on_many_rows_are_sent_one_colour_at_a_time() -> None:
    """A number and the graph beside it change on ten rows: all digits, then all bars,
    two colour changes in all (not two per row), and the unchanged blanks between them
    are not re-sent."""
    pair = Pair(40, 12)
    pair.show(table([f"{i}.00" for i in range(10)], "▁▂▃"))
    out = pair.show(table([f"{i}.05" for i in range(10)], "▃▂▃"))
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]|\x08", "", out)
    assert text == "▃" * 10 + "5" * 10, repr(out)
    assert out.count("\x1b[38;5;") <= 2, repr(out)
    assert "5  " not in out, repr(out)


def test_a_frame_that_changes_nothing_sends_nothing() -> None:
    pair = Pair(40, 6)
    frame = "\x1b[?2026h" + table(["1 B", "2 B"]) + "\x1b[?2026l"
    pair.show(frame)
    assert pair.show(frame) == ""


def test_colour_change_alone_is_sent_with_the_shortest_sgr() -> None:
    pair = Pair(40, 3)
    pair.show(line(0, 0, (ROW, "abc")))
    out = pair.show(line(0, 0, (ROW, "a"), ("\x1b[38;5;112;48;5;235m", "b"), (ROW, "c")))
    assert "\x1b[38;5;112m" in out and "48;5;235" not in out


def test_wide_characters_keep_both_cells_right() -> None:
    pair = Pair(12, 2)
    pair.show(line(0, 0, (ROW, "中文ab")))
    pair.show(line(0, 0, (ROW, "文中ab")))
    pair.show(line(0, 0, (ROW, "abcd")))  # narrow over wide
    pair.show(line(0, 1, (ROW, "中文")))  # wide over narrow, shifted by one
    pair.show(line(0, 0, (ROW, "x中")))
    assert pair.ours.text()[0].startswith("x中")


def test_splitting_a_wide_character_is_forwarded_and_the_model_recovers() -> None:
    pair = Pair(12, 2)
    pair.show(line(0, 0, (ROW, "中文ab")))
    frame = line(0, 1, (ROW, "x"))  # lands on the right half of 中
    assert pair.show(frame).endswith(frame)
    assert pair.diff.forwarded_frames == 1
    pair.show(line(0, 0, (ROW, "zzzzzz")) + line(1, 0, (GRAPH, "█▇▆")))
    assert pair.ours.text()[0].startswith("zzzzzz")


def test_clear_screen_is_sent_as_is_and_modelled() -> None:
    pair = Pair(30, 4)
    pair.show(table(["1 B", "2 B", "3 B"]))
    out = pair.show("\x1b[2J" + line(1, 2, (ROW, "hello")))
    assert "\x1b[2J" in out and pair.diff.forwarded_frames == 0
    out = pair.show(line(1, 2, (ROW, "hello")) + line(0, 0, (ROW, "x")))
    assert "hello" not in out


def test_erase_to_end_of_line() -> None:
    pair = Pair(20, 3)
    pair.show(line(0, 0, (ROW, "abcdefgh")))
    pair.show("\x1b[0m\x1b[1;4H\x1b[K" + line(1, 0, (ROW, "x")))
    assert pair.ours.text()[0].startswith("abc   ")


def test_resize_forgets_what_the_terminal_showed() -> None:
    pair = Pair(30, 5)
    pair.show(table(["1 B", "2 B"]))
    assert pair.diff.forwarded_frames == 0
    pair.resize(40, 6)
    out = pair.show(table(["1 B", "2 B"]))
    assert "app-00" in out and "app-01" in out  # everything again: the terminal may differ


def test_mode_sequences_pass_through_in_order() -> None:
    pair = Pair(20, 4)
    modes = "\x1b[?1049h\x1b[?1000h\x1b[?2004h\x1b[>25u\x1b[?2026$p"
    out = pair.show(modes + line(0, 0, (ROW, "drawn")) + "\x1b]2;bwmon\x07")
    assert out.startswith(modes)
    assert out.index("drawn") < out.index("\x1b]2;bwmon\x07")


def test_clearing_then_a_full_frame_repairs_a_screen_something_else_wrote_on() -> None:
    """Ctrl+L: the terminal is cleared and known blank; Textual's full repaint is then sent
    without its blanks, and the model holds again."""
    pair = Pair(30, 4)
    frame = table(["1 B", "2 B", "3 B"])
    pair.show(frame)
    pair.ours.feed("\x1b[2;3H\x1b[31mBroadcast message from root")  # e.g. wall(1)
    assert first_difference(pair.ours.cells(), pair.raw.cells()) is not None
    pair.ours.feed(pair.diff.clear())
    out = pair.show(frame)  # compared with the raw screen: repaired
    assert "app-02" in out and "        " not in out
    out = pair.show(table(["1 B", "9 B", "3 B"]))  # and the model still holds
    assert "app" not in out and "9" in out


def test_leaving_the_alternate_screen_restores_textuals_pen() -> None:
    """After quitting, the shell draws on the main screen with the pen we leave behind."""
    pair = Pair(30, 3)
    pair.show("\x1b[?1049h" + line(0, 0, (GRAPH, "▁▂▃")))
    out = pair.show("\x1b[?1049l\x1b[?25h")
    assert out.index("\x1b[m") < out.index("\x1b[?1049l")


def test_sequences_it_cannot_model_forward_the_frame_unchanged() -> None:
    pair = Pair(30, 6)
    pair.show(table(["1 B", "2 B", "3 B"]))
    frame = "\x1b[2;4r\x1b[4;1H\x1bD" + line(0, 0, (ROW, "after scroll"))
    assert pair.show(frame).endswith(frame)
    assert pair.diff.forwarded_frames == 1
    pair.show(table(["4 B", "5 B", "6 B"]))  # drawn right although the model was lost
    # The margins the forwarded frame left would stop relative moves: frames go as they are
    # until the margins are reset, then through the model again.
    pair.show(table(["7 B", "8 B", "9 B"], "▃▂▁"))
    assert pair.diff.forwarded_frames == 3
    pair.show("\x1b[r")
    pair.show(table(["4 B", "5 B", "6 B"]))
    assert pair.diff.forwarded_frames == 4
    assert len(pair.show(table(["4 B", "5 B", "7 B"]))) < 25  # the one changed cell
    assert pair.diff.forwarded_frames == 4


def test_random_frames_look_the_same_through_the_diff() -> None:
    """Textual-like frames of random text, widths and pens: every frame, both screens agree.
    Only moves every terminal has: no REP (tmux repeats only ASCII with it), no tabs (the
    user's stops may be anywhere)."""
    rng = random.Random(8)
    pens = [ROW, GRAPH, "\x1b[1;38;5;195;48;5;32m", "\x1b[7m", "\x1b[38;2;10;20;30m", "",
            "\x1b[1;2;3;4m", "\x1b[2;9;97;101m"]
    alphabet = "abc 123.▁▂▇█中→é" + "    ▇▇▇"
    pair = Pair(30, 8)
    sent = raw = used_rep = used_tab = 0
    for n in range(150):
        parts = []
        for _ in range(rng.randint(1, 6)):
            y, x = rng.randrange(8), rng.randrange(30)
            room, text = 30 - x, ""
            for _ in range(rng.randint(1, 10)):
                ch = rng.choice(alphabet)
                width = 2 if ch == "中" else 1
                if room < width:
                    break
                text += ch
                room -= width
            parts.append(line(y, x, (rng.choice(pens), text)))
        frame = "".join(parts)
        out = pair.show(frame)
        used_rep += len(re.findall(r"\x1b\[[0-9]*b", out))
        used_tab += out.count("\t")
        if n:
            sent, raw = sent + len(out), raw + len(frame)
    assert sent < raw
    assert pair.diff.forwarded_frames < 30  # most frames went through the model
    assert used_rep == used_tab == 0


def test_a_failure_inside_the_model_still_shows_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    pair = Pair(30, 4)
    pair.show(table(["1 B", "2 B"]))

    def broken(*_: object) -> None:
        raise IndexError("a bug")

    monkeypatch.setattr(pair.diff, "_play", broken)
    frame = table(["3 B", "4 B"])
    assert pair.show(frame).endswith(frame)
    assert pair.diff.errors == 1
    monkeypatch.undo()
    pair.show(table(["5 B", "6 B"]))


@pytest.mark.parametrize(("frm", "to"), [((5, 3), (9, 3)), ((9, 3), (2, 3)), ((4, 2), (0, 3)),
                                         ((10, 6), (10, 1)), ((3, 1), (27, 7)), ((7, 4), (6, 4))])
def test_cursor_moves_land_where_meant(frm: tuple[int, int], to: tuple[int, int]) -> None:
    term = Terminal(30, 8)
    term.feed(cursor_move(None, None, *frm))
    move = cursor_move(*frm, *to)
    term.feed(move)
    assert (term.screen.cursor.x, term.screen.cursor.y) == to
    assert len(move) <= len(cursor_move(None, None, *to))


def test_pen_changes() -> None:
    table_ = PenTable()
    white = table_.apply(DEFAULT, "38;5;253;48;5;235")
    green = table_.apply(white, "38;5;112")
    bold_dim = table_.apply(DEFAULT, "1;2;38;5;253")
    assert table_.pens[green] == Pen(0, "38;5;112", "48;5;235")
    assert table_.change(white, green) == "\x1b[38;5;112m"
    assert table_.change(green, DEFAULT) == "\x1b[m"
    assert table_.change(UNKNOWN, white) == "\x1b[0;38;5;253;48;5;235m"
    only_dim = table_.apply(bold_dim, "22;2")  # 22 clears bold and dim: dim must come back
    assert table_.change(bold_dim, only_dim) == "\x1b[22;2m"


def test_env_switch_turns_the_layer_off() -> None:
    assert driver_class({}) is DiffDriver
    assert driver_class({"BWMON_TUI_DIFF": "0"}) is None
    assert driver_class({"BWMON_TUI_DIFF": "off"}) is None
