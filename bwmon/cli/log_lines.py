"""Alert-log events as lines on stderr, for `bwmon serve` and `bwmon run`.

When stderr is the systemd journal (its device and inode are the ones `JOURNAL_STREAM` names),
each line starts with the sd-daemon priority prefix (`<3>` error, `<4>` warning, `<6>` info),
so `journalctl -p warning` finds the warnings. `general.log_level` drops less severe events.
A log line that cannot be written (the journal went away) is dropped: measuring goes on.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Mapping
from typing import TextIO

from bwmon.core.model import Level, LogEvent

PRIORITY = {Level.ERROR: 3, Level.WARNING: 4, Level.INFO: 6}  # syslog(3) numbers
SEVERITY = {Level.INFO: 0, Level.WARNING: 1, Level.ERROR: 2}


def is_journal(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Whether `stream` is connected to the journal (systemd.exec(5), $JOURNAL_STREAM)."""
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return bool(value) and value == f"{st.st_dev}:{st.st_ino}"


class LogLines:
    """Writes events at or above `level` to `stream`, prefixed for the journal when it is one."""

    def __init__(self, level: Callable[[], str] = lambda: "info", stream: TextIO | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.level = level  # read at each event: a reloaded configuration may change it
        self.journal = is_journal(self.stream, env)

    def event(self, event: LogEvent, text: str) -> None:
        """Write `text`, the line for `event`."""
        self.line(event.level, text)

    def line(self, level: Level, text: str) -> None:
        """Write `text` at `level`, unless that is below the configured level."""
        if SEVERITY[level] < SEVERITY[Level(self.level())]:
            return
        prefix = f"<{PRIORITY[level]}>" if self.journal else ""
        with contextlib.suppress(OSError, ValueError):
            self.stream.write(f"{prefix}{text}\n")
            self.stream.flush()
