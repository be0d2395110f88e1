"""A Textual driver that sends the terminal only what changed on screen, like curses does.

Textual re-sends every changed line region whole, with a full colour sequence per segment;
over a slow SSH link that is most of the bytes. `DiffDriver` collects what Textual writes
until each flush (one flush per frame), plays it onto `ScreenDiff` and writes only the
changed cells. `BWMON_TUI_DIFF=0` in the environment turns it off (plain Textual output),
for a terminal that misbehaves with it.

Tabs are used to move only once the terminal has answered a cursor position request showing
its stops are every 8 columns (tab_stops.StopCheck); then the layer sets its own stops where
the figures are (fewer bytes), again used only once the terminal shows it has them, and puts
every-8 stops back when leaving (and on Ctrl+Z). `BWMON_TUI_TABSTOPS=0` keeps the terminal's
stops untouched. A program killed outright cannot put them back; neither can it switch the
terminal out of the alternate screen and mouse reporting, so the terminal needs `reset`
then anyway, and `reset` sets stops every 8 columns again.
"""

from __future__ import annotations

import os
import termios
import threading
from typing import Any, NamedTuple

from textual import events
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

from bwmon.tui.output.screen import ScreenDiff

ENV_SWITCH = "BWMON_TUI_DIFF"
ENV_TABSTOPS = "BWMON_TUI_TABSTOPS"


class DiffDriver(LinuxDriver):
    """LinuxDriver whose output goes through a screen model and leaves as a per-cell diff."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:  # the tty Textual writes to (stderr): does it expand tabs?
            out_fd: int | None = self._file.fileno() if self._file is not None else None
        except (AttributeError, OSError, ValueError):
            out_fd = None
        caps = terminal_caps(os.environ.get("TERM", ""), out_fd)
        self.screen_diff = ScreenDiff(rep=caps.rep, tabs=caps.tabs,
                                      set_tabs=caps.set_tabs and own_tab_stops(os.environ),
                                      newline=caps.newline, check=True)
        self._pending: list[str] = []
        self._lock = threading.Lock()

    def start_application_mode(self) -> None:
        super().start_application_mode()  # type: ignore[no-untyped-call]
        self.flush()  # the screen set up (alternate screen): then ask about the tab stops
        with self._lock:
            ask = self.screen_diff.ask_tabs()
        if ask:
            super().write(ask)

    def process_message(self, message: Message) -> None:
        """The answers to our cursor position requests are ours (input thread)."""
        if isinstance(message, events.CursorPosition):
            with self._lock:
                if self.screen_diff.cursor_report(message.x):
                    return
        super().process_message(message)

    def write(self, data: str) -> None:
        with self._lock:
            self._pending.append(data)

    def flush(self) -> None:
        with self._lock:
            if not self._pending:
                return
            frame = "".join(self._pending)
            self._pending.clear()
            out = self.screen_diff.feed(frame, self._current_size())
        if out:
            super().write(out)

    def redraw(self) -> None:
        """Send the whole screen again on a cleared terminal (the curses Ctrl+L)."""
        self.flush()
        with self._lock:
            out = self.screen_diff.redraw()
        super().write(out)

    def _current_size(self) -> tuple[int, int]:
        """The terminal's size now (the frame was laid out for it, or a resize is on its way)."""
        try:
            size = os.get_terminal_size(self.fileno)
        except OSError:
            return self.screen_diff.width, self.screen_diff.height
        return size.columns, size.lines

    def stop_application_mode(self) -> None:
        self.flush()
        with self._lock:
            restore = self.screen_diff.restore_tabs()  # the shell expects stops every 8
        if restore:
            super().write(restore)
        super().stop_application_mode()
        self.flush()

    def close(self) -> None:
        self.flush()
        super().close()


class TerminalCaps(NamedTuple):
    """What the output may use beyond plain moves: REP, tab stops every `tabs` columns, its
    own tab stops (`set_tabs`), and a line feed to column 0 of the next row (`newline`)."""

    rep: bool = False
    tabs: int = 0
    set_tabs: bool = False
    newline: bool = False


def terminal_caps(term: str, fileno: int | None = None) -> TerminalCaps:
    """TERM's capabilities from terminfo, as curses would use them: REP (`rep`: xterm,
    alacritty...; not tmux, screen, the Linux console), tabs (`ht` with `it#8`, unless the
    tty expands tabs into spaces) and setting them (`hts` and `tbc`: all four). From the
    tty: a line feed goes to column 0 (OPOST with ONLCR, no OCRNL). Unknown TERM: none.
    (Python's curses reads one terminfo entry per process: the first TERM asked about.)"""
    if not term:
        return TerminalCaps()
    try:
        import curses

        fd = os.open(os.devnull, os.O_WRONLY)
        try:
            curses.setupterm(term, fd)
        finally:
            os.close(fd)
        rep = curses.tigetstr("rep") is not None
        tabs = curses.tigetnum("it") if curses.tigetstr("ht") == b"\t" else 0
        settable = curses.tigetstr("hts") == b"\x1bH" and curses.tigetstr("tbc") == b"\x1b[3g"
    except Exception:  # no curses module, no terminfo entry: plain moves only
        return TerminalCaps()
    newline = False
    if fileno is not None:
        try:
            oflag = termios.tcgetattr(fileno)[1]
        except termios.error:
            oflag = 0
        if oflag & termios.OPOST and oflag & termios.TABDLY == termios.TAB3:
            tabs = 0  # the tty turns tabs into spaces, which would overwrite cells
        newline = bool(oflag & termios.OPOST and oflag & termios.ONLCR
                       and not oflag & (termios.OCRNL | termios.ONLRET)
                       and oflag & termios.NLDLY == termios.NL0)
    tabs = tabs if tabs == 8 else 0
    return TerminalCaps(rep, tabs, settable and tabs > 0, newline)


def own_tab_stops(environ: dict[str, str] | os._Environ[str]) -> bool:
    """Whether the terminal's tab stops may be set (`BWMON_TUI_TABSTOPS`, on unless 0)."""
    return environ.get(ENV_TABSTOPS, "1").strip().lower() not in ("0", "no", "off", "false")


def driver_class(environ: dict[str, str] | None = None) -> type[Driver] | None:
    """The driver bwmon-tui runs with: DiffDriver unless switched off or not on a Unix tty
    (None lets Textual choose, e.g. TEXTUAL_DRIVER or the Windows driver)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_SWITCH, "1").strip().lower() in ("0", "no", "off", "false"):
        return None
    if os.name != "posix" or env.get("TEXTUAL_DRIVER"):
        return None
    return DiffDriver
