"""A Textual driver that sends the terminal only what changed on screen, like curses does.

Textual re-sends every changed line region whole, with a full colour sequence per segment;
over a slow SSH link that is most of the bytes. `DiffDriver` collects what Textual writes
until each flush (one flush per frame), plays it onto `ScreenDiff` and writes only the
changed cells. It changes nothing in the terminal's state beyond what Textual itself does.
`BWMON_TUI_DIFF=0` in the environment turns it off (plain Textual output), for a terminal
that misbehaves with it.

Ctrl+Z and `fg` need nothing of their own: Textual leaves and re-enters the alternate screen
through this driver, and either makes the model forget what the terminal shows; the app asks
Textual for a full repaint on return (BwmonApp.action_redraw), which is then sent whole.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver

from bwmon.tui.output.screen import ScreenDiff

ENV_SWITCH = "BWMON_TUI_DIFF"


class DiffDriver(LinuxDriver):
    """LinuxDriver whose output goes through a screen model and leaves as a per-cell diff."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.screen_diff = ScreenDiff()
        self._pending: list[str] = []
        self._lock = threading.Lock()

    def write(self, data: str) -> None:
        with self._lock:
            self._pending.append(data)

    def flush(self) -> None:
        with self._lock:
            if not self._pending:
                return
            frame = "".join(self._pending)
            self._pending.clear()
            out = self.screen_diff.feed(frame, self._terminal_size())
        if out:
            super().write(out)

    def clear(self) -> None:
        """Clear the terminal, known blank from now on (Ctrl+L, before a full repaint)."""
        self.flush()
        with self._lock:
            out = self.screen_diff.clear()
        super().write(out)

    def _terminal_size(self) -> tuple[int, int]:
        """The terminal's size now (the frame was laid out for it, or a resize is on its way)."""
        try:
            size = os.get_terminal_size(self.fileno)
        except OSError:
            return self.screen_diff.width, self.screen_diff.height
        return size.columns, size.lines

    def close(self) -> None:
        self.flush()
        super().close()


def driver_class(environ: dict[str, str] | None = None) -> type[Driver] | None:
    """The driver bwmon-tui runs with: DiffDriver unless switched off or not on a Unix tty
    (None lets Textual choose, e.g. TEXTUAL_DRIVER or the Windows driver)."""
    env = os.environ if environ is None else environ
    if env.get(ENV_SWITCH, "1").strip().lower() in ("0", "no", "off", "false"):
        return None
    if os.name != "posix" or env.get("TEXTUAL_DRIVER"):
        return None
    return DiffDriver
