"""Tab stops as cursor moves: where they are, how to reach a column with them, and which
stops to set so that the moves a screen keeps making cost one byte each.

A table redrawn once a second changes its figures at the same few columns on every row. With
the terminal's stops every 8 columns, reaching such a column takes `ESC [ n C` (4-5 bytes) or
several tabs; with a stop at each of those columns (set with HTS, `ESC H`, after clearing all
with TBC, `ESC [ 3 g`, as terminfo's `hts` and `tbc` say) it takes one tab. `StopTuner`
counts where the drawn runs start and proposes such a set when it would pay for itself.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Iterable

Tabs = int | tuple[int, ...]  # stops every n columns (0: none), or at these columns

CLEAR_ALL = "\x1b[3g"  # TBC 3
SET_HERE = "\x1bH"  # HTS


def stop_columns(tabs: Tabs, width: int) -> tuple[int, ...]:
    """The columns (0-based) with a tab stop, ascending."""
    if isinstance(tabs, tuple):
        return tabs
    return tuple(range(tabs, width, tabs)) if tabs > 0 else ()


def tab_moves(cx: int, x: int, tabs: Tabs, width: int) -> list[str]:
    """Moves right from column cx to x with tabs (HT goes to the next stop): to the last
    stop at or before x then right, or to the first stop after x then back (`\\b`, at most 3).
    Never a tab past the last stop (it would go to the right margin)."""
    if x <= cx:
        return []
    stops = stop_columns(tabs, width)
    first = bisect_right(stops, cx)  # the stop the first tab reaches
    last = bisect_right(stops, x)  # stops[first:last] are in (cx, x]
    moves = []
    if last > first:
        rest = x - stops[last - 1]
        moves.append("\t" * (last - first) + (
            "" if not rest else "\x1b[C" if rest == 1 else f"\x1b[{rest}C"))
    if last < len(stops) and stops[last] - x <= 3 and stops[last] < width:
        moves.append("\t" * (last + 1 - first) + "\b" * (stops[last] - x))
    return moves


def set_stops_sequence(stops: Iterable[int], row: int) -> str:
    """Clear every tab stop and set one at each of `stops`, moving along screen row `row`
    (the cursor is left on the last stop set, or column 0)."""
    out = [CLEAR_ALL, f"\x1b[{row + 1}H"]
    x = 0
    for stop in sorted(set(stops)):
        dx = stop - x
        out.append("\x1b[C" if dx == 1 else f"\x1b[{dx}C")
        out.append(SET_HERE)
        x = stop
    return "".join(out)


TUNE_EVERY = 16  # drawn frames between two looks at the statistics
SHARE = 4  # a column is worth a stop when runs start there ≥ 1/SHARE as often as at the top one
MAX_STOPS = 40


class StopTuner:
    """Counts the cursor moves of drawn frames and proposes the stops that make them short.

    Proposed: the columns where runs start at least a quarter as often as at the most used
    column, and nothing else (every extra stop between two of them costs a tab more). Only
    when the moves of the last frames would have cost, with them, less than the current stops
    by more than setting them costs."""

    def __init__(self) -> None:
        self.moves: Counter[tuple[int, int, int, int]] = Counter()
        self.frames = 0

    def record(self, moves: Iterable[tuple[int | None, int | None, int, int]]) -> None:
        """One drawn frame's moves: (from x, from y, to x, to y); unknown starts are skipped
        (those moves are absolute whatever the stops)."""
        for cx, cy, x, y in moves:
            if cx is not None and cy is not None:
                self.moves[cx, cy, x, y] += 1
        self.frames += 1

    def propose(self, current: Tabs, width: int, newline: bool) -> tuple[int, ...] | None:
        """A better set of stops than `current` for the moves recorded, or None; every
        TUNE_EVERY frames (the statistics start again after each look)."""
        if self.frames < TUNE_EVERY:
            return None
        from bwmon.tui.output.moves import cursor_move  # moves are built with tab_moves

        moves, self.moves, self.frames = self.moves, Counter(), 0
        starts: Counter[int] = Counter()
        for (_, _, x, _), n in moves.items():
            if x > 0:  # column 0 is reached with CR
                starts[x] += n
        if not starts:
            return None
        top = max(starts.values())
        chosen = tuple(sorted(c for c, n in starts.most_common(MAX_STOPS) if n * SHARE >= top))
        if chosen == stop_columns(current, width):
            return None

        def cost(tabs: Tabs) -> int:
            return sum(n * len(cursor_move(cx, cy, x, y, tabs, width, newline))
                       for (cx, cy, x, y), n in moves.items())

        price = len(set_stops_sequence(chosen, 0))
        return chosen if cost(chosen) + price < cost(current) else None


ASK_POSITION = "\x1b[6n"  # DSR 6: the terminal answers with the cursor's place (CPR)


class StopCheck:
    """Tab stops used only once the terminal has shown it has them.

    terminfo says what a terminal type has (`it#8`: stops every 8 columns), not what this
    terminal has now: a user may have set others (`tabs -4`), and a terminal may take the
    sequences that set stops without acting on them. A tab that lands elsewhere than the
    output layer thinks draws every later change in the wrong place. So the stops are asked
    about with a cursor position request (DSR 6) right after the tabs under test: three tabs
    from column 0 must land on column 3n for stops every n; as many tabs as stops were set,
    on the last of them. Each answer says yes or no; until it comes (or if none ever does),
    no tab is used."""

    def __init__(self, every: int) -> None:
        self.every = every  # the stops terminfo claims: every `every` columns
        self.pending: deque[tuple[str, tuple[int, ...]]] = deque()

    def ask_default(self) -> str:
        """The question for stops every `every` columns (moves the cursor in its row)."""
        self.pending.append(("default", (3 * self.every,)))
        return "\r\t\t\t" + ASK_POSITION

    def ask_own(self, stops: tuple[int, ...]) -> str:
        """The question for stops just set (moves the cursor in its row)."""
        self.pending.append(("own", stops))
        return "\r" + "\t" * len(stops) + ASK_POSITION

    def forget_own(self) -> None:
        """Answers about stops set before a resize say nothing of the stops now (tmux resets
        them on a resize): they will be taken and dropped."""
        self.pending = deque(("stale", s) if kind == "own" else (kind, s)
                             for kind, s in self.pending)

    def answer(self, x: int) -> tuple[str, bool] | None:
        """The oldest question's answer from the cursor's column `x` (0-based): (what was
        asked about, whether the stops are as meant); None if nothing was asked or it is
        stale."""
        if not self.pending:
            return None
        kind, stops = self.pending.popleft()
        if kind == "stale":
            return None
        return kind, x == stops[-1]
