"""TCP measured from the sockets' own counters on a stock namespace: no conntrack rule and
byte accounting off (the defaults of Debian and most cloud images), so conntrack counts nothing.

`bwmon monitor --json` runs in the namespace it measures; generators with distinctive command
lines are the ground truth (their own payload bytes, header included). Namespaces are created
here and removed afterwards; all traffic stays inside them.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TRAFFIC
from tests.helpers.generators import HEADER, generate, pinger, sink
from tests.helpers.monitor import Monitor, Tick, total, write_config
from tests.helpers.netns import NetNS, link
from tests.integration.test_short_processes import need_ebpf

pytestmark = [pytest.mark.privileged]

NOBODY = 65534


def start(ns: NetNS, tmp: Path, *, prefix: tuple[str, ...] = ()) -> Monitor:
    """bwmon with the eBPF and conntrack-events sources off: socket counters alone."""
    config = write_config(tmp / "bwmon.toml", {"events": False, "ebpf": "off"}, ("gen", "other"))
    return Monitor(ns, config, prefix=prefix, env={"HOME": str(tmp)})


def finish(monitor: Monitor) -> dict:
    """Stop once the last closes reached a tick; the last tick (totals are cumulative)."""
    monitor.wait_ticks(3)
    return monitor.stop()[-1]


@pytest.fixture
def stock_pair() -> Iterator[tuple[NetNS, str]]:
    """A client namespace with no conntrack rule and accounting off, linked to a server one."""
    with NetNS(acct=False, track=False) as client, NetNS(acct=False, track=False) as server:
        _, host = link(client, server)
        sink(server, 7501)
        yield client, host


def test_long_and_short_tcp_are_measured_with_no_rule_and_no_accounting(
        stock_pair: tuple[NetNS, str], tmp_path: Path) -> None:
    """A long transfer on its process's row, ~1 ms connections counted in full, from socket
    counters alone: conntrack counts nothing here, and bwmon says so (UDP not measured)."""
    client, host = stock_pair
    monitor = start(client, tmp_path)
    monitor.wait_ticks(2)
    long = generate(client, host, 7501, send=8_000_000, recv=100_000, rate=4_000_000)
    short = generate(client, host, 7501, tag="other", send=65536, recv=16384, count=100)
    last = finish(monitor)
    assert 0.99 * long <= total(last, "gen") <= 1.01 * long
    counted = total(last, "other") + total(last, "(unattributed)")
    assert 0.99 * short <= counted <= 1.01 * short
    sources = {s["name"]: s for s in last["sources"]}
    assert sources["tcp_info"]["active"] and not sources["conntrack-file"]["active"]
    assert last["not_measured"] == ["udp"]
    assert last["shares"].keys() == {"tcp_info"}
    assert next(a for a in last["apps"] if a["name"] == "gen")["unit"] == "payload"


def test_connections_held_100_ms_stay_on_their_process(
        stock_pair: tuple[NetNS, str], tmp_path: Path) -> None:
    client, host = stock_pair
    monitor = start(client, tmp_path)
    monitor.wait_ticks(2)
    truth = generate(client, host, 7501, send=65536, recv=16384, count=100, hold=0.1,
                     concurrency=20)
    last = finish(monitor)
    assert 0.99 * truth <= total(last, "gen") <= 1.01 * truth


def test_a_connection_open_before_bwmon_starts_counts_from_its_first_tick(
        stock_pair: tuple[NetNS, str], tmp_path: Path) -> None:
    client, host = stock_pair
    go = tmp_path / "go"
    gen = client.popen([sys.executable, TRAFFIC, "client", "--tag", "gen", "--host", host,
                        "--port", "7501", "--send", "3000000", "--wait-file", str(go)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert gen.stdout is not None and gen.stdout.readline().strip() == "connected"
    monitor = start(client, tmp_path)
    monitor.wait_ticks(2)
    go.touch()  # only now does the open connection send
    _out, err = gen.communicate(timeout=60)
    assert gen.returncode == 0, err
    last = finish(monitor)
    truth = 3_000_000 + HEADER
    assert 0.99 * truth <= total(last, "gen") <= 1.01 * truth


def test_accounting_and_a_rule_switched_on_mid_run_count_nothing_twice(tmp_path: Path) -> None:
    """Loopback (headers are a negligible share of 64 KiB segments): a paced long transfer
    and 1 MB connections keep flowing while accounting and a tracking rule come on."""
    with NetNS(acct=False, track=False) as ns:
        sink(ns, 7502)
        monitor = start(ns, tmp_path)
        monitor.wait_ticks(2)
        truth: list[int] = []
        long = threading.Thread(target=lambda: truth.append(generate(
            ns, "127.0.0.1", 7502, send=12_000_000, recv=0, rate=3_000_000)))
        long.start()
        time.sleep(1.0)
        truth.append(generate(ns, "127.0.0.1", 7502, send=1_000_000, recv=100_000, count=3,
                              concurrency=3, rate=2_000_000))
        ns.run("sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1")
        for tool in ("iptables", "ip6tables"):
            ns.run(tool, "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
                   "-j", "ACCEPT")
        time.sleep(0.5)
        truth.append(generate(ns, "127.0.0.1", 7502, send=1_000_000, recv=100_000, count=3,
                              concurrency=3, rate=2_000_000))
        long.join(60)
        ct = ns.conntrack_text()
        last = finish(monitor)
    assert "bytes=" in ct  # conntrack did count the flows made after the switch
    want = sum(truth)
    assert 0.99 * want <= total(last, "gen") <= 1.01 * want
    assert next(a for a in last["apps"] if a["name"] == "gen")["unit"] == "mixed"


def switch_accounting_on(ns: NetNS) -> None:
    """What the doctor's fixes (the TUI's `f`) do: accounting on, then a tracking rule."""
    ns.run("sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1")
    for tool in ("iptables", "ip6tables"):
        ns.run(tool, "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
               "-j", "ACCEPT")


def short_connections(ns: NetNS, host: str, port: int, count: int) -> int:
    """`count` connections of ~1 ms beside count // 4 held 100 ms (5 at a time: over a
    second in all); their payload bytes. 256 KiB out and 64 KiB back each, so the headers of
    the handshake and the ACKs stay well under 1 % of what conntrack counts."""
    truth: list[int] = []
    held = threading.Thread(target=lambda: truth.append(generate(
        ns, host, port, send=262144, recv=65536, count=count // 4, hold=0.1, concurrency=5)))
    held.start()
    truth.append(generate(ns, host, port, send=262144, recv=65536, count=count))
    held.join(60)
    return sum(truth)


def test_short_connections_keep_their_owner_when_accounting_comes_on_mid_run(
        tmp_path: Path) -> None:
    """With eBPF (and conntrack events, as by default), ~1-100 ms connections keep flowing
    while accounting and a tracking rule come on, beside a ping: conntrack then tracks flows
    that have no socket (ICMP), and counts the connections' flows after their sockets closed
    (its IP bytes are the larger); the owners eBPF sighted must stay with the bytes. The veth's
    MTU is loopback's, so IP headers are a negligible share of the bytes and the truth is the
    generator's payload either way."""
    need_ebpf()
    config = write_config(tmp_path / "bwmon.toml", {"ebpf": "on"}, ("gen",))
    with NetNS(acct=False, track=False) as client, NetNS(acct=False, track=False) as server:
        _, host = link(client, server, mtu=65535)
        sink(server, 7504)
        pinger(client, host)
        monitor = Monitor(client, config)
        monitor.wait_active("ebpf")
        monitor.wait_ticks(2)
        truth: list[int] = []
        before = threading.Thread(target=lambda: truth.append(
            short_connections(client, host, 7504, 200)))
        before.start()
        monitor.wait_for("the generator's first bytes", lambda t: total(t, "gen") > 0)
        switch_accounting_on(client)
        flowing = before.is_alive()
        before.join(60)
        start = monitor.wait_ticks(3)
        after = short_connections(client, host, 7504, 200)
        ct = client.conntrack_text()
        last = finish(monitor)
    assert flowing and "bytes=" in ct  # switched mid-run; conntrack counted the later flows
    want = sum(truth) + after

    def shares(tick: Tick, base: Tick | None, truth: int) -> tuple[float, float]:
        mine = total(tick, "gen") - (total(base, "gen") if base else 0)
        lost = total(tick, "(unattributed)") - (total(base, "(unattributed)") if base else 0)
        return mine / truth, (mine + lost) / truth

    on_row, counted = shares(last, None, want)
    on_row_after, counted_after = shares(last, start, after)
    print(f"after the switch: {on_row_after:.1%} on the generator's row, {counted_after:.1%} "
          f"counted; whole run: {on_row:.1%} on its row, {counted:.1%} counted")
    assert 0.99 <= counted <= 1.01, (counted, last["apps"])
    assert on_row_after >= 0.95 and on_row >= 0.95, (on_row_after, on_row, last["apps"])


def test_a_user_without_privileges_sees_own_tcp_traffic_only() -> None:
    as_nobody = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all")
    with NetNS(acct=False, track=False) as ns, tempfile.TemporaryDirectory() as tmp:
        sink(ns, 7503)
        Path(tmp).chmod(0o755)
        monitor = start(ns, Path(tmp), prefix=as_nobody)  # pytest's tmp_path is root's only
        monitor.wait_ticks(2)
        mine = generate(ns, "127.0.0.1", 7503, send=4_000_000, recv=0, rate=4_000_000,
                        prefix=as_nobody)
        generate(ns, "127.0.0.1", 7503, tag="other", send=4_000_000, recv=0, rate=4_000_000)
        last = finish(monitor)
    assert 0.99 * mine <= total(last, "gen") <= 1.01 * mine
    assert total(last, "other") == 0  # root's generator is not shown as a process of its own
    assert not any(p["uid"] == 0 for p in last["processes"])
    # its bytes are counted all the same, as (unattributed) with the user the kernel gives
    unattributed = next(a for a in last["apps"] if a["name"] == "(unattributed)")
    assert unattributed["total_out"] >= 4_000_000 and unattributed["uids"] == [0]


def test_a_user_without_privileges_sees_own_open_connection_listed() -> None:
    """Without CAP_DAC_READ_SEARCH the conntrack table is unreadable: conntrack counts nothing,
    so the user's open connection is the socket's, counted (Conn) and listed (user trial: the
    row moved bytes with Conn 0 and no connection listed, as if conntrack held the flows)."""
    as_nobody = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all")
    with NetNS(acct=False, track=False) as ns, tempfile.TemporaryDirectory() as tmp:
        sink(ns, 7504)
        Path(tmp).chmod(0o755)
        monitor = start(ns, Path(tmp), prefix=as_nobody)
        monitor.wait_ticks(2)
        gen = ns.popen([*as_nobody, sys.executable, TRAFFIC, "client", "--tag", "gen",
                        "--host", "127.0.0.1", "--port", "7504", "--send", "600000",
                        "--rate", "100000"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            def listed(tick: dict) -> bool:
                row = next((a for a in tick["apps"] if a["name"] == "gen"), None)
                return row is not None and row["total_out"] > 0 and row["flows"] >= 1 and any(
                    c["open"] and c["remote"].endswith(":7504") for c in row["connections"])

            monitor.wait_for("the user's open connection counted and listed", listed)
        finally:
            gen.kill()
            gen.wait()
        monitor.stop()
