"""Real-socket helpers for the pipe tests: a threaded target, clients, and a relay child.

Target protocol ("reply" mode): the client sends an 8-byte big-endian count M, then any payload,
then shuts down its write side; the target counts what it got and answers M bytes, then closes.
So every exchange also exercises half-close through the relay.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHUNK = bytes(1 << 20)


class Target:
    """A TCP server on loopback (port 0): 'reply', 'discard' (read forever) or 'source'."""

    def __init__(self, host: str = "127.0.0.1", mode: str = "reply", port: int = 0,
                 *, record: bool = False) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family, backlog=512)
        self.port: int = self.sock.getsockname()[1]
        self.mode = mode
        self.received: dict[str, int] = {}  # client peer of the relay's side -> payload bytes
        self.lock = threading.Lock()
        self.closing = False
        # with `record`: (time, bytes so far) as payload arrives, over all connections
        self.arrivals: list[tuple[float, int]] | None = [] if record else None
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn, addr), daemon=True).start()

    def _handle(self, conn: socket.socket, addr: Any) -> None:
        with conn, contextlib.suppress(OSError):
            if self.mode == "source":
                while not self.closing and conn.send(CHUNK[:65536]):
                    pass
                return
            buf = bytearray(1 << 20)
            header = b""
            if self.mode == "reply":
                while len(header) < 8:
                    part = conn.recv(8 - len(header))
                    if not part:
                        return
                    header += part
            got = 0
            arrivals = self.arrivals
            while n := conn.recv_into(buf):
                got += n
                if arrivals is not None:
                    with self.lock:  # one running total over all connections
                        total = arrivals[-1][1] + n if arrivals else n
                        arrivals.append((time.monotonic(), total))
            with self.lock:
                self.received[f"{addr[0]}:{addr[1]}"] = got
            left = int.from_bytes(header, "big") if header else 0
            view = memoryview(CHUNK)
            while left:
                left -= conn.send(view[: min(left, len(view))])

    def close(self) -> None:
        self.closing = True
        self.sock.close()


def exchange(host: str, port: int, send: int, reply: int) -> tuple[int, str]:
    """One client: send `send` payload bytes (after the header), half-close, read all.

    Returns (bytes received, this client's "addr:port" as the relay sees it).
    """
    with socket.create_connection((host, port), timeout=30) as s:
        local = s.getsockname()
        peer = f"[{local[0]}]:{local[1]}" if ":" in local[0] else f"{local[0]}:{local[1]}"
        s.sendall(reply.to_bytes(8, "big"))
        view = memoryview(CHUNK)
        left = send
        while left:
            n = min(left, len(view))
            s.sendall(view[:n])
            left -= n
        s.shutdown(socket.SHUT_WR)
        buf = bytearray(1 << 20)
        got = 0
        while n := s.recv_into(buf):
            got += n
        return got, peer


@dataclass
class Result:
    got: int = -1
    peer: str = ""
    error: str | None = None


def run_clients(host: str, port: int, specs: list[tuple[int, int]]) -> list[Result]:
    """Run one client per (send, reply) spec, all at once, in threads."""
    results = [Result() for _ in specs]

    def one(i: int, send: int, reply: int) -> None:
        try:
            results[i].got, results[i].peer = exchange(host, port, send, reply)
        except OSError as exc:
            results[i].error = str(exc)

    threads = [threading.Thread(target=one, args=(i, *spec)) for i, spec in enumerate(specs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@dataclass
class Child:
    """A running `python -m bwmon.core.pipes.child --control` and the reports read so far."""

    proc: subprocess.Popen[bytes]
    first: dict[str, Any]
    reports: list[dict[str, Any]] = field(default_factory=list)

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.first["listen"].rsplit(":", 1)
        return host.strip("[]"), int(port)

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the pipe child stopped reporting"
        report: dict[str, Any] = json.loads(line)
        self.reports.append(report)
        return report

    def control(self, change: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(change).encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self) -> dict[str, Any]:
        """Close stdin (the child then exits) and return its final report."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        lines = self.proc.stdout.read().splitlines()
        assert self.proc.wait(10) == 0
        for line in lines:
            self.reports.append(json.loads(line))
        return self.reports[-1]


def pipe_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "bwmon.core.pipes.child", "--control", *args]


@contextlib.contextmanager
def pipe_child(*args: str) -> Iterator[Child]:
    """Start a relay child with `args` (e.g. --port 0 --target-host ...) and stop it after."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        pipe_argv(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=REPO
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        yield Child(proc, first, [first])
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Any, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
