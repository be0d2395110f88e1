"""The one sanitiser for text a process chose: names, command lines, users, paths, messages.

Any local user picks its processes' argv and comm, so before such text reaches a terminal, a
log line, a metric label or a notification it passes through `clean` (or `decode`, for bytes):

- control characters (C0, DEL, C1) become visible escapes: ESC is shown as the four
  characters `\\x1b`, a line feed as `\\x0a`, so no escape sequence, forged line or carriage
  return survives; format characters (bidi overrides, zero-width joiners), line and paragraph
  separators and unassigned code points become `\\uXXXX`;
- bytes that are not UTF-8 (a comm the kernel cut mid-character) become `\\xNN`, visible and
  never an error, so an undecodable name can hide no process;
- text is cut to a bounded length (a command line may be megabytes long), ending in "…".

Clean text passes through unchanged and costs one `str.isprintable()`; cleaning is idempotent.
"""

from __future__ import annotations

import unicodedata

__all__ = ["MAX_TEXT", "clean", "clean_lines", "decode", "decode_comm"]

MAX_TEXT = 4096  # characters kept of one name, command line or message
ELLIPSIS = "…"
# Non-printable in Python's sense but harmless on a terminal: spaces other than U+0020 and
# private-use characters. Everything else non-printable is escaped.
_KEEP = frozenset({"Zs", "Co"})


def _escape(ch: str) -> str:
    cp = ord(ch)
    if 0xDC80 <= cp <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{cp - 0xDC00:02x}"
    if cp < 0x100:  # C0, DEL, C1
        return f"\\x{cp:02x}"
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def clean(text: str, limit: int = MAX_TEXT) -> str:
    """`text` safe for a terminal, a log line or a label: one line, no control character or
    escape sequence, at most `limit` characters (see the module docstring)."""
    if len(text) <= limit and text.isprintable():
        return text
    out: list[str] = []
    size = 0
    for ch in text[: limit + 1]:
        piece = ch if ch.isprintable() or unicodedata.category(ch) in _KEEP else _escape(ch)
        if size + len(piece) > limit:  # cut between pieces, never inside an escape
            while out and size > limit - len(ELLIPSIS):
                size -= len(out.pop())
            return "".join(out) + ELLIPSIS
        out.append(piece)
        size += len(piece)
    return "".join(out)


def clean_lines(text: str) -> str:
    """`clean` line by line, keeping the line feeds: for bwmon's own multi-line messages (a
    config error per line) that quote text someone else wrote."""
    return "\n".join(clean(line) for line in text.split("\n"))


def decode(raw: bytes, limit: int = MAX_TEXT) -> str:
    """Bytes a process or the kernel gave (a /proc file, a probe's output) as clean text:
    invalid UTF-8 becomes visible `\\xNN` escapes, never an exception."""
    return clean(raw.decode("utf-8", "surrogateescape"), limit)


def decode_comm(raw: bytes) -> str:
    """A process's comm as the kernel gives it (/proc/PID/comm, /proc/PID/stat's second field,
    an eBPF probe's `comm`): at most 15 bytes, possibly cut mid-character, newline-terminated
    in /proc. Every source of comm must go through here, so all of them name a process alike."""
    return decode(raw.removesuffix(b"\n"))
