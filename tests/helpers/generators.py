"""traffic.py's sink and client run in a test's namespace; the client's own payload bytes are
the ground truth the integration tests hold bwmon's rows to."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.helpers.netns import NetNS

TRAFFIC = str(Path(__file__).resolve().parent / "traffic.py")
HEADER = 16  # traffic.py's TCP request header (sizes), sent on every connection


def sink(ns: NetNS, port: int, prefix: Sequence[str] = ()) -> subprocess.Popen[str]:
    """traffic.py's TCP and UDP sink on [::]:port, once it listens."""
    proc = ns.popen([*prefix, sys.executable, TRAFFIC, "sink", "--port", str(port)],
                    stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def generate(ns: NetNS, host: str, port: int, *, tag: str = "gen", send: int, recv: int,
             count: int = 1, hold: float = 0.0, concurrency: int = 1, rate: float = 0.0,
             prefix: Sequence[str] = ()) -> int:
    """Run a TCP generator to its end; its own payload bytes (the truth)."""
    gen = ns.popen([*prefix, sys.executable, TRAFFIC, "client", "--tag", tag, "--host", host,
                    "--port", str(port), "--send", str(send), "--recv", str(recv), "--count",
                    str(count), "--hold", str(hold), "--concurrency", str(concurrency),
                    "--rate", str(rate)],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = gen.communicate(timeout=120)
    assert gen.returncode == 0 and "done" in out, err
    return count * (send + HEADER + recv)


def uploading(ns: NetNS, port: int, tag: str) -> subprocess.Popen[str]:
    """A sink on `port` and a long upload to it paced at 1 MB/s (60 MB: a test ends long
    before), started in the background; the client's process is returned."""
    sink(ns, port)
    return ns.popen([sys.executable, TRAFFIC, "client", "--tag", tag, "--host", "127.0.0.1",
                     "--port", str(port), "--send", "60000000", "--rate", "1000000"],
                    stdout=subprocess.DEVNULL, text=True)


def pinger(ns: NetNS, host: str) -> subprocess.Popen[str]:
    """traffic.py's ICMP echo requests to `host` every 0.2 s, until killed (with `ns`)."""
    proc = ns.popen([sys.executable, TRAFFIC, "ping", "--host", host],
                    stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc
