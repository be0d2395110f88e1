"""UDP and the other non-TCP sockets: payload bytes summed per socket in the kernel by eBPF.

The socket probe (sources/bpf) adds every send and receive of an IPv4/IPv6 socket other than TCP
(whose own counters come from tcp_info) to its socket's entry in a kernel map; this source reads
the map once per tick as a `SocketByteSource` (sources.byte_source). Each entry carries the
process that first used the socket, so even a socket that lived between two ticks has its owner.

UDP has no close tracepoint (and kprobes or fentry are not on every kernel), so closes are
inferred: an entry whose counters stayed still for `retire_after` seconds is taken out of the
map and reported closed with its final counters; so is an idle entry whose owner (the process
that first used it) has exited, at once: its socket was closed with it, and rows must not count
an exited program's sockets and process for half a minute. A socket that speaks again
afterwards (one a child inherited) gets a fresh entry counting from zero, owned by whoever
speaks: it reads as a new socket, nothing is counted twice or lost.
The map is an LRU of 16,384 sockets, so memory stays bounded whatever the churn.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bwmon.core.model import ByteSource, ProcKey, SocketBytes, SourceStatus
from bwmon.core.sources.bpf import records
from bwmon.core.sources.bpf.loader import LoadedProbe
from bwmon.core.sources.proc_text import parse_start

RETIRE_AFTER = 30.0  # seconds an idle entry stays in the map
PROTOS = frozenset(p for p in records.PROTOS.values() if p != "tcp")


def own_netns(proc_root: Path = Path("/proc")) -> int:
    """The inode of this process's network namespace."""
    return os.stat(proc_root / "self" / "ns" / "net").st_ino


class EbpfBytes:
    """Per-socket payload bytes of non-TCP sockets from the loaded probe's map.

    `netns`: the namespaces whose sockets are reported (inodes); by default the one bwmon
    runs in. `all_namespaces`: every one (the engine hands each measured namespace its own).
    """

    def __init__(
        self,
        probe: LoadedProbe,
        *,
        netns: frozenset[int] | None = None,
        all_namespaces: bool = False,
        clk_tck: int | None = None,
        retire_after: float = RETIRE_AFTER,
        clock: Callable[[], float] = time.monotonic,
        proc_root: Path = Path("/proc"),
    ) -> None:
        self.probe = probe
        self.netns = None if all_namespaces else (netns or frozenset({own_netns()}))
        self._ns_per_tick = 1_000_000_000 // (clk_tck or os.sysconf("SC_CLK_TCK"))
        self.retire_after = retire_after
        self._clock = clock
        self._proc_root = proc_root
        self._still: dict[int, tuple[int, int, float]] = {}  # cookie → (in, out, unchanged since)
        self._error: str | None = None
        self.sockets = 0

    @property
    def protos(self) -> frozenset[str]:
        return PROTOS

    def _entry(self, raw: bytes, closed: bool) -> SocketBytes | None:
        bytes_in, bytes_out, first = records.sock_bytes(raw)
        if first is None or (self.netns is not None and first.netns not in self.netns):
            return None
        return SocketBytes(
            source=ByteSource.EBPF, proto=first.proto, family=first.family,
            local=first.local, lport=first.lport,
            remote="" if first.rport == 0 else first.remote, rport=first.rport,
            cookie=first.cookie, inode=0, uid=first.uid, bytes_in=bytes_in,
            bytes_out=bytes_out, closed=closed,
            owner=ProcKey(first.pid, first.start_ns // self._ns_per_tick), netns=first.netns,
            comm=first.comm)

    async def read(self) -> Sequence[SocketBytes] | None:
        """Every socket in the map now; idle ones are taken out and reported closed."""
        try:
            entries = self.probe.sockets_now()
        except OSError as exc:
            self._error = str(exc)
            return None
        self._error = None
        now = self._clock()
        out: list[SocketBytes] = []
        still: dict[int, tuple[int, int, float]] = {}
        alive: dict[tuple[int, int], bool] = {}  # (pid, start ns) -> runs, for this read
        for cookie, raw in entries:
            bytes_in, bytes_out, first = records.sock_bytes(raw)
            was = self._still.get(cookie)
            idle = was is not None and was[:2] == (bytes_in, bytes_out)
            since = was[2] if was is not None and idle else now
            closed = False
            if now - since >= self.retire_after or (
                    idle and first is not None and not self._runs(first.pid, first.start_ns,
                                                                   alive)):
                final = self.probe.take(cookie)  # its last counters, atomically with the removal
                raw, closed = (final or raw), True
            else:
                still[cookie] = (bytes_in, bytes_out, since)
            entry = self._entry(raw, closed)
            if entry is not None:
                out.append(entry)
        self._still = still
        self.sockets = len(still)
        return out

    def _runs(self, pid: int, start_ns: int, known: dict[tuple[int, int], bool]) -> bool:
        """Whether the process that first used a socket still runs (a reused pid is another
        process); `known` keeps the answers of one read."""
        key = (pid, start_ns)
        found = known.get(key)
        if found is None:
            try:
                with open(f"{self._proc_root}/{pid}/stat", "rb") as f:
                    start = parse_start(f.read())
            except (OSError, ValueError, IndexError):
                start = None
            found = known[key] = start == start_ns // self._ns_per_tick
        return found

    def status(self) -> SourceStatus:
        if self._error is not None:
            return SourceStatus("ebpf-bytes", False, self._error, counts_bytes=True)
        lost = self.probe.lost_sightings()
        detail = f"UDP and other non-TCP sockets, {self.sockets} in the kernel map"
        if lost:
            detail += f", sightings ring full {lost} times (each retried at the next send)"
        return SourceStatus("ebpf-bytes", True, detail, counts_bytes=True)

    async def close(self) -> None:
        self.probe.close()
