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

from rich.cells import get_character_cell_size as _width  # cached by rich

from bwmon.tui.output.moves import cursor_move
from bwmon.tui.output.pens import DEFAULT, UNKNOWN, PenTable, Unmodellable
from bwmon.tui.output.runs import PenRow, Row, by_pen, encode, row_runs

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

Touched = dict[int, tuple[Row, PenRow]]  # rows a frame drew on: new characters and pens


class ScreenDiff:
    """The terminal's screen as last drawn by us, and the encoder of the next frame's changes."""

    def __init__(self, width: int = 0, height: int = 0) -> None:
        self.pens = PenTable()
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

    def feed(self, frame: str, size: tuple[int, int]) -> str:
        """The bytes to send instead of `frame`, for a terminal of `size` (columns, rows)."""
        if size != (self.width, self.height):
            self._reset(*size)
        out: list[str] = []
        pen, x, y = self.pen, self.x, self.y
        term_pen, tx, ty = self.term_pen, self.tx, self.ty
        try:
            self._play(frame, out)
        except Exception as exc:  # Unmodellable, or a bug here: never a broken screen
            if not isinstance(exc, Unmodellable):
                self.errors += 1
            # Sent as is, from the pen and cursor Textual's own output would have left.
            prefix = self.pens.change(term_pen, pen) if pen != UNKNOWN else ""
            if x is not None and y is not None:
                prefix += cursor_move(tx, ty, x, y)
            self._forwarded(frame)
            return prefix + frame
        return "".join(out).replace(_EMPTY_SYNC, "")

    def clear(self) -> str:
        """Clear the terminal and know it blank (for Ctrl+L: Textual then draws everything
        again, over whatever else wrote on the screen or a part of it that is missing)."""
        out = self.pens.change(self.term_pen, DEFAULT) + "\x1b[2J"
        self._reset(self.width, self.height)
        self.chars = [[" "] * self.width for _ in range(self.height)]
        self.cell_pens = [[DEFAULT] * self.width for _ in range(self.height)]
        self.term_pen = DEFAULT
        return out

    def _place_cursor(self, out: list[str]) -> None:
        """Put the terminal's cursor where Textual's output would have left it."""
        if self.x is not None and self.y is not None:
            out.append(cursor_move(self.tx, self.ty, self.x, self.y))
            self.tx, self.ty = self.x, self.y

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
        touched: Touched = {}
        goto = self._goto_cache
        for m in _TOKEN.finditer(frame):
            params, inter, final, text = m.groups()
            if text is not None:
                self._text(text, touched)
            elif final is not None:
                if final == "m" and not inter and (not params or params[0] not in "<=>?"):
                    self.pen = self.pens.apply(self.pen, params)
                elif final in "Hf" and not inter:
                    place = goto.get(params)
                    if place is None:
                        place = goto[params] = self._goto(params)
                    self.x, self.y = place
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
            else:
                self._control(m.group(0), touched, out)
        self._draw(touched, out)
        if self.cursor_visible:
            self._place_cursor(out)

    def _control(self, seq: str, touched: Touched, out: list[str]) -> None:
        """A control character or a non-CSI escape sequence."""
        if seq in "\n\x0b\x0c":
            self.x = self.y = None  # pty output processing may add CR; Textual moves next
        elif seq == "\r":
            self.x = 0 if self.y is not None else None
        elif seq.startswith("\x1b]8;"):
            raise Unmodellable("hyperlink")
        elif seq == "\x07" or seq in ("\x1b=", "\x1b>", "\x1b(B") or seq.startswith(
                ("\x1b]", "\x1bP", "\x1b_", "\x1b^", "\x1bX")):
            self._pass(seq, touched, out)
        else:
            raise Unmodellable(repr(seq))

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

    def _row(self, y: int, touched: Touched) -> tuple[Row, PenRow]:
        row = touched.get(y)
        if row is None:
            row = touched[y] = (self.chars[y][:], self.cell_pens[y][:])
        return row

    def _text(self, text: str, touched: Touched) -> None:
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

    def _draw(self, touched: Touched, out: list[str]) -> None:
        """Send the cells of `touched` rows that differ from the screen; adopt them.

        The runs of changed cells are encoded twice, in reading order and grouped by pen
        (e.g. all white digits, then all green graph bars: one colour change, not two per
        line), and the shorter encoding is sent. Either leaves the same screen."""
        runs, one_pen_runs = [], []  # the second: gaps filled only within one pen, for by_pen
        for y in sorted(touched):
            chars, pens = touched[y]
            have_chars, have_pens = self.chars[y], self.cell_pens[y]
            if chars != have_chars or pens != have_pens:
                runs += row_runs(self.pens, y, chars, pens, have_chars, have_pens)
                one_pen_runs += row_runs(self.pens, y, chars, pens, have_chars, have_pens,
                                         same_pen=True)
                self.chars[y], self.cell_pens[y] = chars, pens
        touched.clear()
        if not runs:
            return
        start = (self.term_pen, self.tx, self.ty)
        best = encode(self.pens, runs, start, self.width)
        if len({pen for run in runs for pen in run.pens}) > 1:  # two pens or more
            grouped = encode(self.pens, by_pen(one_pen_runs, self.term_pen), start, self.width)
            if len(grouped[0]) < len(best[0]):
                best = grouped
        out.append(best[0])
        self.term_pen, self.tx, self.ty = best[1], best[2], best[3]

    # -- sequences that are not drawing ---------------------------------------------------

    def _pass(self, seq: str, touched: Touched, out: list[str]) -> None:
        """Send a non-drawing sequence in its place: after everything drawn before it."""
        self._draw(touched, out)
        out.append(seq)

    def _mode(self, modes: list[str], on: bool, seq: str, touched: Touched,
              out: list[str]) -> None:
        if "6" in modes or "69" in modes:
            raise Unmodellable("origin mode or side margins")
        screen = _SCREEN_MODES.intersection(modes)
        if ("25" in modes and on) or (screen and not on):
            # The cursor will show, or the main screen come back (and the shell draw on it
            # after we quit): leave the cursor and pen as Textual's own output would.
            self._draw(touched, out)
            if on:
                self._place_cursor(out)
            elif self.pen != UNKNOWN:
                out.append(self.pens.change(self.term_pen, self.pen))
                self.term_pen = self.pen
        self._pass(seq, touched, out)
        if "25" in modes:
            self.cursor_visible = on
        if screen:
            self._reset(self.width, self.height)
            self.x = self.y = None

    def _erase(self, final: str, how: int, seq: str, touched: Touched, out: list[str]) -> None:
        """Clear screen / line: sent as is (cheaper than blanks), then modelled as blanks."""
        if self.pen != DEFAULT:
            raise Unmodellable("erase with a coloured pen")
        if (how != 2 or final == "K") and (self.x is None or self.y is None):
            raise Unmodellable("erase from an unknown cursor position")
        self._draw(touched, out)
        out.append(self.pens.change(self.term_pen, DEFAULT))
        self.term_pen = DEFAULT
        self._place_cursor(out)
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
