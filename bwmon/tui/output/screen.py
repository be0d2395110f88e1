"""A model of what the terminal shows, and the smallest output that brings it to a new frame.

`ScreenDiff.feed(frame, size)` takes what Textual would write (cursor moves, SGR, text, mode
sequences), plays it onto a copy of the rows it touches, and returns only the cells that differ
from what the terminal already shows: one cursor move per run of changed cells (none when the
cursor is already there; plain text over short unchanged gaps when that is shorter) and an SGR
only where the pen changes. Non-drawing sequences pass through in order. Anything it cannot
model (scrolling, hyperlinks, writes off the screen) makes it forward the frame as it is and
forget what the terminal shows; so does a new size, after which every cell drawn is sent again.
Either way the terminal is never left wrong.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rich.cells import get_character_cell_size

from bwmon.tui.output.moves import cursor_move
from bwmon.tui.output.pens import DEFAULT, UNKNOWN, PenTable, Unmodellable
from bwmon.tui.output.runs import PenRow, Row, Run, by_pen, encode, row_runs
from bwmon.tui.output.tab_stops import StopCheck, StopTuner, Tabs, set_stops_sequence, stop_columns

_TOKEN = re.compile(
    r"\x1b\[([0-?]*)([ -/]*)([@-~])"  # CSI: parameters, intermediates, final
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC string
    r"|\x1b[P_^X][^\x1b]*\x1b\\"  # DCS / APC / PM / SOS string
    r"|\x1b[ -/]*[0-~]"  # other escape (charset, keypad, save cursor...)
    r"|([^\x00-\x1f\x7f]+)"  # printable text
    r"|[\s\S]",  # a control character, or a stray ESC
)
_SCREEN_MODES = {"1049", "1047", "47"}  # alternate screen: contents change wholesale
_UNMODELLED_CSI = set("@LMPSTXZbrs")  # insert/delete/scroll/repeat/margins/save
_EMPTY_SYNC = "\x1b[?2026h\x1b[?2026l"  # a synchronized update that changes nothing
_LAST_SGR = re.compile(r"\x1b\[([0-9;:]*)m")
_MARGINS = re.compile(r"\x1b\[([0-9;]*)r")  # DECSTBM: set (or with no rows, reset) margins


@lru_cache(maxsize=4096)
def _width(char: str) -> int:
    return get_character_cell_size(char)


class ScreenDiff:
    """The terminal's screen as last drawn by us, and the encoder of the next frame's changes."""

    def __init__(self, width: int = 0, height: int = 0, *, rep: bool = False,
                 tabs: int = 0, set_tabs: bool = False, newline: bool = False,
                 check: bool = False) -> None:
        self.pens = PenTable()
        self.rep = rep  # the terminal has REP (repeat the last character): see encode
        self.tabs = tabs  # the terminal's own tab stops: every `tabs` columns (0: not used)
        self.stops: Tabs = tabs  # the stops moves use now (ours once set: see _tune_stops)
        # May set its own tab stops (terminfo `hts`, `tbc`): see tab_stops.StopTuner.
        self.tuner = StopTuner() if set_tabs and tabs else None
        self.own_sent = False  # stops of ours were sent and not yet put back
        # `check`: use tabs only once the terminal has answered that its stops are as
        # claimed (tab_stops.StopCheck; ask_tabs, cursor_report); until then, none.
        self.check = StopCheck(tabs) if check and tabs else None
        self.want_own = set_tabs and self.check is not None
        self.pending_stops: tuple[int, ...] = ()  # ours, sent and asked about
        if self.check is not None:
            self.tabs = self.stops = 0
            self.tuner = None
        self.newline = newline  # a line feed lands in column 0 of the next row (ONLCR)
        self.forwarded_frames = 0  # frames passed on as they were (unmodellable)
        self.errors = 0  # of those, frames where the model itself failed (a bug)
        self.cursor_visible = True
        # Scrolling margins left set by a forwarded frame: relative moves would stop at them,
        # so frames are forwarded as they are until the margins are reset.
        self.margins = False
        self._reset(width, height)
        self.pen = DEFAULT  # Textual's pen, as its own output would have left it
        self.x: int | None = None  # Textual's cursor (None = unknown)
        self.y: int | None = None

    def _reset(self, width: int, height: int) -> None:
        """Forget what the terminal shows (all unknown) at this size."""
        self.width, self.height = width, height
        self._goto_cache: dict[str, tuple[int, int]] = {}
        self.chars: list[Row] = [[None] * width for _ in range(height)]
        self.cell_pens: list[PenRow] = [[UNKNOWN] * width for _ in range(height)]
        self.term_pen = UNKNOWN
        self.tx: int | None = None  # the terminal's cursor after our output
        self.ty: int | None = None

    # -- public ---------------------------------------------------------------------------

    def feed(self, frame: str, size: tuple[int, int]) -> str:
        """The bytes to send instead of `frame`, for a terminal of `size` (columns, rows)."""
        if size != (self.width, self.height):
            self._reset(*size)
            if self.stops != self.tabs or self.own_sent:  # ours: a resize may reset them (tmux)
                self.stops = 0
                if self.check is not None:
                    self.check.forget_own()
            if self.tuner is not None:  # moves of the old layout say nothing of the new
                self.tuner = StopTuner()
        out: list[str] = []
        self._tune_stops(out)
        head = "".join(out)
        pen, x, y = self.pen, self.x, self.y
        term_pen, tx, ty = self.term_pen, self.tx, self.ty
        try:
            self._play(frame, out)
        except Exception as exc:  # Unmodellable, or a bug here: never a broken screen
            if not isinstance(exc, Unmodellable):
                self.errors += 1
            # Sent as is, from the pen and cursor Textual's own output would have left.
            prefix = ""
            if pen != UNKNOWN:
                prefix = self.pens.change(term_pen, pen)
            if x is not None and y is not None:
                prefix += cursor_move(tx, ty, x, y, self.stops, self.width, self.newline)
            self._forwarded(frame)
            return head + prefix + frame
        return "".join(out).replace(_EMPTY_SYNC, "")

    def ask_tabs(self) -> str:
        """The question that lets tabs be used (see StopCheck), to send once the screen is
        set up; "" without a check."""
        if self.check is None:
            return ""
        self.tx = None  # the tabs asked about leave the cursor we do not know where
        if not self.own_sent:  # asked again (back from Ctrl+Z): no tab until the answer
            self.stops = 0
        return self.check.ask_default()

    def cursor_report(self, x: int) -> bool:
        """The terminal's answer to a question about its stops: the cursor in column `x`.
        False if no question was pending (the report is someone else's)."""
        if self.check is None or not self.check.pending:
            return False
        found = self.check.answer(x)
        if found is None:
            return True
        kind, right = found
        if kind == "default":
            if right:
                self.tabs = self.check.every
                if self.stops == 0:
                    self.stops = self.tabs
                if self.want_own and self.tuner is None:
                    self.tuner = StopTuner()
            elif not self.own_sent:  # e.g. `tabs -4` run while we were suspended
                self.tabs = self.stops = 0
                self.tuner = None
        elif right:
            self.stops = self.pending_stops
        else:  # the terminal did not take our stops: no more tabs, and no more tries
            self.stops = 0
            self.tuner = None
        return True

    def redraw(self) -> str:
        """Clear the terminal and send everything again (Ctrl+L): for a screen that something
        else wrote over (a `wall` message, a kernel console line)."""
        out = [self.pens.change(self.term_pen, DEFAULT), "\x1b[2J"]
        if self.stops != self.tabs and isinstance(self.stops, tuple):
            out.append(self._send_stops(self.stops))  # something may have reset them
        self.term_pen = DEFAULT
        touched = {y: (self.chars[y], self.cell_pens[y]) for y in range(self.height)}
        self.chars = [[None if c is None else " " for c in row] for row in self.chars]
        self.cell_pens = [[UNKNOWN if c is None else DEFAULT for c in row] for row in self.chars]
        self._draw(touched, out)
        if self.cursor_visible and self.x is not None and self.y is not None:
            out.append(cursor_move(self.tx, self.ty, self.x, self.y, self.stops, self.width,
                                   self.newline))
            self.tx, self.ty = self.x, self.y
        return "".join(out)

    def restore_tabs(self) -> str:
        """What puts the terminal's tab stops back to every `tabs` columns if we changed
        them (to send on leaving: the shell after us expects them)."""
        if not self.own_sent:
            return ""
        out = self._send_stops(stop_columns(self.tabs, self.width))
        self.stops = self.tabs
        self.own_sent = False
        return out

    def _tune_stops(self, out: list[str]) -> None:
        """Set tab stops where this screen's moves go, when the tuner finds it pays; after a
        resize that may have reset ours, the default ones again (known state)."""
        if self.tuner is None or not self.width:
            return
        if self.check is not None and self.check.pending:
            return  # an answer about stops is on its way
        if self.stops == 0:  # ours were set, then the size changed: state unknown
            out.append(self._send_stops(stop_columns(self.tabs, self.width)))
            self.stops = self.tabs
            self.own_sent = False
            return
        chosen = self.tuner.propose(self.stops, self.width, self.newline)
        if chosen is not None:
            out.append(self._send_stops(chosen))
            self.own_sent = True
            if self.check is None:
                self.stops = chosen
            else:  # used once the terminal says it has them
                out.append(self.check.ask_own(chosen))
                self.pending_stops = chosen
                self.stops = 0
                self.tx = None

    def _send_stops(self, stops: tuple[int, ...]) -> str:
        row = self.ty if self.ty is not None else 0
        self.tx, self.ty = (max(stops) if stops else 0), row
        return set_stops_sequence(stops, row)

    def row_text(self, y: int) -> str:
        """The model's text of one row ("?" where unknown): for tests and debugging."""
        return "".join("?" if c is None else c for c in self.chars[y])

    # -- playing a frame ------------------------------------------------------------------

    def _forwarded(self, frame: str) -> None:
        """After forwarding `frame` raw: nothing on screen is vouched for any more."""
        self.forwarded_frames += 1
        self._reset(self.width, self.height)
        shown, hidden = frame.rfind("\x1b[?25h"), frame.rfind("\x1b[?25l")
        if shown != hidden:
            self.cursor_visible = shown > hidden
        margins = _MARGINS.findall(frame)
        if margins:
            self.margins = margins[-1].strip(";") != ""
        last = next(iter(reversed(_LAST_SGR.findall(frame))), None)
        if last is not None:
            self.pen = DEFAULT if last in ("", "0") else UNKNOWN
        self.x = self.y = None

    def _play(self, frame: str, out: list[str]) -> None:
        if self.margins:
            raise Unmodellable("scrolling margins are set")
        touched: dict[int, tuple[Row, PenRow]] = {}
        goto = self._goto_cache
        for m in _TOKEN.finditer(frame):
            params, inter, final, text = m.groups()
            if text is not None:
                self._text(text, touched)
                continue
            if final is not None:
                if final == "m" and not inter and (not params or params[0] not in "<=>?"):
                    self.pen = self.pens.apply(self.pen, params)
                elif final == "H" and not inter:
                    place = goto.get(params)
                    if place is None:
                        place = goto[params] = self._goto(params)
                    self.x, self.y = place
                elif final == "f" and not inter:
                    self.x, self.y = self._goto(params)
                elif final in "ABCDGd" and not inter and not params.startswith("?"):
                    self._relative(final, int(params or 1) or 1)
                elif final in "hl" and params.startswith("?") and not inter:
                    self._mode(params[1:].split(";"), final == "h", m.group(0), touched, out)
                elif final in "JK" and not inter and params in ("", "0", "1", "2"):
                    self._erase(final, int(params or 0), m.group(0), touched, out)
                elif final in _UNMODELLED_CSI or (final in "hl" and not inter):
                    raise Unmodellable(m.group(0))
                else:  # queries, keyboard protocol, window ops, cursor shape...
                    self._pass(m.group(0), touched, out)
                continue
            seq = m.group(0)
            if seq in "\n\x0b\x0c":
                self.x = self.y = None  # pty output processing may add CR; Textual moves next
            elif seq == "\r":
                self.x = 0 if self.y is not None else None
            elif seq == "\x07" or seq.startswith(("\x1b]", "\x1bP", "\x1b_", "\x1b^", "\x1bX")):
                if seq.startswith("\x1b]8;"):
                    raise Unmodellable("hyperlink")
                self._pass(seq, touched, out)
            elif seq in ("\x1b=", "\x1b>", "\x1b(B"):
                self._pass(seq, touched, out)
            else:
                raise Unmodellable(repr(seq))
        self._draw(touched, out)
        if self.cursor_visible and self.x is not None and self.y is not None:
            out.append(cursor_move(self.tx, self.ty, self.x, self.y, self.stops, self.width,
                                   self.newline))
            self.tx, self.ty = self.x, self.y

    def _goto(self, params: str) -> tuple[int, int]:
        """Where `ESC [ row ; col H` puts the cursor (clamped to the screen, as terminals do)."""
        parts = params.split(";")
        y = int(parts[0] or 1) - 1
        x = int(parts[1] or 1) - 1 if len(parts) > 1 else 0
        return min(max(x, 0), self.width - 1), min(max(y, 0), self.height - 1)

    def _relative(self, final: str, n: int) -> None:
        if final == "G":
            self.x = min(n, self.width) - 1 if self.y is not None else None
        elif final == "d":
            self.y = min(n, self.height) - 1 if self.x is not None else None
        elif self.x is not None and self.y is not None:
            if final in "AB":
                self.y = min(max(self.y + (n if final == "B" else -n), 0), self.height - 1)
            else:
                self.x = min(max(self.x + (n if final == "C" else -n), 0), self.width - 1)

    def _row(self, y: int, touched: dict[int, tuple[Row, PenRow]]) -> tuple[Row, PenRow]:
        row = touched.get(y)
        if row is None:
            row = touched[y] = (self.chars[y][:], self.cell_pens[y][:])
        return row

    def _text(self, text: str, touched: dict[int, tuple[Row, PenRow]]) -> None:
        x, y, pen = self.x, self.y, self.pen
        if x is None or y is None or pen == UNKNOWN:
            raise Unmodellable("text at an unknown place or in an unknown pen")
        chars, pens = self._row(y, touched)
        if x and chars[x] == "":
            raise Unmodellable("splits a wide character")
        if text.isascii():
            end = x + len(text)
            if end > self.width:
                raise Unmodellable("text off the right edge")
            chars[x:end] = text
            pens[x:end] = [pen] * len(text)
        else:
            end = x
            for char in text:
                w = _width(char)
                if w == 0:
                    if end == x:
                        raise Unmodellable("combining character with nothing to combine with")
                    lead = end - 1 if chars[end - 1] != "" else end - 2
                    chars[lead] = (chars[lead] or "") + char
                    continue
                if end + w > self.width:
                    raise Unmodellable("text off the right edge")
                chars[end] = char
                pens[end] = pen
                if w == 2:
                    chars[end + 1] = ""
                    pens[end + 1] = pen
                end += w
        if end < self.width and chars[end] == "":
            raise Unmodellable("leaves half a wide character")
        self.x = end if end < self.width else None  # at the edge: pending wrap, re-place

    def _draw(self, touched: dict[int, tuple[Row, PenRow]], out: list[str]) -> None:
        """Send the cells of `touched` rows that differ from the screen; adopt them.

        The runs of changed cells are encoded twice, in reading order and grouped by pen
        (e.g. all white digits, then all green graph bars: one colour change, not two per
        line), and the shorter encoding is sent. Either leaves the same screen."""
        runs: list[Run] = []
        one_pen_runs: list[Run] = []  # gaps filled only within one pen: for by_pen
        for y in sorted(touched):
            chars, pens = touched[y]
            have_chars, have_pens = self.chars[y], self.cell_pens[y]
            if chars != have_chars or pens != have_pens:
                runs += row_runs(self.pens, y, chars, pens, have_chars, have_pens,
                                 tabs=self.stops)
                one_pen_runs += row_runs(self.pens, y, chars, pens, have_chars, have_pens,
                                         same_pen=True, tabs=self.stops)
                self.chars[y], self.cell_pens[y] = chars, pens
        touched.clear()
        if not runs:
            return
        start = (self.term_pen, self.tx, self.ty)
        moves: list[tuple[int | None, int | None, int, int]] = []
        screen = (self.chars, self.cell_pens)
        best = encode(self.pens, runs, start, self.width, self.rep, self.stops, self.newline,
                      moves, screen)
        if len({pen for run in runs for pen in run.pens}) > 1:  # two pens or more
            grouped_moves: list[tuple[int | None, int | None, int, int]] = []
            grouped = encode(self.pens, by_pen(one_pen_runs, self.term_pen), start,
                             self.width, self.rep, self.stops, self.newline, grouped_moves,
                             screen)
            if len(grouped[0]) < len(best[0]):
                best, moves = grouped, grouped_moves
        if self.tuner is not None:
            self.tuner.record(moves)
        out.append(best[0])
        self.term_pen, self.tx, self.ty = best[1], best[2], best[3]

    # -- sequences that are not drawing ---------------------------------------------------

    def _pass(self, seq: str, touched: dict[int, tuple[Row, PenRow]], out: list[str]) -> None:
        """Send a non-drawing sequence in its place: after everything drawn before it."""
        self._draw(touched, out)
        out.append(seq)

    def _mode(self, modes: list[str], on: bool, seq: str, touched: dict[int, tuple[Row, PenRow]],
              out: list[str]) -> None:
        if "6" in modes or "69" in modes:
            raise Unmodellable("origin mode or side margins")
        screen = _SCREEN_MODES.intersection(modes)
        if ("25" in modes and on) or (screen and not on):
            # The cursor will show, or the main screen come back (and the shell draw on it
            # after we quit): leave the cursor and pen as Textual's own output would.
            self._draw(touched, out)
            if on and self.x is not None and self.y is not None:
                out.append(cursor_move(self.tx, self.ty, self.x, self.y, self.stops, self.width,
                                   self.newline))
                self.tx, self.ty = self.x, self.y
            if not on and self.pen != UNKNOWN:
                out.append(self.pens.change(self.term_pen, self.pen))
                self.term_pen = self.pen
        self._pass(seq, touched, out)
        if "25" in modes:
            self.cursor_visible = on
        if screen:
            self._reset(self.width, self.height)
            self.x = self.y = None

    def _erase(self, final: str, how: int, seq: str, touched: dict[int, tuple[Row, PenRow]],
               out: list[str]) -> None:
        """Clear screen / line: sent as is (cheaper than blanks), then modelled as blanks."""
        if self.pen != DEFAULT:
            raise Unmodellable("erase with a coloured pen")
        if (how != 2 or final == "K") and (self.x is None or self.y is None):
            raise Unmodellable("erase from an unknown cursor position")
        self._draw(touched, out)
        out.append(self.pens.change(self.term_pen, DEFAULT))
        self.term_pen = DEFAULT
        if self.x is not None and self.y is not None:
            out.append(cursor_move(self.tx, self.ty, self.x, self.y, self.stops, self.width,
                                   self.newline))
            self.tx, self.ty = self.x, self.y
        out.append(seq)
        x, y, width = self.x or 0, self.y or 0, self.width
        spans: list[tuple[int, int, int]]
        if final == "K":
            spans = [(y, (x, 0, 0)[how], (width, x + 1, width)[how])]
        elif how == 2:
            spans = [(r, 0, width) for r in range(self.height)]
        elif how == 0:
            spans = [(y, x, width)] + [(r, 0, width) for r in range(y + 1, self.height)]
        else:
            spans = [(r, 0, width) for r in range(y)] + [(y, 0, x + 1)]
        for r, a, b in spans:
            self.chars[r][a:b] = [" "] * (b - a)
            self.cell_pens[r][a:b] = [DEFAULT] * (b - a)
            self._mend_wide(r, a, b)

    def _mend_wide(self, r: int, a: int, b: int) -> None:
        """An erase that cut a wide character in half: its other half is no longer known."""
        row = self.chars[r]
        if b < self.width and row[b] == "":
            row[b] = None
            self.cell_pens[r][b] = UNKNOWN
        if a > 0 and row[a - 1] is not None and row[a] == " " and _width(row[a - 1] or " ") == 2:
            row[a - 1] = None
            self.cell_pens[r][a - 1] = UNKNOWN
