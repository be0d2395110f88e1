"""The relay child on real loopback sockets: exact byte counts, half-close, failures, limits."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import pytest

from tests.integration.test_pipe_helpers import (
    Target,
    exchange,
    free_port,
    pipe_child,
    run_clients,
    wait_for,
)

MiB = 1 << 20
PATHS = [pytest.param((), id="splice"), pytest.param(("--no-splice",), id="streams")]


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


@pytest.mark.parametrize("path", PATHS)
def test_exact_counts_for_many_concurrent_clients_of_all_sizes(
    target: Target, path: tuple[str, ...]
) -> None:
    sizes = [0, 1, 64 * 1024, 1000, 65537, 3 * MiB]
    specs = [(sizes[i % 6], sizes[(i * 5 + 1) % 6]) for i in range(40)]
    args = ("--port", "0", "--target-host", "127.0.0.1", "--target-port", str(target.port))
    with pipe_child(*args, "--interval", "0.2", *path) as child:
        results = run_clients(*child.host_port, specs)
        final = child.finish()
    assert [r.error for r in results] == [None] * len(specs)
    assert [r.got for r in results] == [reply for _, reply in specs]
    assert final["in"] == sum(8 + send for send, _ in specs)  # 8-byte header + payload
    assert final["out"] == sum(reply for _, reply in specs)
    assert sum(target.received.values()) == sum(send for send, _ in specs)
    # each client's own counters, as reported while it was open or just after it closed
    seen = {c["peer"]: c for report in child.reports for c in report["clients"]}
    for (send, reply), result in zip(specs, results, strict=True):
        assert seen[result.peer]["in"] == 8 + send
        assert seen[result.peer]["out"] == reply
    assert final["accepted"] == len(specs) and final["connections"] == 0


@pytest.mark.parametrize("path", PATHS)
def test_100_mib_each_way_is_exact_and_quick(target: Target, path: tuple[str, ...]) -> None:
    args = ("--port", "0", "--target-host", "127.0.0.1", "--target-port", str(target.port))
    with pipe_child(*args, *path) as child:
        started = time.monotonic()
        got, _ = exchange(*child.host_port, 100 * MiB, 100 * MiB)
        took = time.monotonic() - started
        final = child.finish()
    assert got == 100 * MiB
    assert (final["in"], final["out"]) == (8 + 100 * MiB, 100 * MiB)
    assert took < 10, f"200 MiB through the relay took {took:.1f} s"


@pytest.mark.parametrize("path", PATHS)
def test_half_closed_client_still_receives_the_rest(target: Target, path: tuple[str, ...]) -> None:
    args = ("--port", "0", "--target-host", "127.0.0.1", "--target-port", str(target.port))
    with pipe_child(*args, *path) as child:
        with socket.create_connection(child.host_port, timeout=10) as s:
            s.sendall((200_000).to_bytes(8, "big") + b"x" * 5)
            s.shutdown(socket.SHUT_WR)  # the target only answers after seeing our EOF
            time.sleep(0.2)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        final = child.finish()
    assert len(data) == 200_000
    assert (final["in"], final["out"]) == (13, 200_000)


@pytest.mark.parametrize("path", PATHS)
def test_target_down_closes_the_client_logs_and_keeps_listening(path: tuple[str, ...]) -> None:
    port = free_port()
    args = ("--port", "0", "--target-host", "127.0.0.1", "--target-port", str(port))
    with pipe_child(*args, "--interval", "0.1", *path) as child:
        with socket.create_connection(child.host_port, timeout=5) as s:
            assert s.recv(10) == b""  # closed cleanly, no hang
        assert wait_for(lambda: child.read()["failed"] == 1)
        events = [e for r in child.reports for e in r["events"]]
        assert any("cannot reach target" in e and "refused" in e for e in events), events
        target = Target(port=port)  # the target comes up: the same pipe now works
        try:
            got, _ = exchange(*child.host_port, 10, 1234)
        finally:
            target.close()
        final = child.finish()
    assert got == 1234
    assert (final["in"], final["out"], final["failed"]) == (18, 1234, 1)


def test_connection_limit_refuses_extra_clients(target: Target) -> None:
    args = ("--port", "0", "--target-host", "127.0.0.1", "--target-port", str(target.port))
    with pipe_child(*args, "--max-connections", "2", "--interval", "0.1") as child:
        held = [socket.create_connection(child.host_port, timeout=5) for _ in range(2)]
        assert wait_for(lambda: child.read()["connections"] == 2)
        extra = socket.create_connection(child.host_port, timeout=5)
        with extra, contextlib.suppress(ConnectionResetError):  # refused: closed at once
            assert extra.recv(10) == b""
        assert wait_for(lambda: child.read()["rejected"] == 1)
        held[0].close()
        assert wait_for(lambda: child.read()["connections"] == 1)
        got, _ = exchange(*child.host_port, 0, 99)  # a slot is free again
        held[1].close()
        final = child.finish()
    assert got == 99
    assert final["rejected"] == 1


@pytest.mark.parametrize(
    ("listen", "target_host"), [("::1", "::1"), ("127.0.0.1", "::1"), ("::1", "127.0.0.1")]
)
def test_ipv6_listen_and_target(listen: str, target_host: str) -> None:
    target = Target(host=target_host)
    args = ("--listen", listen, "--port", "0", "--target-host", target_host)
    try:
        with pipe_child(*args, "--target-port", str(target.port)) as child:
            got, peer = exchange(*child.host_port, 3000, 4000)
            final = child.finish()
    finally:
        target.close()
    assert got == 4000
    assert (final["in"], final["out"]) == (3008, 4000)
    assert final["clients"] == [] or final["clients"][0]["peer"] == peer
    if listen == "::1":
        assert final["listen"].startswith("[::1]:") and peer.startswith("[::1]:")


def test_port_in_use_is_a_one_line_error_in_the_report() -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pipe_child("--port", str(port), "--target-host", "127.0.0.1") as child:
            assert child.proc.wait(10) == 2
    assert "Address already in use" in child.first["error"]
    assert "\n" not in child.first["error"]
