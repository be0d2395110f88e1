"""An independent terminal emulator (pyte) for checking what bwmon-tui's output shows."""

from __future__ import annotations

import re

import pyte

# pyte does not know these (kitty keyboard protocol, xterm key modifiers) and would print
# their last letter; a real terminal does not show them.
_UNKNOWN_TO_PYTE = re.compile(r"\x1b\[[<>=][0-9;]*[a-zA-Z]")

# REP (repeat the preceding character n times), which pyte does not know: expanded here. Our
# output always sends it right after the character it repeats.
_REP = re.compile(r"([^\x00-\x1f\x7f])\x1b\[([0-9]*)b")

Cell = tuple[str, str, str, bool, bool, bool, bool, bool, bool]


class Terminal:
    """A VT100/xterm-like screen fed with output text; `cells()` is what a user would see."""

    def __init__(self, cols: int, rows: int) -> None:
        self.screen = pyte.Screen(cols, rows)
        self.stream = pyte.Stream(self.screen)

    def feed(self, data: str) -> None:
        data = _REP.sub(lambda m: m.group(1) * (1 + int(m.group(2) or 1)), data)
        self.stream.feed(_UNKNOWN_TO_PYTE.sub("", data))

    def resize(self, cols: int, rows: int) -> None:
        self.screen.resize(rows, cols)

    def cells(self) -> list[list[Cell]]:
        """Every cell: character, colours and attributes."""
        s = self.screen
        return [[(c.data, c.fg, c.bg, c.bold, c.italics, c.underscore, c.strikethrough,
                  c.reverse, c.blink) for c in (s.buffer[y][x] for x in range(s.columns))]
                for y in range(s.lines)]

    def text(self) -> list[str]:
        return list(self.screen.display)


def first_difference(a: list[list[Cell]], b: list[list[Cell]]) -> str | None:
    """Where two screens differ, described for an assertion message (None if equal)."""
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    for y, (ra, rb) in enumerate(zip(a, b, strict=True)):
        if len(ra) != len(rb):
            return f"row {y}: {len(ra)} cols vs {len(rb)}"
        for x, (ca, cb) in enumerate(zip(ra, rb, strict=True)):
            if ca != cb:
                return f"row {y} col {x}: {ca} vs {cb}"
    return None
