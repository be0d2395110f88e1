"""Runs of changed cells on a screen row, and their encoding as terminal output: one cursor
move per run, an SGR only where the pen changes. Used by ScreenDiff to send a frame's changes."""

from __future__ import annotations

from itertools import groupby
from typing import NamedTuple

from bwmon.tui.output.moves import cursor_move
from bwmon.tui.output.pens import PenTable

Row = list[str | None]  # one character (or "" right of a wide one) per cell; None = unknown
PenRow = list[int]  # pen id per cell; UNKNOWN where the character is unknown
_GAP_MAX = 8  # unchanged cells worth re-sending instead of moving the cursor


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
    pieces = [list(cells) for _, cells in groupby(run.text, key=lambda cell: cell[1])]
    ends = [piece[0][0] for piece in pieces[1:]] + [run.end]
    return [Run(run.y, piece[0][0], end, (piece[0][1],), piece)
            for piece, end in zip(pieces, ends, strict=True)]


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
             have_pens: PenRow, same_pen: bool = False) -> list[Run]:
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
                table, y, spans[-1][1], start, chars, pens):
            spans[-1][1] = i + 1
        else:
            spans.append([start, i + 1])
    runs = []
    for start, end in spans:
        while end < width and chars[end] == "":
            end += 1
        text = [(i, pens[i], char) for i in range(start, end) if (char := chars[i])]
        runs.append(Run(y, start, end, tuple(dict.fromkeys(pen for _, pen, _ in text)), text))
    return runs


def encode(table: PenTable, runs: list[Run], start: tuple[int, int | None, int | None],
           width: int) -> tuple[str, int, int | None, int | None]:
    """`runs` as output, from the terminal's pen and cursor `start`: (text, pen, cursor x, y)."""
    out: list[str] = []
    change = table.change
    pen, tx, ty = start
    for run in runs:
        out.append(cursor_move(tx, ty, run.start, run.y))
        for _, cell_pen, char in run.text:
            if cell_pen != pen:
                out.append(change(pen, cell_pen))
                pen = cell_pen
            out.append(char)
        tx, ty = (run.end, run.y) if run.end < width else (None, None)
    return "".join(out), pen, tx, ty


def _fill_cheaper(table: PenTable, y: int, gap_start: int, gap_end: int, chars: Row,
                  pens: PenRow) -> bool:
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
    return cost <= len(cursor_move(gap_start, y, gap_end, y))
