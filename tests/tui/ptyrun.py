"""Run bwmon-tui in a pseudo-terminal of a given size: what a real terminal would receive."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class PtyApp:
    """bwmon-tui (via `python -m bwmon.tui.main`) on a pty; collects everything it writes."""

    def __init__(self, args: Sequence[str], size: tuple[int, int] = (80, 24),
                 env: dict[str, str] | None = None,
                 command: Sequence[str] = (sys.executable, "-m", "bwmon.tui.main")) -> None:
        self.master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        full_env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(REPO),
                        **(env or {}))
        self.proc = subprocess.Popen(
            [*command, *args], stdin=slave, stdout=slave,
            stderr=slave, env=full_env, start_new_session=True, close_fds=True)
        os.close(slave)
        self.output = bytearray()

    def read_for(self, seconds: float) -> int:
        """Read whatever arrives during `seconds`; returns the byte count."""
        end = time.monotonic() + seconds
        got = 0
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk
            got += len(chunk)
        return got

    def wait_for(self, text: bytes, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.output:
                return True
            if self.proc.poll() is not None:
                self.read_for(0.2)
                return text in self.output
            self.read_for(0.2)
        return text in self.output

    def resize(self, cols: int, rows: int) -> None:
        """Change the terminal's size and tell the app, as a terminal window would."""
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.kill(self.proc.pid, signal.SIGWINCH)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait_exit(self, timeout: float = 15.0) -> int | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return self.proc.returncode
            self.read_for(0.1)
        return None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
