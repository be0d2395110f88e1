"""Benchmark: conntrack table parsing, bwmon's parser against a straightforward reference.

    python3 bench/bench_conntrack.py [--sizes 1000,10000,50000,100000] [--repeat 5] [--real]

Tables are synthesised in the kernel's `/proc/net/nf_conntrack` format (IPv6 printed fully
expanded, accounting on) with a realistic mix: tcp ESTABLISHED/TIME_WAIT/SYN_SENT, udp replied
and unreplied, a little icmp, a quarter IPv6. "Next tick" texts have every timeout counting
down and a given share of the flows with new counters. Prints a markdown table of the best
of `--repeat` interleaved runs in CPU ms per parse, and ratios against the reference, all
from this one run.
`--real` also times a real table made in a private network namespace (needs root).
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import random
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bwmon.core.model import ConntrackEntry, Tuple5
from bwmon.core.sources.conntrack_parse import ConntrackParser, normalise_address, parse_conntrack


def reference_parse(text: str) -> list[ConntrackEntry]:
    """The straightforward parser: split each line, dict of key=value per direction."""
    out = []
    for line in text.splitlines():
        toks = line.split()
        if len(toks) < 6 or toks[0] not in ("ipv4", "ipv6"):
            continue
        family = 4 if toks[0] == "ipv4" else 6
        proto, protonum = toks[2], int(toks[3])
        rest = toks[4:]
        timeout = int(rest.pop(0)) if rest and rest[0].isdigit() else None
        state = rest.pop(0) if rest and "=" not in rest[0] and rest[0][0] != "[" else None
        dirs: list[dict[str, str]] = []
        extra: dict[str, str] = {}
        flags = set()
        for tok in rest:
            if tok.startswith("["):
                flags.add(tok.strip("[]"))
                continue
            k, _, v = tok.partition("=")
            if k == "src":
                dirs.append({})
            if k in ("src", "dst", "sport", "dport", "packets", "bytes") and len(dirs) <= 2:
                dirs[-1][k] = v
            else:
                extra[k] = v
        if len(dirs) < 2:
            continue
        tuples = [
            Tuple5(normalise_address(d["src"]), normalise_address(d["dst"]),
                   int(d.get("sport", 0)), int(d.get("dport", 0)))
            for d in dirs[:2]
        ]

        def num(d: dict[str, str], k: str) -> int | None:
            return int(d[k]) if k in d else None

        out.append(ConntrackEntry(
            family=family, proto=proto, protonum=protonum, orig=tuples[0], reply=tuples[1],
            orig_packets=num(dirs[0], "packets"), orig_bytes=num(dirs[0], "bytes"),
            reply_packets=num(dirs[1], "packets"), reply_bytes=num(dirs[1], "bytes"),
            state=state, timeout=timeout, flags=frozenset(flags),
            zone=int(extra.get("zone", 0)), mark=int(extra.get("mark", 0)),
        ))
    return out


def _v6(rng: random.Random) -> str:
    return ipaddress.IPv6Address(rng.getrandbits(64) | (0x2001_0db8 << 96)).exploded


def synthesise(n: int, seed: int = 1) -> list[list[str]]:
    """n flows as token lists of the file format: [head, timeout, body-with-counters...]."""
    rng = random.Random(seed)
    here4, here6 = "192.168.1.10", ipaddress.IPv6Address("2001:db8::10").exploded
    flows = []
    for _ in range(n):
        v6 = rng.random() < 0.25
        fam = "ipv6     10" if v6 else "ipv4     2"
        src = here6 if v6 else here4
        dst = _v6(rng) if v6 else f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.7"
        sp, dp = rng.randint(32768, 60999), rng.choice((443, 80, 53, 22, 8080, 993))
        r = rng.random()
        if r < 0.02:
            ident = rng.randint(1, 65535)
            proto = "icmpv6   58" if v6 else "icmp     1"
            t = (f"src={src} dst={dst} type={128 if v6 else 8} code=0 id={ident}",
                 f"src={dst} dst={src} type={129 if v6 else 0} code=0 id={ident}")
            flows.append([f"{fam} {proto}", "29", "", t[0], t[1], "", rng.randint(1, 9)])
            continue
        if r < 0.30:
            proto, state, flag = "udp      17", "", rng.choice(("[ASSURED] ", "", "[UNREPLIED] "))
            to = rng.randint(1, 180)
        else:
            proto = "tcp      6"
            state = rng.choice(("ESTABLISHED ",) * 6 + ("TIME_WAIT ", "SYN_SENT ", "CLOSE_WAIT "))
            flag = "[UNREPLIED] " if state == "SYN_SENT " else "[ASSURED] "
            to = 431999 if state == "ESTABLISHED " else rng.randint(1, 120)
        o = f"src={src} dst={dst} sport={sp} dport={dp}"
        rp = f"src={dst} dst={src} sport={dp} dport={sp}"
        flows.append([f"{fam} {proto}", str(to), state, o, rp, flag, rng.randint(1, 99)])
    return flows


def render(flows: list[list[str]], tick: int, changed: float, seed: int = 2) -> str:
    """The table text at `tick`: timeouts count down, `changed` of the flows moved bytes."""
    rng = random.Random(seed + tick)
    lines = []
    for head, to, state, o, r, flag, base in flows:  # type: ignore[misc]
        n = base + (tick if rng.random() < changed else 0)
        timeout = max(int(to) - tick, 1)
        unrep = "[UNREPLIED] " if flag == "[UNREPLIED] " else ""
        other = flag if flag != "[UNREPLIED] " else ""
        rb = 0 if unrep else n * 1400
        rpk = 0 if unrep else n
        lines.append(
            f"{head} {timeout} {state}{o} packets={n} bytes={n * 80} {unrep}{r} packets={rpk} "
            f"bytes={rb} {other}mark=0 zone=0 use=2"
        )
    return "\n".join(lines) + "\n"


def age(text: str, seconds: int, grow: bool) -> str:
    """A real table `seconds` later: timeouts count down; with `grow` every flow moved bytes."""
    text = re.sub(r"^(ipv[46] +\d+ +\S+ +\d+ +)(\d+) ",
                  lambda m: f"{m[1]}{max(int(m[2]) - seconds, 0)} ", text, flags=re.M)
    if grow:
        text = re.sub(r"bytes=(\d+)", lambda m: f"bytes={int(m[1]) + 100}", text)
    return text


def cpu_ms(fn: Callable[[], object]) -> float:
    """CPU time of one call (process time: a shared, loaded machine does not inflate it)."""
    gc.collect()
    t0 = time.process_time()
    fn()
    return (time.process_time() - t0) * 1000


def tick_fn(prev: str, cur: str) -> Callable[[], object]:
    """A ConntrackParser that has parsed `prev`; calling the result parses `cur` (one tick)."""
    parser = ConntrackParser()
    parser.parse(prev)
    return lambda: parser.parse(cur)


def real_table(n: int) -> str:
    """A real table of ~n UDP flows made in a private namespace (root only)."""
    from tests.helpers.netns import NetNS

    script = (
        "import socket\n"
        f"for i in range({n}):\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "    s.sendto(b'x' * 100, ('127.0.0.%d' % (1 + i % 200), 9))\n"
        "    s.close()\n"
    )
    with NetNS() as ns:
        ns.run("sysctl", "-qw", f"net.netfilter.nf_conntrack_max={4 * n}")
        ns.run("iptables", "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT")
        ns.run(sys.executable, "-c", script)
        return ns.conntrack_text()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,50000,100000")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--changed", type=float, default=0.1, help="share of flows changed per tick")
    ap.add_argument("--real", action="store_true")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
          f"{os.getloadavg()[0]:.1f}, best of {args.repeat} (CPU time), "
          f"{args.changed:.0%} of flows changed per tick\n")
    print("| lines | reference ms | parse_conntrack ms | ratio | ConntrackParser ms "
          f"(tick, {args.changed:.0%} changed) | ratio | ConntrackParser ms (all changed) | ratio |"
          )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    tables: list[tuple[str, str, str, str]] = []
    for n in (int(s) for s in args.sizes.split(",")):
        flows = synthesise(n)
        tables.append((f"{n}", render(flows, 0, 0), render(flows, 1, args.changed),
                       render(flows, 2, 1.0)))
    if args.real:
        text = real_table(10000)
        tables.append((f"{len(text.splitlines())} (real udp)", text, age(text, 1, False),
                       age(text, 2, True)))
    for label, t0, t1, t2 in tables:
        assert parse_conntrack(t0) == reference_parse(t0), "parsers disagree"
        best = {"ref": float("inf"), "fast": float("inf"), "inc": float("inf"),
                "full": float("inf")}
        for _ in range(args.repeat):  # interleaved, so load changes hit all alike
            best["ref"] = min(best["ref"], cpu_ms(lambda t=t0: reference_parse(t)))
            best["fast"] = min(best["fast"], cpu_ms(lambda t=t0: parse_conntrack(t)))
            best["inc"] = min(best["inc"], cpu_ms(tick_fn(t0, t1)))
            best["full"] = min(best["full"], cpu_ms(tick_fn(t0, t2)))
        ref, fast, inc, full = best["ref"], best["fast"], best["inc"], best["full"]
        print(f"| {label} | {ref:.1f} | {fast:.1f} | {ref / fast:.2f}× | {inc:.1f} | "
              f"{ref / inc:.2f}× | {full:.1f} | {ref / full:.2f}× |", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
