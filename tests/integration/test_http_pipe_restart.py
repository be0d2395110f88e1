"""The real engine behind the server: a pipe's child is killed and restarted, and its
`/metrics` counters never go back. Loopback only; the pipe relays to a sink in this process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bwmon.core.config.settings import GeneralSettings, MonitorSettings, Settings
from bwmon.http import HttpServer, start_http
from tests.integration.test_http_synthetic import get

CHUNK = 100_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def pipe_bytes(server: HttpServer) -> dict[str, float]:
    reply = await get(server.port, "/metrics")
    out = {}
    for family in text_string_to_metric_families(reply.body.decode()):
        for s in family.samples:
            if s.name == "bwmon_pipe_bytes_total" and s.labels["pipe"] == "relay":
                out[s.labels["direction"]] = s.value
            if s.name == "bwmon_source_up" and s.labels["source"] == "pipe:relay":
                out["up"] = s.value
    return out


async def through_pipe(port: int) -> None:
    """Send CHUNK bytes through the pipe and read the sink's CHUNK // 2 reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"s" * CHUNK)
    await writer.drain()
    got = await asyncio.wait_for(reader.readexactly(CHUNK // 2), 10)
    assert len(got) == CHUNK // 2
    writer.close()


async def handle_sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(CHUNK)
    writer.write(b"r" * (CHUNK // 2))
    await writer.drain()
    writer.close()


def pipe_child() -> psutil.Process:
    kids = [p for p in psutil.Process().children(recursive=True)
            if "bwmon.core.pipes.child" in " ".join(p.cmdline())]
    assert len(kids) == 1, kids
    return kids[0]


@pytest.mark.privileged
async def test_pipe_counters_survive_a_child_restart() -> None:
    from bwmon.core.engine import Engine

    sink = await asyncio.start_server(handle_sink, "127.0.0.1", 0)
    sink_port = sink.sockets[0].getsockname()[1]
    pipe_port = free_port()
    settings = Settings(
        general=GeneralSettings(interval=0.2, events=False, ebpf="off"),
        monitors=[MonitorSettings(name="relay", type="pipe", listen="127.0.0.1", port=pipe_port,
                                  target_host="127.0.0.1", target_port=sink_port)],
    )
    engine = Engine(settings)
    running = asyncio.create_task(engine.run())
    server = await start_http(engine, "0", None)
    seen: list[dict[str, float]] = []

    async def until(check: str, want: float) -> None:
        for _ in range(150):
            now = await pipe_bytes(server)
            seen.append(now)
            if now.get(check, 0) >= want:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{check} never reached {want}: {seen[-1]}")

    try:
        await until("up", 1)
        await through_pipe(pipe_port)
        await until("in", CHUNK)
        before = seen[-1]
        old = pipe_child()
        os.kill(old.pid, signal.SIGKILL)
        restarted = False
        for _ in range(100):  # the supervisor starts a new child
            await asyncio.sleep(0.1)
            with contextlib.suppress(AssertionError, psutil.Error):
                restarted = pipe_child().pid != old.pid
            if restarted:
                break
        assert restarted, "the pipe child was not restarted"
        await until("up", 1)
        for _ in range(50):  # the new child listens again
            with contextlib.suppress(OSError):
                await through_pipe(pipe_port)
                break
            await asyncio.sleep(0.1)
        await until("in", before["in"] + CHUNK)
    finally:
        await server.close()
        engine.stop()
        await running
        sink.close()
    ins = [s["in"] for s in seen if "in" in s]
    outs = [s["out"] for s in seen if "out" in s]
    assert ins == sorted(ins) and outs == sorted(outs), seen  # never decreasing
    assert outs[-1] >= CHUNK  # both replies of CHUNK / 2 came back through the pipe
