"""Shaping on real sockets: a pipe held at 1 MiB/s each way while an unshaped one runs free."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.test_pipe_helpers import CHUNK, Target, pipe_child

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


def download(host: str, port: int, seconds: float, marks: list[tuple[float, int]]) -> None:
    """Read from a 'source' target through the pipe; record (time, total) as bytes arrive."""
    with socket.create_connection((host, port), timeout=10) as s:
        buf = bytearray(1 << 16)
        total, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            total += s.recv_into(buf)
            marks.append((time.monotonic(), total))


def upload(host: str, port: int, seconds: float, marks: list[tuple[float, int]]) -> None:
    """Write to a 'discard' target through the pipe; record (time, total) as writes complete."""
    with socket.create_connection((host, port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        total, end = 0, time.monotonic() + seconds
        view = memoryview(CHUNK)[:16384]
        while time.monotonic() < end:
            total += s.send(view)
            marks.append((time.monotonic(), total))


def steady_rate(marks: list[tuple[float, int]], skip: float = 0.5) -> float:
    """Bytes/s after the first `skip` seconds (socket buffers fill at full speed at first)."""
    t0 = marks[0][0] + skip
    start = next(m for m in marks if m[0] >= t0)
    return (marks[-1][1] - start[1]) / (marks[-1][0] - start[0])


def _free_exchange(host: str, port: int, size: int) -> float:
    """Bytes/s of one unshaped exchange, run in a process of its own: in this process its
    Python loop would take the GIL from the shaped pipes' clients, and a loaded machine then
    measured the starved clients instead of the shaper."""
    code = ("import sys, time\n"
            "from tests.integration.test_pipe_helpers import exchange\n"
            "t = time.monotonic()\n"
            "got, _ = exchange(sys.argv[1], int(sys.argv[2]), 0, int(sys.argv[3]))\n"
            "print(got / (time.monotonic() - t))\n")
    done = subprocess.run([sys.executable, "-c", code, host, str(port), str(size)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
    return float(done.stdout)


def _shaped_exchange(path: tuple[str, ...], seconds: float
                     ) -> tuple[list[tuple[float, int]], list[tuple[float, int]], float]:
    """A download and an upload through two pipes shaped to 1 MiB/s each way, while an
    unshaped pipe moves 64 MiB: (download arrivals, upload arrivals, unshaped bytes/s). The
    upload is timed where it arrives (at the sink): the client's sends complete into socket
    buffers that the kernel resizes as it goes, which read 0.8-1.07 of the relayed rate."""
    source, sink, free = Target(mode="source"), Target(mode="discard", record=True), Target()
    shaped = (
        "--port",
        "0",
        "--target-host",
        "127.0.0.1",
        "--shape-in",
        "1024",
        "--shape-out",
        "1024",
    )
    try:
        with (
            pipe_child(*shaped, "--target-port", str(source.port), *path) as down_pipe,
            pipe_child(*shaped, "--target-port", str(sink.port), *path) as up_pipe,
            pipe_child("--port", "0", "--target-host", "127.0.0.1",
                       "--target-port", str(free.port), *path) as free_pipe,
        ):  # fmt: skip
            down: list[tuple[float, int]] = []
            up: list[tuple[float, int]] = []
            threads = [
                threading.Thread(target=download, args=(*down_pipe.host_port, seconds, down)),
                threading.Thread(target=upload, args=(*up_pipe.host_port, seconds, up)),
            ]
            for t in threads:
                t.start()
            time.sleep(0.5)
            free_rate = _free_exchange(*free_pipe.host_port, 64 * MiB)  # meanwhile, unshaped
            for t in threads:
                t.join()
    finally:
        source.close()
        sink.close()
        free.close()
    assert sink.arrivals
    return down, sink.arrivals, free_rate


@pytest.mark.parametrize(
    ("path", "seconds", "tolerance"),
    [
        pytest.param((), 4.5, 0.05, id="splice"),
        pytest.param(("--no-splice",), 2.5, 0.1, id="streams"),
    ],
)
def test_one_mib_per_second_each_way_without_slowing_other_pipes(
    path: tuple[str, ...], seconds: float, tolerance: float
) -> None:
    down, up, free_rate = _shaped_exchange(path, seconds)
    assert steady_rate(down) == pytest.approx(MiB, rel=tolerance)
    assert steady_rate(up) == pytest.approx(MiB, rel=tolerance)
    assert free_rate > 10 * MiB


def test_limit_changed_at_run_time_over_the_control_channel() -> None:
    source = Target(mode="source")
    args = ("--port", "0", "--target-host", "127.0.0.1", "--target-port", str(source.port))
    try:
        with pipe_child(*args, "--shape-out", "512") as child:
            marks: list[tuple[float, int]] = []
            reader = threading.Thread(target=download, args=(*child.host_port, 3.0, marks))
            reader.start()
            time.sleep(1.5)
            child.control({"shape_out": 2048})
            switched = time.monotonic()
            reader.join()
    finally:
        source.close()
    before = [m for m in marks if m[0] < switched]
    after = [m for m in marks if m[0] >= switched + 0.3]
    assert steady_rate(before) == pytest.approx(512 * 1024, rel=0.15)
    assert steady_rate(after, skip=0) == pytest.approx(2 * MiB, rel=0.15)
