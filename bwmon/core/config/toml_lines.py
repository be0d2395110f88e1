"""Line numbers of keys in a TOML text, so a pydantic error loc can be shown as file:line.

tomllib and tomlkit keep no positions, hence this small scanner. It maps
("alerts", 1, "match") to the line of `match =` in the second `[[alerts]]` table, and an item
of a multi-line array to its own line.
"""

from __future__ import annotations

import contextlib
import json

Loc = tuple[str | int, ...]


class TomlLines:
    """Maps key paths of a (valid) TOML text to 1-based lines: tables, keys and array items.

    A small scanner rather than a parser: the text was already accepted by tomllib, so it only
    has to follow table headers (`[x]`, `[[x]]` with their running index), dotted keys, strings
    and nested arrays/inline tables well enough to count lines.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[Loc, int] = {}
        self._counts: dict[Loc, int] = {}
        with contextlib.suppress(IndexError, ValueError):  # best effort: keep what was found
            self._document()

    def find(self, loc: Loc) -> int | None:
        """The line of loc, or of its nearest enclosing key or table that appears."""
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None

    # -- scanning -------------------------------------------------------------------------

    def _peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def _advance(self, n: int = 1) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + n)
        self.pos += n

    def _skip_space(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self._advance()
            elif ch == "#":
                end = self.text.find("\n", self.pos)
                self._advance((end if end >= 0 else len(self.text)) - self.pos)
            else:
                return

    def _record(self, loc: Loc) -> None:
        self.lines.setdefault(loc, self.line)

    def _document(self) -> None:
        table: Loc = ()
        while True:
            self._skip_space(newlines=True)
            if self.pos >= len(self.text):
                return
            if self._peek(2) == "[[":
                self._advance(2)
                path = self._key()
                self._advance(2)  # ]]
                index = self._counts.get(path, 0)
                self._counts[path] = index + 1
                table = (*path, index)
                self._record(path)
                self._record(table)
            elif self._peek() == "[":
                self._advance()
                table = self._key()
                self._advance()  # ]
                self._record(table)
            else:
                key = (*table, *self._key())
                self._record(key)
                self._skip_space(newlines=False)
                self._advance()  # =
                self._value(key)

    def _key(self) -> Loc:
        parts: list[str | int] = []
        while True:
            self._skip_space(newlines=False)
            ch = self._peek()
            if ch in ('"', "'"):
                start = self.pos
                self._string()
                raw = self.text[start : self.pos]
                parts.append(json.loads(raw) if ch == '"' else raw[1:-1])
            else:
                start = self.pos
                while self.pos < len(self.text) and (
                    self.text[self.pos].isalnum() or self.text[self.pos] in "_-"
                ):
                    self.pos += 1
                if self.pos == start:
                    raise ValueError("no key")
                parts.append(self.text[start : self.pos])
            self._skip_space(newlines=False)
            if self._peek() != ".":
                return tuple(parts)
            self._advance()

    def _string(self) -> None:
        quote = self._peek()
        if self._peek(3) == quote * 3:
            end = self.text.index(quote * 3, self.pos + 3)
            while quote == '"' and self._escaped(end):
                end = self.text.index(quote * 3, end + 1)
            end += 3
            while self.text[end : end + 1] == quote:  # up to two quotes may close the string
                end += 1
            self._advance(end - self.pos)
            return
        i = self.pos + 1
        while self.text[i] != quote:
            i += 2 if (quote == '"' and self.text[i] == "\\") else 1
        self._advance(i + 1 - self.pos)

    def _escaped(self, i: int) -> bool:
        n = 0
        while self.text[i - 1 - n] == "\\":
            n += 1
        return n % 2 == 1

    def _value(self, loc: Loc) -> None:
        self._skip_space(newlines=False)
        ch = self._peek()
        if ch == "[":
            self._advance()
            index = 0
            while True:
                self._skip_space(newlines=True)
                if self._peek() == "]":
                    self._advance()
                    return
                self._record((*loc, index))
                self._value((*loc, index))
                self._skip_space(newlines=True)
                if self._peek() == ",":
                    self._advance()
                    index += 1
                elif self._peek() != "]":
                    raise ValueError("unexpected text in array")
        elif ch == "{":
            self._advance()
            while True:
                self._skip_space(newlines=False)
                if self._peek() == "}":
                    self._advance()
                    return
                key = (*loc, *self._key())
                self._record(key)
                self._skip_space(newlines=False)
                self._advance()  # =
                self._value(key)
                self._skip_space(newlines=False)
                if self._peek() == ",":
                    self._advance()
                elif self._peek() != "}":
                    raise ValueError("unexpected text in inline table")
        elif ch in ('"', "'"):
            self._string()
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in ",]}\n#":
                self.pos += 1
