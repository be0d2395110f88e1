"""The soak's churn keeps to the wall clock: a client that starts late catches up at once and
still ends on time, so a busy machine does not lower the connection rate (and the table)."""

from __future__ import annotations

import argparse
import importlib.util
import socket
import threading
import time
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench" / "soak_churn.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak_churn", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sink() -> tuple[socket.socket, list[float]]:
    """A loopback server that answers the sink protocol and notes when each connection came."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.listen(256)
    seen: list[float] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            seen.append(time.time())
            with conn:
                head = conn.recv(16)
                conn.sendall(b"r" * int.from_bytes(head[8:16], "big"))

    threading.Thread(target=serve, daemon=True).start()
    return srv, seen


def test_late_client_catches_up_and_ends_on_time() -> None:
    srv, seen = _sink()
    rate, seconds, late = 40.0, 1.5, 1.0
    start = time.time() - late  # as if the machine had been too busy to start it on time
    args = argparse.Namespace(host="127.0.0.1", port=srv.getsockname()[1], proto="tcp",
                              send=0, recv=10, hold=0.0, rate=rate, seconds=seconds,
                              start=start)
    _module().client(args)
    srv.close()
    assert len(seen) == rate * seconds
    # the connections it owed for the second it was late came at once, not a second later
    owed = int(rate * late)
    assert seen[owed - 1] - seen[0] < late / 2
    # and the rest kept the schedule: done when the schedule ends, not `late` after it
    assert seen[-1] < start + seconds + late / 2
    assert seen[-1] > start + seconds - 2 / rate  # not faster than the rate either
