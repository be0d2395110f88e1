"""Connection churn paced to the wall clock, for the soak (bench/bench_soak.py).

    python3 bench/soak_churn.py churn --port 7001 [--rate 28] [--period 5]
    python3 bench/soak_churn.py client --tag T --proto tcp|udp --host H --port P \\
        --rate R --seconds S --start EPOCH

`churn` starts, every `--period` seconds of wall-clock time, one TCP client process and one
UDP client process, each with a distinctive command line (new owners keep coming and
going). Each client opens its connections at fixed deadlines (`--start` + i / `--rate`) and
catches up when it is late instead of sleeping a fixed time, so the connection rate — and
with it the conntrack table — stays the same whatever the load of the machine. tests/helpers/
traffic.py's clients pace with a fixed sleep: they slow down when the machine is busy.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import threading
import time

UDP_SHARE = 4  # one UDP exchange per this many TCP connections


def _tcp(host: str, port: int, send: int, recv: int, hold: float) -> None:
    """One connection of tests/helpers/traffic.py's sink protocol: header, payload, reply."""
    try:
        with socket.create_connection((host, port), timeout=10) as s:
            s.sendall(send.to_bytes(8, "big") + recv.to_bytes(8, "big") + b"s" * send)
            left = recv
            while left > 0:
                chunk = s.recv(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
            if hold:
                time.sleep(hold)
    except OSError:
        pass  # a refused or reset connection is still a flow; the soak goes on


def _udp(host: str, port: int, send: int, recv: int, hold: float) -> None:
    """One UDP exchange: `send` bytes, then a request for `recv` bytes back."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, port))
            s.send(b"s" * send)
            s.send(b"?" + str(recv).encode().rjust(8, b"0"))
            s.settimeout(2)
            s.recv(65535)
        except OSError:
            pass


def client(args: argparse.Namespace) -> None:
    """Open `rate × seconds` connections, the i-th at `start + i / rate` (or at once if late)."""
    one = _tcp if args.proto == "tcp" else _udp
    job = (args.host, args.port, args.send, args.recv, args.hold)
    threads: list[threading.Thread] = []
    for i in range(round(args.rate * args.seconds)):
        delay = args.start + i / args.rate - time.time()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=job, daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(timeout=15)


def churn(args: argparse.Namespace) -> None:
    """Start a TCP and a UDP client every `period` s of wall time, each for the next period."""
    me = [sys.executable, __file__, "client", "--port", str(args.port),
          "--seconds", str(args.period)]
    t0 = time.time() + 0.5
    live: list[subprocess.Popen[bytes]] = []
    for k in range(sys.maxsize):
        due = t0 + k * args.period
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        live = [p for p in live if p.poll() is None]
        for proto, host, rate in (("tcp", "127.0.0.1", args.rate),
                                  ("udp", "::1", args.rate / UDP_SHARE)):
            live.append(subprocess.Popen(
                [*me, "--tag", f"soak-{proto}-{k}", "--proto", proto, "--host", host,
                 "--rate", str(rate), "--start", f"{due:.3f}",
                 "--send", "2000" if proto == "tcp" else "300",
                 "--recv", "20000" if proto == "tcp" else "300",
                 "--hold", f"{1 / args.rate:.3f}" if proto == "tcp" else "0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("churn")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--rate", type=float, default=28.0, help="TCP connections a second, in all")
    c.add_argument("--period", type=float, default=5.0, help="seconds between new clients")
    k = sub.add_parser("client")
    k.add_argument("--tag", default="soak")
    k.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    k.add_argument("--host", required=True)
    k.add_argument("--port", type=int, required=True)
    k.add_argument("--rate", type=float, required=True)
    k.add_argument("--seconds", type=float, required=True)
    k.add_argument("--start", type=float, required=True, help="wall time of the first one")
    k.add_argument("--send", type=int, default=2000)
    k.add_argument("--recv", type=int, default=20000)
    k.add_argument("--hold", type=float, default=0.0)
    args = ap.parse_args()
    churn(args) if args.cmd == "churn" else client(args)


if __name__ == "__main__":
    main()
