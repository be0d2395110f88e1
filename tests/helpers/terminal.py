"""The one place tests drive a terminal: an emulator (pyte) for what a user would see, a
program on a pseudo-terminal of a given size, and a private tmux server.

- `Terminal`: a VT100/xterm-like screen fed with output text; `cells()` is what a user sees.
  It answers what a terminal answers (cursor position requests) into `answers`.
- `PtyApp`: bwmon-tui (or any command) on a pty; collects every byte it writes and, like every
  real terminal, answers its requests through a `Terminal`.
- `Tmux`: a real terminal implementation, on its own socket, read with capture-pane.
"""

from __future__ import annotations

import codecs
import fcntl
import os
import pty
import re
import select
import shlex
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pyte

REPO = Path(__file__).resolve().parents[2]

# pyte does not know these (kitty keyboard protocol, xterm key modifiers) and would print
# their last letter; a real terminal does not show them.
_UNKNOWN_TO_PYTE = re.compile(r"\x1b\[[<>=][0-9;]*[a-zA-Z]")

Cell = tuple[str, str, str, bool, bool, bool, bool, bool, bool]


class _AnsweringScreen(pyte.Screen):
    """A pyte screen that keeps its answers to requests (cursor position) for the program."""

    def __init__(self, cols: int, rows: int) -> None:
        super().__init__(cols, rows)
        self.answers: list[str] = []

    def write_process_input(self, data: str) -> None:
        self.answers.append(data)


class Terminal:
    """A VT100/xterm-like screen fed with output text; `cells()` is what a user would see."""

    def __init__(self, cols: int, rows: int) -> None:
        self.screen = _AnsweringScreen(cols, rows)
        self.stream = pyte.Stream(self.screen)

    def feed(self, data: str) -> None:
        self.stream.feed(_UNKNOWN_TO_PYTE.sub("", data))

    def resize(self, cols: int, rows: int) -> None:
        self.screen.resize(rows, cols)

    def take_answers(self) -> list[str]:
        """What the terminal has answered since the last call (e.g. cursor position reports)."""
        answers, self.screen.answers = self.screen.answers, []
        return answers

    def cells(self) -> list[list[Cell]]:
        """Every cell: character, colours and attributes."""
        s = self.screen
        return [[(c.data, c.fg, c.bg, c.bold, c.italics, c.underscore, c.strikethrough,
                  c.reverse, c.blink) for c in (s.buffer[y][x] for x in range(s.columns))]
                for y in range(s.lines)]

    def text(self) -> list[str]:
        return list(self.screen.display)


def first_difference(a: list[list[Cell]], b: list[list[Cell]]) -> str | None:
    """Where two screens differ, described for an assertion message (None if equal)."""
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    for y, (ra, rb) in enumerate(zip(a, b, strict=True)):
        if len(ra) != len(rb):
            return f"row {y}: {len(ra)} cols vs {len(rb)}"
        for x, (ca, cb) in enumerate(zip(ra, rb, strict=True)):
            if ca != cb:
                return f"row {y} col {x}: {ca} vs {cb}"
    return None


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtyApp:
    """bwmon-tui (via `python -m bwmon.tui.main`) on a pty; collects everything it writes.

    `answer`: a terminal emulator plays the output and answers what a terminal answers (e.g.
    cursor position requests), as every real terminal does; `tabs` sets its tab stops first (e.g.
    every 4 columns, as `tabs -4` would)."""

    def __init__(self, args: Sequence[str], size: tuple[int, int] = (80, 24),
                 env: dict[str, str] | None = None,
                 command: Sequence[str] = (sys.executable, "-m", "bwmon.tui.main"),
                 answer: bool = True, tabs: int = 8) -> None:
        self.terminal: Terminal | None = None
        if answer:
            self.terminal = Terminal(*size)
            self.terminal.screen.tabstops = set(range(tabs, size[0], tabs))
            self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.master, slave = pty.openpty()
        _set_size(slave, *size)
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
            if self.terminal is not None:
                self.terminal.feed(self.decoder.decode(chunk))
                for reply in self.terminal.take_answers():
                    os.write(self.master, reply.encode())
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
        _set_size(self.master, cols, rows)
        if self.terminal is not None:
            self.terminal.resize(cols, rows)
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


class Tmux:
    """A private tmux server (own socket, no user config) with one session running `command`
    (a shell command line, or an argv); read with capture-pane. `env` is set in the session."""

    def __init__(self, name: str, command: str | Sequence[str], size: tuple[int, int],
                 env: dict[str, str] | None = None) -> None:
        self.base = ["tmux", "-L", name]
        line = command if isinstance(command, str) else shlex.join(command)
        env_args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
        # The new server's environment is the pane's: COLUMNS and LINES (which the test
        # process may have) would win over the pane's real size in the program under test.
        server_env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        subprocess.run([*self.base, "-f", "/dev/null", "new-session", "-d", "-s", "main",
                        "-x", str(size[0]), "-y", str(size[1]), *env_args, line], check=True,
                       env=server_env)
        subprocess.run([*self.base, "set-option", "-t", "main", "remain-on-exit", "on"],
                       check=False)

    def screen(self) -> str:
        return subprocess.run([*self.base, "capture-pane", "-p", "-t", "main"], text=True,
                              capture_output=True, check=False).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "main", *keys], check=True)

    def pane_dead(self) -> bool:
        out = subprocess.run([*self.base, "display-message", "-p", "-t", "main",
                              "#{pane_dead}"], text=True, capture_output=True, check=False)
        return out.stdout.strip() == "1" or out.returncode != 0

    def wait(self, predicate: Callable[[str], object], timeout: float) -> str:
        """The screen once `predicate(screen)` holds; fails with the last screen after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.3)
        raise AssertionError(f"timed out; screen was:\n{screen}")

    def kill(self) -> None:
        subprocess.run([*self.base, "kill-server"], check=False, capture_output=True)

    def __enter__(self) -> Tmux:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
