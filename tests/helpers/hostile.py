"""Processes that name themselves as an attacker would, sending real traffic.

`named_sender` starts `exec -a NAME python3 -c SENDER` (argv[0] = NAME, any bytes but NUL), which
optionally sets its own comm too, connects to HOST:PORT and sends 2000 bytes every 0.1 s — or a
fixed total, then holds the connection open. It prints its local port once connected.
`socat_sink` is the issue's sink: `socat -u TCP-LISTEN:PORT,fork,reuseaddr /dev/null`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.netns import NetNS

SENDER = r"""
import socket, sys, time
host, port, comm, total = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3]), \
    int(sys.argv[4])
if comm:
    with open("/proc/self/comm", "wb") as f:
        f.write(comm[:15])
s = socket.create_connection((host, port))
print(s.getsockname()[1], flush=True)
sent = 0
while total == 0 or sent < total:
    n = 2000 if total == 0 else min(2000, total - sent)
    s.sendall(b"x" * n)
    sent += n
    time.sleep(0.1 if total == 0 else 0.01)
print("sent", flush=True)
sys.stdin.read()
"""

# The names: a terminal title + clear screen, OSC 52, a forged log line.
TITLE_AND_CLEAR = b"\x1b]0;PWNED\x07\x1b[2Jx"
CLIPBOARD = b"\x1b]52;c;cHduZWQ=\x07clip"
FORGED_LINE = b"evil\nbwmon: error: FAKE-INJECTED-LINE"
RUSSIAN = "загрузчик-файлов"  # 32 bytes: the kernel cuts the comm at 15, mid-character


def socat_sink(ns: NetNS, port: int) -> subprocess.Popen[bytes]:
    if shutil.which("socat") is None:
        pytest.skip("needs socat (Debian: socat)")
    sink = ns.popen(["socat", "-u", f"TCP-LISTEN:{port},fork,reuseaddr,bind=127.0.0.1",
                     "/dev/null"], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if f":{port:04X} ".encode() in ns.run("cat", "/proc/net/tcp").stdout.encode():
            return sink
        time.sleep(0.05)
    raise AssertionError("socat did not listen")


def named_sender(ns: NetNS, name: bytes, port: int, *, comm: bytes = b"", total: int = 0,
                 program: str | Path = sys.executable, tail: bytes = b""
                 ) -> tuple[subprocess.Popen[bytes], int]:
    """Start the sender as `name` in `ns`; returns it and its local port once connected.
    `tail`: one more argument, ignored by the sender (e.g. a huge one: Python itself cannot
    start with an argv[0] longer than a path may be)."""
    argv: list[bytes | str] = ["bash", "-c", 'exec -a "$0" "$@"', name, str(program), "-c",
                               SENDER, "127.0.0.1", str(port), comm.hex(), str(total)]
    if tail:
        argv.append(tail)
    proc = subprocess.Popen(["ip", "netns", "exec", ns.name, *argv],  # type: ignore[list-item]
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), f"sender did not connect: {line!r}"
    return proc, int(line)


def wait_sent(proc: subprocess.Popen[bytes]) -> None:
    """Wait until a sender with a fixed total has sent it all."""
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"sent"


def comm_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/comm").read_bytes().rstrip(b"\n")


def russian_program(tmp: Path) -> Path:
    """A symlink to this Python named `загрузчик-файлов`: started through it, a process's comm
    is the name's first 15 bytes, which are not UTF-8."""
    link = tmp / RUSSIAN
    os.symlink(sys.executable, link)
    return link
