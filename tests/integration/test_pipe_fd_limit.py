"""A pipe that runs out of file descriptors (issue 25, item 5): `bwmon pipe` under `ulimit -n`
with many clients held open refuses what it cannot serve, cleanly, and gives everything back."""

from __future__ import annotations

import json
import os
import resource
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIMIT = 256  # ulimit -n of the pipe: room for a few dozen spliced connections
CLIENTS = 120

# The target: accepts any number of connections (its own limit raised) and drains them.
SINK = r"""
import asyncio, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
async def drain(reader, writer):
    while await reader.read(65536):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(drain, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


class Pipe:
    """`bwmon pipe --json` under `ulimit -n LIMIT`, its report lines and stderr collected."""

    def __init__(self, target_port: int, *extra: str) -> None:
        cmd = (f"ulimit -n {LIMIT} && exec {sys.executable} -m bwmon pipe --json "
               f"--interval 0.2 0 127.0.0.1 {target_port} {' '.join(extra)}")
        self.proc = subprocess.Popen(["bash", "-c", cmd], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": str(REPO)})
        assert self.proc.stderr is not None and self.proc.stdout is not None
        first = self.proc.stderr.readline()
        self.port = int(first.split(" → ")[0].rsplit(":", 1)[1])
        self.reports: list[dict[str, object]] = []
        self.err: list[str] = [first]
        threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True).start()

    def _read(self, stream: object, is_json: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            if is_json:
                self.reports.append(json.loads(line))
            else:
                self.err.append(line)

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def wait_report(self, ok: object, timeout: float = 20) -> dict[str, object]:
        n = len(self.reports)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.reports) > n and ok(self.reports[-1]):  # type: ignore[operator]
                return self.reports[-1]
            time.sleep(0.05)
        raise AssertionError(f"no such report; last: {self.reports[-1:]}; stderr: {self.err}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def served(clients: list[socket.socket]) -> list[socket.socket]:
    """The clients the pipe relays (kept open, nothing to read); the refused ones were closed
    (end of file or a reset to read)."""
    readable, _, _ = select.select(clients, [], [], 0.3)
    closed = set()
    for sock in readable:
        try:
            if sock.recv(1) == b"":
                closed.add(sock)
        except OSError:
            closed.add(sock)
    return [c for c in clients if c not in closed]


@pytest.mark.parametrize("path", ["splice", "streams"])
def test_out_of_file_descriptors_refuses_cleanly_and_releases_all(path: str) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    pipe = Pipe(int(sink.stdout.readline()), *(["--no-splice"] if path == "streams" else []))
    try:
        pipe.wait_report(lambda r: True)
        baseline = pipe.fds()
        relayed = 0
        for wave in (1, 2):  # capacity must come back after the first wave
            clients = [socket.create_connection(("127.0.0.1", pipe.port)) for _ in range(CLIENTS)]
            for c in clients:
                c.sendall(b"x" * 100)
            seen = CLIENTS * wave
            report = pipe.wait_report(
                lambda r, seen=seen: r["accepted"] + r["rejected"] + r["failed"] >= seen)
            kept = served(clients)
            assert 0 < len(kept) < CLIENTS  # some served, the rest refused (not left hanging)
            relayed += 100 * len(kept)
            open_now = len(kept)
            report = pipe.wait_report(lambda r, n=open_now: r["connections"] == n)
            for c in clients:
                c.close()
            report = pipe.wait_report(lambda r: r["connections"] == 0)
            deadline = time.monotonic() + 10
            while pipe.fds() > baseline and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pipe.fds() <= baseline, "file descriptors still held after every client left"
        text = "".join(pipe.err)
        assert "Traceback" not in text and "Exception in thread" not in text, text
        assert "ulimit -n" in text, text  # the refusal says why and what raises the limit
        assert report["in"] == relayed  # every byte of every served client, no more
    finally:
        pipe.stop()
        sink.kill()
        sink.wait()
