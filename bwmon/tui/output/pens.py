"""Pens (the colours and attributes a terminal draws text with) and the shortest SGR sequence
that turns one into another.

A pen is interned as a small int so screen cells compare fast; its parts are kept as the SGR
parameter text Textual sent (`38;5;253`, `38;2;1;2;3`), so the colour depth is never changed.
"""

from __future__ import annotations

from typing import NamedTuple


class Unmodellable(Exception):
    """The output holds something the screen model cannot follow: forward it as it is."""


class Pen(NamedTuple):
    """Attribute bits plus foreground, background and underline colour ("" = default)."""

    flags: int = 0
    fg: str = ""
    bg: str = ""
    ul: str = ""


# SGR code -> attribute bit it sets, and SGR "off" code -> bits it clears.
_ON = {1: 1, 2: 2, 3: 4, 4: 8, 5: 16, 6: 32, 7: 64, 8: 128, 9: 256, 21: 512, 53: 1024}
_OFF = {22: 1 | 2, 23: 4, 24: 8 | 512, 25: 16 | 32, 27: 64, 28: 128, 29: 256, 55: 1024}
_BIT_CODE = {bit: code for code, bit in _ON.items()}

DEFAULT = 0  # the id of Pen()
UNKNOWN = -1  # the terminal's pen is not known (after forwarding output as is)


class PenTable:
    """Interns pens, applies SGR sequences to them and encodes the shortest change of pen."""

    def __init__(self) -> None:
        self.pens: list[Pen] = [Pen()]
        self._ids: dict[Pen, int] = {Pen(): DEFAULT}
        self._applied: dict[tuple[int, str], int] = {}
        self._changes: dict[tuple[int, int], str] = {}

    def intern(self, pen: Pen) -> int:
        found = self._ids.get(pen)
        if found is None:
            found = self._ids[pen] = len(self.pens)
            self.pens.append(pen)
        return found

    def apply(self, pen_id: int, params: str) -> int:
        """The pen after `ESC [ params m`, starting from `pen_id` (UNKNOWN only if it resets)."""
        key = (pen_id, params)
        found = self._applied.get(key)
        if found is None:
            found = self._applied[key] = self.intern(self._apply(pen_id, params))
        return found

    def _apply(self, pen_id: int, params: str) -> Pen:
        if ":" in params:
            raise Unmodellable("SGR with sub-parameters")
        codes = [int(p) if p else 0 for p in params.split(";")]
        if pen_id == UNKNOWN and codes[0] != 0:
            raise Unmodellable("SGR on an unknown pen")
        flags, fg, bg, ul = self.pens[pen_id] if pen_id != UNKNOWN else Pen()
        i = 0
        while i < len(codes):
            c = codes[i]
            if c == 0:
                flags, fg, bg, ul = 0, "", "", ""
            elif c in _ON:
                flags |= _ON[c]
            elif c in _OFF:
                flags &= ~_OFF[c]
            elif 30 <= c <= 37 or 90 <= c <= 97:
                fg = str(c)
            elif 40 <= c <= 47 or 100 <= c <= 107:
                bg = str(c)
            elif c == 39:
                fg = ""
            elif c == 49:
                bg = ""
            elif c == 59:
                ul = ""
            elif c in (38, 48, 58):
                n = 3 if i + 1 < len(codes) and codes[i + 1] == 5 else 5
                if i + 1 >= len(codes) or codes[i + 1] not in (2, 5) or i + n > len(codes):
                    raise Unmodellable("malformed extended colour")
                colour = ";".join(str(x) for x in codes[i:i + n])
                i += n - 1
                if c == 38:
                    fg = colour
                elif c == 48:
                    bg = colour
                else:
                    ul = colour
            else:
                raise Unmodellable(f"SGR {c}")
            i += 1
        return Pen(flags, fg, bg, ul)

    def change(self, old: int, new: int) -> str:
        """The shortest SGR sequence turning pen `old` (maybe UNKNOWN) into pen `new`."""
        key = (old, new)
        found = self._changes.get(key)
        if found is None:
            found = self._changes[key] = self._change(old, new)
        return found

    def _full(self, pen: Pen) -> list[str]:
        codes = [str(_BIT_CODE[1 << b]) for b in range(11) if pen.flags & (1 << b)]
        return codes + [c for c in (pen.fg, pen.bg, pen.ul) if c]

    def _change(self, old: int, new: int) -> str:
        if old == new:
            return ""
        target = self.pens[new]
        reset = "\x1b[m" if new == DEFAULT else "\x1b[0;" + ";".join(self._full(target)) + "m"
        if old == UNKNOWN:
            return reset
        source = self.pens[old]
        codes: list[str] = []
        turn_off = source.flags & ~target.flags
        turn_on = target.flags & ~source.flags
        for off_code, bits in _OFF.items():
            if turn_off & bits:
                codes.append(str(off_code))
                turn_on |= target.flags & bits  # the off code cleared a sibling we keep
        codes += [str(_BIT_CODE[1 << b]) for b in range(11) if turn_on & (1 << b)]
        for mine, theirs, default in ((target.fg, source.fg, "39"), (target.bg, source.bg, "49"),
                                      (target.ul, source.ul, "59")):
            if mine != theirs:
                codes.append(mine or default)
        relative = "\x1b[" + ";".join(codes) + "m"
        return relative if len(relative) < len(reset) else reset
