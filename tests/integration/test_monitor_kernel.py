"""The measuring core against the real kernel, in a private network namespace.

Traffic generators with distinctive command lines move known bytes over TCP and UDP, IPv4 and
IPv6, on the namespace's loopback while `bwmon monitor --json` runs there. Each generator talks
to its own sink port, so conntrack's own table (read at the end, flows still in TIME_WAIT) gives
the ground truth per generator. bwmon's rows must match it within 1 %, and every byte of every
flow must land in exactly one row per local end (conservation).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bwmon.core.sources.conntrack_parse import parse_conntrack
from tests.conftest import TRAFFIC
from tests.helpers.monitor import Monitor
from tests.helpers.netns import NetNS

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

# name -> (proto, host, sink port, bytes sent, bytes asked back, connections, hold seconds)
GENERATORS = {
    "tcp4-long": ("tcp", "127.0.0.1", 7101, 3_000_000, 400_000, 1, 2.0),
    "tcp6-long": ("tcp", "::1", 7102, 1_000_000, 2_000_000, 1, 2.0),
    "udp4": ("udp", "127.0.0.1", 7103, 60_000, 3_000, 1, 1.5),
    "udp6": ("udp", "::1", 7104, 40_000, 5_000, 1, 1.5),
    "tcp4-burst": ("tcp", "127.0.0.1", 7105, 20_000, 30_000, 100, 1.5),
}


def _config(tmp: Path) -> Path:
    lines = []
    for name in GENERATORS:
        lines += ["[[groups]]", f'name = "gen-{name}"', f'patterns = ["--tag gen-{name} "]', ""]
    lines += ["[[groups]]", 'name = "sink"', 'patterns = ["traffic.py sink"]', ""]
    path = tmp / "bwmon.toml"
    path.write_text("\n".join(lines))
    return path


def _run_generators(ns: NetNS) -> None:
    sinks = [ns.popen([sys.executable, TRAFFIC, "sink", "--port", str(port)],
                      stdout=subprocess.PIPE, text=True)
             for (_, _, port, *_rest) in GENERATORS.values()]
    for s in sinks:
        assert s.stdout is not None and s.stdout.readline().strip() == "ready"
    clients = []
    for name, (proto, host, port, send, recv, count, hold) in GENERATORS.items():
        argv = [sys.executable, TRAFFIC, "client", "--tag", f"gen-{name}", "--host", host,
                "--port", str(port), "--proto", proto, "--send", str(send), "--recv", str(recv),
                "--count", str(count), "--hold", str(hold)]
        if count > 1:
            argv.append("--parallel")
        clients.append(ns.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for c in clients:
        out, err = c.communicate(timeout=60)
        assert c.returncode == 0 and "done" in out, err


def test_bytes_per_generator_match_conntrack_and_are_conserved(tmp_path: Path) -> None:
    with NetNS() as ns:
        bwmon = Monitor(ns, _config(tmp_path))
        time.sleep(1.5)  # bwmon's first read: an empty baseline
        _run_generators(ns)
        time.sleep(1.5)  # two more ticks: everything is in TIME_WAIT or finished
        truth = parse_conntrack(ns.conntrack_text())
        snapshots = bwmon.stop()

    assert len(snapshots) >= 4
    last = snapshots[-1]
    apps = {a["name"]: a for a in last["apps"]}
    by_port: dict[int, tuple[int, int, int]] = {}
    for e in truth:
        o, r, n = by_port.get(e.orig.dport, (0, 0, 0))
        by_port[e.orig.dport] = (o + (e.orig_bytes or 0), r + (e.reply_bytes or 0), n + 1)

    sink_in = sink_out = 0
    summary = {a["name"][:40]: (a["total_in"], a["total_out"]) for a in last["apps"]}
    for name, (_proto, _host, port, send, _recv, count, _hold) in GENERATORS.items():
        orig, reply, flows = by_port[port]
        assert flows == count
        assert orig > send  # conntrack counts whole IP packets: payload plus headers
        row = apps.get(f"gen-{name}")
        assert row is not None, (name, summary, bwmon.err[-2000:])
        assert row["total_out"] == pytest.approx(orig, rel=0.01), (name, summary)
        assert row["total_in"] == pytest.approx(reply, rel=0.01), (name, summary)
        # the processes listed with the row while they ran (an exited one is not listed)
        cmdlines = [p["cmdline"] for snap in snapshots
                    for a in snap["apps"] if a["name"] == f"gen-{name}"
                    for p in snap["processes"] if p["pid"] in a["pids"]]
        assert cmdlines and all(f"--tag gen-{name}" in c for c in cmdlines)
        sink_in += orig
        sink_out += reply
    assert apps["sink"]["total_in"] == pytest.approx(sink_in, rel=0.01)
    assert apps["sink"]["total_out"] == pytest.approx(sink_out, rel=0.01)

    # conservation: every flow here is loopback, with two local ends; every byte bwmon saw
    # lands in exactly one row per end. (The test's own read of the table comes a moment after
    # bwmon's last tick, so closing FIN/ACK packets may differ by a few bytes.)
    flow_bytes = sum((e.orig_bytes or 0) + (e.reply_bytes or 0) for e in truth)
    rows = sum(a["total_in"] + a["total_out"] for a in last["apps"])
    filtered = last["filtered"]["total_in"] + last["filtered"]["total_out"]
    seen = last["host"]["loopback_total"]
    assert last["host"]["total_in"] + last["host"]["total_out"] == seen
    # (exact for conntrack's bytes; where a socket's own counters led for a moment, each end
    # counted its own: the receiver's trail the sender's by what was in flight, and TCP's SYN
    # and FIN count a byte each. A few bytes per flow, far below 0.01 %.)
    assert rows + filtered == pytest.approx(2 * seen, rel=1e-4)
    assert seen == pytest.approx(flow_bytes, rel=0.001)
    assert "(unattributed)" not in apps or apps["(unattributed)"]["total_in"] < 0.01 * flow_bytes
    # the burst was seen live: its rate was non-zero in some tick
    assert any(a["name"] == "gen-tcp4-burst" and a["rate_out"] > 0
               for s in snapshots for a in s["apps"])
