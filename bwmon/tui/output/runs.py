"""Runs of changed cells on a screen row, and their encoding as terminal output: one cursor
move per run, an SGR only where the pen changes. Used by ScreenDiff to send a frame's changes."""

from __future__ import annotations

from typing import NamedTuple

from rich.cells import get_character_cell_size

from bwmon.tui.output.moves import cursor_move, wire_length
from bwmon.tui.output.pens import PenTable
from bwmon.tui.output.tab_stops import Tabs, stop_columns

Row = list[str | None]  # one character (or "" right of a wide one) per cell; None = unknown
PenRow = list[int]  # pen id per cell; UNKNOWN where the character is unknown
_GAP_MAX = 8  # unchanged cells worth re-sending instead of moving the cursor
_LEAD_MAX = 8  # unchanged cells before a run worth re-sending to start it where moving is cheap


class Run(NamedTuple):
    """Cells to send on row `y` from column `start` to `end` (`pens`: the pens it uses)."""

    y: int
    start: int
    end: int
    pens: tuple[int, ...]
    text: list[tuple[int, int, str]]  # (column, pen, character) per character


def split(run: Run) -> list[Run]:
    """A run cut where its pen changes, into runs of one pen each."""
    if len(run.pens) == 1:
        return [run]
    pieces: list[Run] = []
    text = run.text
    first = 0
    for k in range(1, len(text) + 1):
        if k == len(text) or text[k][1] != text[first][1]:
            end = text[k][0] if k < len(text) else run.end
            pieces.append(Run(run.y, text[first][0], end, (text[first][1],), text[first:k]))
            first = k
    return pieces


def by_pen(runs: list[Run], pen: int) -> list[Run]:
    """The runs cut into runs of one pen and grouped by pen, each group in reading order,
    starting with the pen the terminal has."""
    groups: dict[tuple[int, ...], list[Run]] = {}
    for run in runs:
        for piece in split(run):
            groups.setdefault(piece.pens, []).append(piece)
    ordered: list[Run] = []
    while groups:
        key = next((k for k in groups if k[0] == pen), next(iter(groups)))
        ordered += groups.pop(key)
        pen = key[-1]
    return ordered


def row_runs(table: PenTable, y: int, chars: Row, pens: PenRow, have_chars: Row,
             have_pens: PenRow, same_pen: bool = False, tabs: Tabs = 0) -> list[Run]:
    """The runs of cells to send on one row: changed cells, whole wide characters, and
    short unchanged gaps between them where re-sending is cheaper than moving. `same_pen`:
    fill only gaps between cells of one pen (runs sent grouped by pen are cut at every pen
    change, so a gap filled up to a cell of another pen would be sent for nothing)."""
    width = len(chars)
    spans: list[list[int]] = []
    changed = [i for i, (c, h, p, q) in enumerate(zip(chars, have_chars, pens, have_pens,
                                                      strict=True)) if c != h or p != q]
    for i in changed:
        if spans and i == spans[-1][1]:
            spans[-1][1] = i + 1
            continue
        start = i
        while start and chars[start] == "":
            start -= 1
        if spans and start <= spans[-1][1] + _GAP_MAX and (
                not same_pen or len(set(pens[spans[-1][1] - 1:start + 1])) == 1) and _fill_cheaper(
                table, y, spans[-1][1], start, chars, pens, tabs):
            spans[-1][1] = i + 1
        else:
            spans.append([start, i + 1])
    runs = []
    for start, end in spans:
        while end < width and chars[end] == "":
            end += 1
        text: list[tuple[int, int, str]] = []
        for i in range(start, end):
            char = chars[i]
            if char:
                text.append((i, pens[i], char))
        run_pens = tuple(dict.fromkeys(pen for _, pen, _ in text))
        runs.append(Run(y, start, end, run_pens, text))
    return runs


def encode(table: PenTable, runs: list[Run], start: tuple[int, int | None, int | None],
           width: int, rep: bool = False, tabs: Tabs = 0, newline: bool = False,
           moves: list[tuple[int | None, int | None, int, int]] | None = None,
           screen: tuple[list[Row], list[PenRow]] | None = None,
           ) -> tuple[str, int, int | None, int | None]:
    """`runs` as output, from the terminal's pen and cursor `start`: (text, pen, cursor x, y).
    `rep`: the terminal repeats the last character on `ESC [ n b` (REP), used where that is
    shorter than sending the copies (runs of blanks, of one bar character); `tabs`: the tab
    stops, used to move where that is shorter (0: none); `newline`: see cursor_move.
    `moves`: if given, gets each cursor move made (from x, from y, to x, to y).
    `screen`: the rows (characters, pens) as they are to be shown; if given, a run may start
    a few cells early where moving there and re-sending those cells is shorter (see _lead_in)."""
    out: list[str] = []
    change = table.change
    pen, tx, ty = start
    for run in runs:
        text = run.text
        x = run.start
        if screen is not None and tx is not None and ty is not None:
            x, lead = _lead_in(table, run, screen, pen, tx, ty, tabs, width, newline)
            if lead:
                text = lead + text
        out.append(cursor_move(tx, ty, x, run.y, tabs, width, newline))
        if moves is not None:
            moves.append((tx, ty, x, run.y))
        i, n = 0, len(text)
        while i < n:
            col, cell_pen, char = text[i]
            if cell_pen != pen:
                out.append(change(pen, cell_pen))
                pen = cell_pen
            out.append(char)
            i += 1
            if rep and i < n and text[i][2] == char and text[i][1] == cell_pen:
                j = i
                while j < n and text[j][2] == char and text[j][1] == cell_pen and \
                        text[j][0] == col + j - i + 1:
                    j += 1
                copies = j - i
                seq = f"\x1b[{copies}b"
                if copies and _width(char) == 1 and len(seq) < copies * len(char.encode()):
                    out.append(seq)
                    i = j
        tx, ty = (run.end, run.y) if run.end < width else (None, None)
    return "".join(out), pen, tx, ty


def _lead_in(table: PenTable, run: Run, screen: tuple[list[Row], list[PenRow]], pen: int,
             tx: int, ty: int, tabs: Tabs, width: int, newline: bool
             ) -> tuple[int, list[tuple[int, int, str]]]:
    """Where to start sending `run`, and the cells to send before its own: up to _LEAD_MAX
    cells early when moving there and re-sending them costs fewer bytes than moving to the
    run (from column 9, a change at column 17 is one tab and one cell away, against
    `ESC [ 8 C`; curses moves the same way). The cells re-sent are the screen's own, so what
    it shows is the same; unknown cells are never re-sent."""
    chars, pens = screen[0][run.y], screen[1][run.y]
    change = table.change
    first_pen = run.text[0][1]
    best = wire_length(cursor_move(tx, ty, run.start, run.y, tabs, width, newline))
    best += len(change(pen, first_pen))
    best_x = run.start
    lowest = max(0, run.start - _LEAD_MAX)
    if ty == run.y and tx < run.start:
        lowest = max(lowest, tx)  # re-sending from where the cursor is: the gap fill's job
    # Only a tab stop (or column 0, a CR away) can be cheaper to reach than the run itself;
    # trying only those also keeps cursor_move's cache to the moves really made.
    landings = [c for c in stop_columns(tabs, width) if lowest <= c < run.start]
    if lowest == 0:
        landings.insert(0, 0)
    for x in reversed(landings):
        if any(chars[i] is None for i in range(x, run.start)):
            break
        if not chars[x]:  # the right half of a wide character: not a place to start
            continue
        move = wire_length(cursor_move(tx, ty, x, run.y, tabs, width, newline))
        if move >= best:
            continue
        cost, at = move, pen
        for i in range(x, run.start):
            cell = chars[i]
            if cell:
                cost += len(change(at, pens[i])) + len(cell.encode())
                at = pens[i]
        cost += len(change(at, first_pen))
        if cost < best:
            best, best_x = cost, x
    lead: list[tuple[int, int, str]] = []
    for i in range(best_x, run.start):
        cell = chars[i]
        if cell:
            lead.append((i, pens[i], cell))
    return best_x, lead


def _width(char: str) -> int:
    """Cells of a character we may repeat: only plain one-cell ones (no combining marks)."""
    return 1 if len(char) == 1 and char.isprintable() and get_character_cell_size(char) == 1 \
        else 0


def _fill_cheaper(table: PenTable, y: int, gap_start: int, gap_end: int, chars: Row,
                  pens: PenRow, tabs: Tabs = 0) -> bool:
    """Is re-sending the unchanged cells [gap_start, gap_end) shorter than moving over them?"""
    if gap_start >= gap_end:
        return True
    if chars[gap_start] == "":
        return False
    change = table.change
    before = pens[gap_start - 1]  # the pen the previous run ends with
    cost, pen = 0, before
    for i in range(gap_start, gap_end):
        char = chars[i]
        if char is None:
            return False
        if char and pens[i] != pen:
            cost += len(change(pen, pens[i]))
            pen = pens[i]
        cost += len(char.encode())
    after = pens[gap_end]  # the pen the next run starts with: its change may differ
    cost += len(change(pen, after)) - len(change(before, after))
    return cost <= len(cursor_move(gap_start, y, gap_end, y, tabs, len(chars)))
