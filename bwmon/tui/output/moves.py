"""The shortest sequence that moves the terminal's cursor from one cell to another, with the
moves every VT100-like terminal has (no tabs: their stops are the user's, whatever terminfo
says)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1 << 12)  # ~1 MiB: a steady screen repeats far fewer moves
def cursor_move(cx: int | None, cy: int | None, x: int, y: int) -> str:
    """The shortest sequence moving the cursor from (cx, cy) (None = unknown) to (x, y)."""
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
    relative = vertical + ("" if cx == x else _horizontal(cx, x))
    return relative if len(relative) < len(best) else best


def _horizontal(cx: int, x: int) -> str:
    """The shortest move along a row from column cx to x."""
    if x == 0:
        return "\r"
    dx = x - cx
    n = "" if abs(dx) == 1 else str(abs(dx))
    options = [f"\x1b[{n}{'C' if dx > 0 else 'D'}", f"\x1b[{x + 1}G"]
    if -3 <= dx < 0:
        options.append("\b" * -dx)
    return min(options, key=len)
