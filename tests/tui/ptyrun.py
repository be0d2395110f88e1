"""Run bwmon-tui in a pseudo-terminal of a given size: what a real terminal would receive."""

from __future__ import annotations

import codecs
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

import pyte

REPO = Path(__file__).resolve().parents[2]


class _Answering(pyte.Screen):
    """A screen that keeps its answers to requests (cursor position) for the program."""

    def __init__(self, cols: int, rows: int) -> None:
        super().__init__(cols, rows)
        self.answers: list[str] = []

    def write_process_input(self, data: str) -> None:
        self.answers.append(data)


class PtyApp:
    """bwmon-tui (via `python -m bwmon.tui.main`) on a pty; collects everything it writes.

    `answer`: a terminal emulator (pyte) plays the output and answers what a terminal answers
    (cursor position requests), as every real terminal does; `tabs` sets its tab stops first
    (e.g. every 4 columns, as `tabs -4` would)."""

    def __init__(self, args: Sequence[str], size: tuple[int, int] = (80, 24),
                 env: dict[str, str] | None = None,
                 command: Sequence[str] = (sys.executable, "-m", "bwmon.tui.main"),
                 answer: bool = True, tabs: int = 8) -> None:
        self.screen: _Answering | None = None
        if answer:
            self.screen = _Answering(*size)
            self.screen.tabstops = set(range(tabs, size[0], tabs))
            self.stream = pyte.Stream(self.screen)
            self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
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
            if self.screen is not None:
                self.stream.feed(self.decoder.decode(chunk))
                for reply in self.screen.answers:
                    os.write(self.master, reply.encode())
                self.screen.answers.clear()
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
        if self.screen is not None:
            self.screen.resize(rows, cols)
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
