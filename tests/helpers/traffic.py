"""Ground-truth traffic generator and sink with distinctive command lines.

  python traffic.py sink --port P [--reply N]      TCP and UDP sink on [::]:P (dual stack);
                                                   replies N bytes per TCP connection / UDP datagram
  python traffic.py client --tag T --host H --port P --proto tcp|udp --send N --recv M
                           [--count K] [--hold S] [--parallel | --concurrency C] [--report]
                           [--rate B] [--wait-file PATH]
     K connections, each sending N bytes and reading M bytes back, each held open S seconds;
     all at once (--parallel) or C at a time. `--report` prints the mean connection lifetime
     (`lifetime_ms=…`, open to close) before "done".
     `--rate` paces each connection's sending to B bytes/s (a long transfer); `--wait-file`
     has each connection, once open, wait for PATH to exist before it sends; `--stop-file PATH`
     starts no more connections once PATH exists (the client then ends as after the last).
     `--tag` only makes the command line distinctive for grouping regexes.
  python traffic.py client ... --processes K [--concurrency C] [--report]
     K child processes, forked C at a time, each making one connection and exiting at once:
     processes that live milliseconds cost a fork each, not an interpreter's start. Prints
     `child pid=P lifetime_ms=L` per child (its connection, open to close) before "done".
  python traffic.py ping --host H [--interval S]   ICMP echo requests (IPv4, raw socket: root)
                                                   every S seconds until killed
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable


def _read_exactly(conn: socket.socket, n: int, keep: bool = True) -> bytes | None:
    parts = []
    while n > 0:
        chunk = conn.recv(min(n, 1 << 16))
        if not chunk:
            return None
        n -= len(chunk)
        if keep:
            parts.append(chunk)
    return b"".join(parts)


def _send_n(conn: socket.socket, n: int, rate: float = 0.0) -> None:
    payload = b"r" * 65536
    started, sent = time.monotonic(), 0
    while n > 0:
        if rate:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        k = conn.send(payload[: min(n, len(payload), 16384 if rate else len(payload))])
        n -= k
        sent += k


def _tcp_sink(port: int, reply: int) -> None:
    srv = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True,
                               reuse_port=True)
    srv.listen(512)

    def handle(conn: socket.socket) -> None:
        # protocol: 16-byte header (bytes the client will send, bytes to reply), the payload,
        # the reply; then the client holds the connection open as long as it likes and closes
        with conn:
            head = _read_exactly(conn, 16)
            if head is None:
                return
            size, want = int.from_bytes(head[:8], "big"), int.from_bytes(head[8:], "big")
            if _read_exactly(conn, size, keep=False) is None:
                return
            _send_n(conn, want)
            while conn.recv(1 << 16):
                pass

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def _udp_sink(port: int, reply: int) -> None:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:  # room for bursts from many clients at once (root may exceed rmem_max)
        s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("::", port))
    while True:
        data, addr = s.recvfrom(65535)
        if data[:1] == b"?":  # a request for `reply` bytes of answer
            want = int(data[1:9].decode() or "0")
            s.sendto(b"r" * want, addr)


def sink(args: argparse.Namespace) -> None:
    threading.Thread(target=_udp_sink, args=(args.port, args.reply), daemon=True).start()
    print("ready", flush=True)
    _tcp_sink(args.port, args.reply)


_PACE: dict[str, str] = {"rate": "0", "wait_file": ""}


def _one_tcp(host: str, port: int, send: int, recv: int, hold: float) -> None:
    """One connection: send, read the reply, stay open `hold` seconds, close."""
    with socket.create_connection((host, port)) as s:
        if _PACE["wait_file"]:
            print("connected", flush=True)
            while not os.path.exists(_PACE["wait_file"]):
                time.sleep(0.01)
        s.sendall(send.to_bytes(8, "big") + recv.to_bytes(8, "big"))
        _send_n(s, send, float(_PACE["rate"]))
        if _read_exactly(s, recv, keep=False) is None:
            print(f"short read of {recv}", file=sys.stderr)
        if hold:
            time.sleep(hold)


def _one_udp(host: str, port: int, send: int, recv: int, hold: float) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        left = send
        while left > 0:
            n = min(left, 1000)
            s.send(b"s" * n)
            left -= n
        if recv:
            s.send(b"?" + str(recv).encode().rjust(8, b"0"))
            s.settimeout(2)
            try:
                s.recv(65535)
            except TimeoutError:  # UDP may lose the request or the answer: say so, go on
                print("udp reply lost", file=sys.stderr)
        if hold:
            time.sleep(hold)


def _forked(count: int, at_once: int, connect: Callable[[], None]) -> None:
    """`count` children, `at_once` alive at a time, each running `connect` once, reporting
    its pid and its connection's lifetime through a pipe of its own, and exiting (os._exit:
    nothing of the parent's is run or flushed twice)."""
    running: dict[int, int] = {}  # pid -> read end of its report pipe
    reports: list[str] = []

    def reap() -> None:
        pid, status = os.wait()
        with os.fdopen(running.pop(pid)) as report:
            line = report.read()
        if os.waitstatus_to_exitcode(status) != 0 or not line:
            raise SystemExit(f"child {pid} failed (status {status})")
        reports.append(line)

    for _ in range(count):
        if len(running) >= max(1, at_once):
            reap()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 1
            try:
                t = time.perf_counter()
                connect()
                ms = 1000 * (time.perf_counter() - t)
                os.write(w, f"child pid={os.getpid()} lifetime_ms={ms:.3f}\n".encode())
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        os.close(w)
        running[pid] = r
    while running:
        reap()
    print("".join(reports), end="")
    print("done", flush=True)


def client(args: argparse.Namespace) -> None:
    _PACE.update(rate=str(args.rate), wait_file=args.wait_file)
    one = _one_tcp if args.proto == "tcp" else _one_udp
    job = (args.host, args.port, args.send, args.recv, args.hold)
    if args.processes:
        _forked(args.processes, args.concurrency, lambda: one(*job))
        return
    lifetimes: list[float] = []

    def timed() -> None:
        t = time.perf_counter()
        one(*job)
        lifetimes.append(time.perf_counter() - t)

    workers = args.count if args.parallel else max(1, min(args.concurrency, args.count))
    if workers == 1:
        for _ in range(args.count):
            if args.stop_file and os.path.exists(args.stop_file):
                break
            timed()
    else:
        left = iter(range(args.count))
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    if next(left, None) is None:
                        return
                if args.stop_file and os.path.exists(args.stop_file):
                    return
                timed()

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if args.report and lifetimes:
        print(f"lifetime_ms={1000 * sum(lifetimes) / len(lifetimes):.3f}", flush=True)
    print("done", flush=True)
    if args.linger:
        time.sleep(args.linger)


def ping(args: argparse.Namespace) -> None:
    """ICMP echo requests to --host every --interval seconds until killed (raw socket: root):
    flows conntrack tracks and no socket table lists."""
    import contextlib
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        print("ready", flush=True)
        for seq in range(1 << 30):
            head = struct.pack("!BBHHH", 8, 0, 0, os.getpid() & 0xFFFF, seq & 0xFFFF)
            packet = head + b"p" * 56
            total = sum(struct.unpack(f"!{len(packet) // 2}H", packet))
            while total >> 16:
                total = (total & 0xFFFF) + (total >> 16)
            with contextlib.suppress(OSError):  # the link went first (the test is ending)
                s.sendto(packet[:2] + struct.pack("!H", ~total & 0xFFFF) + packet[4:],
                         (args.host, 0))
            time.sleep(args.interval)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sink")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--reply", type=int, default=0)
    c = sub.add_parser("client")
    c.add_argument("--tag", default="gen")
    c.add_argument("--host", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--proto", choices=("tcp", "udp"), default="tcp")
    c.add_argument("--send", type=int, default=0)
    c.add_argument("--recv", type=int, default=0)
    c.add_argument("--count", type=int, default=1)
    c.add_argument("--hold", type=float, default=0.0)
    c.add_argument("--linger", type=float, default=0.0, help="stay alive after the last one")
    c.add_argument("--parallel", action="store_true", help="all connections at once")
    c.add_argument("--concurrency", type=int, default=1, help="connections open at a time")
    c.add_argument("--report", action="store_true", help="print the mean connection lifetime")
    c.add_argument("--processes", type=int, default=0,
                   help="fork this many processes (--concurrency at a time), one connection each")
    c.add_argument("--rate", type=float, default=0.0, help="pace sending to B bytes/s")
    c.add_argument("--wait-file", default="", help="once connected, wait for this file")
    c.add_argument("--stop-file", default="", help="start no more connections once it exists")
    i = sub.add_parser("ping")
    i.add_argument("--host", required=True)
    i.add_argument("--interval", type=float, default=0.2)
    args = p.parse_args()
    {"sink": sink, "client": client, "ping": ping}[args.cmd](args)


if __name__ == "__main__":
    main()
