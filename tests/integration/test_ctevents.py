"""ConntrackEvents against the real kernel in a private namespace: a short TCP connection shows
as NEW, then as DESTROY with its final counters; an overrun of the kernel's event buffer is
reported and the listener keeps going."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bwmon.core.sources.conntrack_events import ConntrackEvents, CtEvent
from tests.conftest import TRAFFIC
from tests.helpers.netns import NetNS

pytestmark = pytest.mark.privileged

PORT = 7431
SEND, RECV = 40_000, 90_000


async def wait_for(cond: Callable[[], bool], timeout: float, poke: Callable[[], object]) -> bool:
    """Poll `cond`, calling `poke` between polls, for at most `timeout` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if cond():
            return True
        poke()
        await asyncio.sleep(0.2)
    return cond()


async def start(ns: NetNS, listener: ConntrackEvents
                ) -> tuple[asyncio.Task[None], list[CtEvent], list[str]]:
    """Run the listener and wait until it demonstrably receives events (a probe datagram)."""
    got: list[CtEvent] = []
    problems: list[str] = []
    task = asyncio.create_task(listener.run(got.append, problems.append))
    probe = ("import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
             ".sendto(b'p', ('127.0.0.1', 9))")
    ok = await wait_for(lambda: any(e.entry.orig.dport == 9 for e in got), 15,
                        lambda: ns.popen([sys.executable, "-c", probe]).wait())
    assert ok, f"the listener never saw an event: {problems}"
    return task, got, problems


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_short_tcp_connection_new_and_destroy_with_final_counters() -> None:
    with NetNS(events=1) as ns:
        # closed connections leave TIME_WAIT after 1 s instead of 120 (this namespace only)
        ns.run("sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_time_wait=1")
        sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", str(PORT)],
                        stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        task, got, problems = await start(ns, ConntrackEvents(argv_prefix=ns.argv()))
        try:
            for host in ("127.0.0.1", "::1"):
                client = await asyncio.create_subprocess_exec(*ns.argv(
                    sys.executable, TRAFFIC, "client", "--tag", "ctev", "--host", host,
                    "--port", str(PORT), "--send", str(SEND), "--recv", str(RECV)))
                assert await client.wait() == 0

            def ours(kind: str) -> list[CtEvent]:
                return [e for e in got if e.kind == kind and e.entry.proto == "tcp"
                        and e.entry.orig.dport == PORT]

            # an expired flow is reaped (and its DESTROY sent) when the table is next read
            assert await wait_for(lambda: len(ours("DESTROY")) == 2, 20, ns.conntrack_text)
        finally:
            await stop(task)
            sink.kill()
            sink.wait()
        assert sorted(e.entry.family for e in ours("NEW")) == [4, 6]
        assert not any(e.entry.has_counters for e in ours("NEW"))
        for new in ours("NEW"):
            end = next(e for e in ours("DESTROY") if e.entry.ct_id == new.entry.ct_id)
            assert end.entry.orig == new.entry.orig
            assert new.timestamp is not None and end.timestamp is not None
            assert end.timestamp >= new.timestamp
            e = end.entry
            ip = 20 if e.family == 4 else 40
            assert e.orig_packets and e.reply_packets and e.orig_bytes and e.reply_bytes
            # whole packets: the payload plus IP and TCP (20..60 bytes) headers per packet
            for payload, packets, total in ((SEND + 8, e.orig_packets, e.orig_bytes),
                                            (RECV, e.reply_packets, e.reply_bytes)):
                assert payload + packets * (ip + 20) <= total <= payload + packets * (ip + 60)
        assert problems == []


async def test_overrun_is_reported_and_listening_goes_on() -> None:
    with NetNS(events=1) as ns:
        ns.run("iptables", "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT")
        task, got, problems = await start(ns, ConntrackEvents(argv_prefix=ns.argv()))
        try:
            tool = [pid for pid in ns.pids()
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "conntrack"]
            assert len(tool) == 1
            # a stopped reader cannot drain its netlink buffer: 3000 new flows overflow it
            os.kill(tool[0], signal.SIGSTOP)
            burst = ("import socket\nfor i in range(3000):\n"
                     "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                     "    s.sendto(b'x', ('127.0.0.%d' % (1 + i % 200), 9)); s.close()\n")
            gen = await asyncio.create_subprocess_exec(*ns.argv(sys.executable, "-c", burst))
            await gen.wait()
            os.kill(tool[0], signal.SIGCONT)
            assert await wait_for(lambda: any(p.startswith("overrun") for p in problems), 10,
                                  lambda: None), problems
            before = len(got)
            marker = ("import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                      ".sendto(b'm', ('127.0.0.1', 4242))")
            assert await wait_for(
                lambda: any(e.entry.orig.dport == 4242 for e in got[before:]), 10,
                lambda: ns.popen([sys.executable, "-c", marker]).wait())
        finally:
            await stop(task)
