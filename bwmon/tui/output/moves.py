"""The shortest sequence that moves the terminal's cursor from one cell to another."""

from __future__ import annotations

from functools import lru_cache

from bwmon.tui.output.tab_stops import Tabs, tab_moves


@lru_cache(maxsize=1 << 12)  # ~1 MiB: a steady screen repeats far fewer moves
def cursor_move(cx: int | None, cy: int | None, x: int, y: int, tabs: Tabs = 0,
                width: int = 0, newline: bool = False) -> str:
    """The shortest sequence moving the cursor from (cx, cy) (None = unknown) to (x, y).
    `tabs`: the terminal's tab stops (every n columns, or at these columns; 0: do not use
    tabs), on a screen `width` columns wide. `newline`: a line feed lands in column 0 of
    the next row (the tty adds the CR, ONLCR: two bytes on the wire); never at the bottom
    margin, since the cursor only ever moves down onto a row of the screen."""
    if cx == x and cy == y:
        return ""
    best = f"\x1b[{y + 1};{x + 1}H" if x else (f"\x1b[{y + 1}H" if y else "\x1b[H")
    if cy is None or cx is None:
        return best
    if cy == y:
        vertical = ""
    else:
        dy = y - cy
        n = "" if abs(dy) == 1 else str(abs(dy))
        vertical = min(f"\x1b[{n}{'B' if dy > 0 else 'A'}", f"\x1b[{y + 1}d", key=len)
    horizontal = "" if cx == x else _horizontal(cx, x, tabs, width)
    relative = vertical + horizontal
    if newline and y == cy + 1:
        down = "\n" + ("" if x == 0 else _horizontal(0, x, tabs, width).removeprefix("\r"))
        if wire_length(down) < wire_length(relative):
            relative = down
    return relative if wire_length(relative) < len(best) else best


def wire_length(move: str) -> int:
    """Bytes a move (or any ASCII output) costs on the wire: the tty sends a line feed as CR LF."""
    return len(move) + move.count("\n")


def _horizontal(cx: int, x: int, tabs: Tabs, width: int) -> str:
    """The shortest move along a row from column cx to x."""
    if x == 0:
        return "\r"
    dx = x - cx
    n = "" if abs(dx) == 1 else str(abs(dx))
    options = [f"\x1b[{n}{'C' if dx > 0 else 'D'}", f"\x1b[{x + 1}G"]
    if -3 <= dx < 0:
        options.append("\b" * -dx)
    if tabs:
        options += tab_moves(cx, x, tabs, width)
        options += ["\r" + move for move in tab_moves(0, x, tabs, width)]
    return min(options, key=len)
