"""Loopback throughput through a pipe, against a direct connection and socat, in one run.

    python3 bench/bench_pipe.py [--gib 2] [--rounds 3]

A source process sends N bytes to a sink process, either directly or through a relay:
socat (defaults), `python -m bwmon.core.pipes.child` (splice threads, the default path), the same
with --no-splice (asyncio streams), and, for the design choice, a single-threaded asyncio relay
doing non-blocking splice via add_reader/add_writer. Reports Gbit/s (best of the rounds), the
ratio to direct and to socat, and the relay's CPU seconds per GiB. Checks byte counts are exact.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
GiB = 1 << 30

SINK = """
import socket, sys
srv = socket.create_server(("127.0.0.1", 0)); print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept(); buf = bytearray(1 << 20); got = 0
while n := conn.recv_into(buf): got += n
print(got, flush=True)
"""

SOURCE = """
import socket, sys, time
n, port = int(sys.argv[1]), int(sys.argv[2]); chunk = memoryview(bytes(1 << 20))
s = socket.create_connection(("127.0.0.1", port)); t = time.perf_counter(); left = n
while left: k = min(left, len(chunk)); s.sendall(chunk[:k]); left -= k
s.shutdown(socket.SHUT_WR); s.recv(1); print(time.perf_counter() - t, flush=True)
"""

LOOP_SPLICE = """
import asyncio, fcntl, os, socket, sys
# One connection, one thread: non-blocking splice driven by the event loop (for comparison).
async def main(listen_port, target_port):
    loop = asyncio.get_running_loop()
    srv = socket.create_server(("127.0.0.1", listen_port)); srv.setblocking(False)
    print(srv.getsockname()[1], flush=True)
    c, _ = await loop.sock_accept(srv)
    t = socket.socket(); t.setblocking(False)
    await loop.sock_connect(t, ("127.0.0.1", target_port))
    r, w = os.pipe2(os.O_NONBLOCK); fcntl.fcntl(w, 1031, 1 << 20)
    done = loop.create_future(); state = {"inpipe": 0, "eof": False}
    flags = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
    def pump():
        try:
            while True:
                if state["inpipe"]:
                    m = os.splice(r, t.fileno(), state["inpipe"], flags=flags)
                    state["inpipe"] -= m
                    if state["inpipe"]: continue
                if state["eof"]:
                    t.shutdown(socket.SHUT_WR); done.set_result(None); return
                n = os.splice(c.fileno(), w, 1 << 20, flags=flags)
                if n == 0: state["eof"] = True
                state["inpipe"] += n
        except BlockingIOError:
            if state["inpipe"]:
                loop.remove_reader(c.fileno()); loop.add_writer(t.fileno(), pump)
            else:
                loop.remove_writer(t.fileno()); loop.add_reader(c.fileno(), pump)
    loop.add_reader(c.fileno(), pump)
    await done
    loop.remove_reader(c.fileno()); loop.remove_writer(t.fileno())
    while await loop.sock_recv(t, 1): pass
    c.shutdown(socket.SHUT_WR); await asyncio.sleep(0.05)
asyncio.run(main(0, int(sys.argv[1])))
"""


def spawn(code_or_argv: str | list[str], *args: str) -> subprocess.Popen[str]:
    argv = code_or_argv if isinstance(code_or_argv, list) else [sys.executable, "-c", code_or_argv]
    return subprocess.Popen([*argv, *args], stdout=subprocess.PIPE, text=True, env=ENV, cwd=REPO)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (without connecting to it)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A" for r in rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_relay(mode: str, sink_port: int) -> tuple[subprocess.Popen[str] | None, int]:
    """Start the relay of `mode` in front of sink_port; (process, port to connect to)."""
    if mode == "direct":
        return None, sink_port
    if mode == "socat":
        port = free_port()
        proc = spawn(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr",
                      f"TCP:127.0.0.1:{sink_port}"])  # fmt: skip
        while not listening(port):
            time.sleep(0.02)
        return proc, port
    if mode == "loop-splice":
        proc = spawn(LOOP_SPLICE, str(sink_port))
        assert proc.stdout is not None
        return proc, int(proc.stdout.readline())
    extra = ["--no-splice"] if mode == "bwmon-streams" else []
    argv = [sys.executable, "-m", "bwmon.core.pipes.child", "--port", "0",
            "--target-host", "127.0.0.1"]
    proc = spawn([*argv, "--target-port", str(sink_port), "--interval", "60", *extra])
    assert proc.stdout is not None
    return proc, int(json.loads(proc.stdout.readline())["listen"].rsplit(":", 1)[1])


def one_run(mode: str, nbytes: int) -> tuple[float, float]:
    """(Gbit/s, relay CPU seconds) for one transfer of nbytes; asserts exact delivery."""
    sink = spawn(SINK)
    assert sink.stdout is not None
    sink_port = int(sink.stdout.readline())
    relay, port = start_relay(mode, sink_port)
    cpu0 = cpu_seconds(relay.pid) if relay else 0.0
    source = spawn(SOURCE, str(nbytes), str(port))
    assert source.stdout is not None
    seconds = float(source.stdout.readline())
    received = int(sink.stdout.readline())
    cpu = cpu_seconds(relay.pid) - cpu0 if relay else 0.0
    assert received == nbytes, f"{mode}: {received} != {nbytes}"
    if relay is not None and mode.startswith("bwmon"):
        relay.stdin = None
        relay.terminate()
        out, _ = relay.communicate(timeout=10)
        last = json.loads(out.splitlines()[-1])
        assert last["in"] == nbytes, f"{mode} counted {last['in']} != {nbytes}"
    elif relay is not None:
        relay.terminate()
        relay.wait(5)
    for p in (sink, source):
        p.wait(10)
    return nbytes * 8 / seconds / 1e9, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=2.0, help="GiB per transfer")
    parser.add_argument("--rounds", type=int, default=3, help="transfers per mode (best kept)")
    args = parser.parse_args()
    nbytes = int(args.gib * GiB)
    modes = ["direct", "socat", "bwmon-splice", "bwmon-streams", "loop-splice"]
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):  # interleaved, so load changes hit every mode alike
        for mode in modes:
            gbit, cpu = one_run(mode, nbytes)
            if mode not in best or gbit > best[mode][0]:
                best[mode] = (gbit, cpu)
    direct, socat = best["direct"][0], best["socat"][0]
    print(f"{'mode':14} {'Gbit/s':>7} {'x direct':>9} {'x socat':>8} {'relay CPU s/GiB':>16}")
    for mode in modes:
        gbit, cpu = best[mode]
        per_gib = f"{cpu / (nbytes / GiB):.2f}" if mode != "direct" else "-"
        print(f"{mode:14} {gbit:7.1f} {gbit / direct:9.2f} {gbit / socat:8.2f} {per_gib:>16}")
    print(f"({args.gib:g} GiB per transfer, best of {args.rounds}, byte counts exact)")


if __name__ == "__main__":
    main()
