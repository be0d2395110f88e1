"""bwmon-tui in a real pseudo-terminal with its diff output layer: every frame it sent, played
on one emulator, shows what Textual's own output for that frame shows on another, through a
resize and a Ctrl+L redraw of a screen someone wrote over; it sent much less, and left the
terminal's own state (tab stops) as it found it."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.terminal import REPO, PtyApp, Terminal, first_difference

pytestmark = pytest.mark.terminal

RECORDER = str(REPO / "tests" / "tui" / "record_frames.py")


def test_diff_output_shows_the_same_screens_and_is_smaller(tmp_path: Path) -> None:
    record = tmp_path / "frames.jsonl"
    app = PtyApp([], size=(120, 40),
                 env={"BWMON_GENERAL__INTERVAL": "0.5"},
                 command=[sys.executable, RECORDER, str(record), "--demo", "50"],
                 tabs=4)  # the user's own stops (`tabs -4`): they must stay as they are
    try:
        assert app.wait_for(b"firefox", timeout=60), bytes(app.output[-300:])
        app.read_for(2.5)
        # The help (a modal screen over a dimmed background), then the filter line with its
        # own cursor. No Esc: followed closely by the next key it would read as Alt+key.
        for keys in (b"?", b"q", b"/", b"fire", b"\r"):
            app.send(keys)
            app.read_for(0.6)
        app.resize(100, 30)
        app.read_for(2.5)
        app.send(b"\x0c")  # Ctrl+L: everything again
        app.read_for(0.5)
        app.send(b"q")
        assert app.wait_exit() == 0, bytes(app.output[-500:])
    finally:
        app.close()
    frames = [json.loads(line) for line in record.read_text().splitlines()]
    sizes = [tuple(f["size"]) for f in frames]
    assert (120, 40) in sizes and sizes[-1] == (100, 30)

    raw_term, our_term = Terminal(120, 40), Terminal(120, 40)
    size = (120, 40)
    drawn, redrawn = 0, False
    settling = 0  # frames after Ctrl+L's clearing that may still precede the full repaint
    for n, frame in enumerate(frames):
        if tuple(frame["size"]) != size:
            size = tuple(frame["size"])
            raw_term.resize(*size)
            our_term.resize(*size)
        if frame.get("redraw"):
            our_term.feed("\x1b[5;5H\x1b[31mwritten over by someone else")
            redrawn = True
        # as the terminal gets them: the tty sends a line feed as CR LF (ONLCR)
        raw_term.feed(frame["raw"].replace("\n", "\r\n"))
        our_term.feed(frame["out"].replace("\n", "\r\n"))
        if frame.get("redraw"):
            # Cleared: Textual's full repaint follows, but an update already queued (a scroll
            # bar's column, say) may come first and draw onto the blank screen; until the
            # repaint lands the two differ. Allow that for a few frames, no longer.
            settling = 3
            continue
        problem = first_difference(our_term.cells(), raw_term.cells())
        if problem is not None and settling:
            settling -= 1
            continue
        assert problem is None, f"frame {n}: {problem}"
        settling = 0
        drawn += "firefox" in frame["raw"]
    assert redrawn, "Ctrl+L sent no redraw"
    assert any("this help" in f["raw"] for f in frames)  # the modal help was compared too
    assert drawn >= 4  # several full or partial redraws were compared, not just the first
    assert any("firefox" in line for line in our_term.text())  # the resized table is shown

    # It leaves the terminal's state alone: no tab stops set or cleared (HTS, TBC), no
    # question about them (DSR), no tabs or REP whose effect depends on that state.
    output = bytes(app.output)
    for sequence in (b"\x1bH", b"\x1b[3g", b"\x1b[6n", b"\t"):
        assert sequence not in output, sequence
    assert re.search(rb"\x1b\[[0-9]*b", output) is None
    assert app.terminal is not None and app.terminal.screen.tabstops == set(range(4, 120, 4))

    # What the terminal got is exactly the diff output (the tty turns \n into \r\n).
    sent = "".join(f["out"] for f in frames).encode().replace(b"\n", b"\r\n")
    assert bytes(app.output) == sent

    # After the first picture, and counting the full redraw after the resize: much less.
    first = next(i for i, f in enumerate(frames) if "firefox" in f["raw"])
    raw = sum(len(f["raw"].encode()) for f in frames[first + 1:])
    ours = sum(len(f["out"].encode()) for f in frames[first + 1:])
    assert ours < 0.5 * raw, (ours, raw)
    # Only a frame laid out for the old size, arriving after the resize, may need the
    # fall-back (sent as is); everything else went through the model.
    assert frames[-1]["forwarded"] <= 2


def test_bwmon_tui_diff_0_sends_textuals_output_unchanged() -> None:
    """The switch for misbehaving terminals: with BWMON_TUI_DIFF=0 the same screen arrives
    as Textual writes it (each changed line whole), so it is several times larger."""
    sizes: dict[str, float] = {}

    def measure(switch: str) -> None:  # both at once, each read by a thread of its own
        app = PtyApp(["--demo", "50"], size=(120, 40),
                     env={"BWMON_GENERAL__INTERVAL": "0.5", "BWMON_TUI_DIFF": switch})
        try:
            assert app.wait_for(b"firefox", timeout=60)
            app.read_for(0.5)
            start = time.monotonic()
            sizes[switch] = app.read_for(3) / (time.monotonic() - start)
        finally:
            app.close()

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(measure, switch) for switch in ("0", "1")]:
            done.result()
    assert sizes["0"] > 2 * sizes["1"], sizes


def test_after_fg_the_whole_picture_is_back_and_ctrl_l_keeps_it() -> None:
    """Back from a suspend (SIGTSTP, then SIGCONT as `fg` sends), on an alternate screen that
    starts blank, the whole picture is drawn again, the separator line and the footer too
    (Textual by itself repaints only what changed); Ctrl+L then draws it whole once more."""
    app = PtyApp(["--demo", "20"], size=(100, 30), env={"BWMON_GENERAL__INTERVAL": "0.5"})
    pictures = []
    try:
        assert app.wait_for(b"firefox", timeout=60)
        app.read_for(1.5)
        os.kill(app.proc.pid, signal.SIGTSTP)
        app.read_for(1.0)
        os.kill(app.proc.pid, signal.SIGCONT)
        for key, mark in ((b"", "\x1b[?1049h"), (b"\x0c", "\x1b[2J")):  # after fg; Ctrl+L
            before = len(app.output)
            app.send(key)
            deadline = time.monotonic() + 20  # a loaded machine may take a while to answer
            while True:
                app.read_for(0.5)
                output = bytes(app.output)
                start = output.rfind(mark.encode())  # since the screen came back, or Ctrl+L
                back = output[start:] if start >= (before if key else 0) else b""
                screen = Terminal(100, 30)
                screen.feed(back.decode(errors="replace").replace("\n", "\r\n"))
                rows = [row.rstrip() for row in screen.text()]
                if "q Quit" in rows[-1] or time.monotonic() > deadline:
                    break
            app.read_for(1.0)  # and whatever else this picture brings
            output = bytes(app.output).decode(errors="replace")
            screen = Terminal(100, 30)
            screen.feed(output[output.rfind(mark):].replace("\n", "\r\n"))
            pictures.append([row.rstrip() for row in screen.text()])
    finally:
        app.close()
    for rows in pictures:
        assert "─" * 100 in rows, "\n".join(rows)
        assert rows[-1].lstrip().startswith("q Quit"), rows[-1]
