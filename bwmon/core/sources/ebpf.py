"""Optional kernel-side attribution: which process sent or received on which socket, as it happens.

The socket probe (sources/bpf: a CO-RE object loaded with libbpf) records the first sighting of
each IPv4/IPv6 socket in every network namespace into a ring buffer, so even a 1 ms connection
gets its owner; this module reads the ring and turns records into Sightings. The same probe sums
non-TCP sockets' bytes (sources.ebpf_bytes). Records are fixed-size binary (bpf/records), never
text: no process name can forge one. The probe is raw tracepoints (tp_btf): no tracefs, no
kprobes, no bpftrace and its LLVM (~108 MB) in memory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bwmon.core.capabilities import BPF, effective, holds
from bwmon.core.model import ProcKey, SourceStatus
from bwmon.core.sources.bpf import records
from bwmon.core.sources.bpf.loader import (
    LIBBPF_FIX,
    RING_BYTES,
    LoadedProbe,
    ProbeError,
    libbpf_present,
    load,
)
from bwmon.core.sources.bpf.ring import RingReader

TRACEPOINTS = ("sock_send_length", "sock_recv_length")
BATCH_SECONDS = 0.02  # sightings are consumed once per tick: 20 ms of latency costs nothing


@dataclass(frozen=True, slots=True)
class Sighting:
    """A process seen sending or receiving on a socket (the tracepoints fire in its context).

    `start` is the process start time in clock ticks since boot, as in /proc/PID/stat and
    `ProcKey.start`. Addresses follow `SocketEntry`: IPv4-mapped IPv6 become plain IPv4 (and
    `family` 4, the family conntrack files the flow under). An unconnected UDP socket has remote
    "0.0.0.0"/"::" and rport 0: match it by local port. `time` is CLOCK_MONOTONIC seconds;
    `netns` the inode of the socket's network namespace; `cookie` the kernel's socket cookie.
    """

    pid: int
    start: int
    comm: str
    proto: str  # "tcp", "udp", ...
    family: int  # 4 or 6
    local: str
    lport: int
    remote: str
    rport: int
    time: float
    netns: int = 0
    cookie: int = 0
    uid: int = -1

    @property
    def key(self) -> ProcKey:
        return ProcKey(self.pid, self.start)


def sighting(raw: bytes, clk_tck: int = 100) -> Sighting | None:
    """One ring record → a Sighting; None for a record that is not one (short, other family)."""
    if len(raw) < records.SIGHTING.size:
        return None
    s = records.seen(raw)
    if s is None:
        return None
    return Sighting(pid=s.pid, start=s.start_ns // (1_000_000_000 // clk_tck), comm=s.comm,
                    proto=s.proto, family=s.family, local=s.local, lport=s.lport,
                    remote=s.remote, rport=s.rport, time=s.nsecs / 1e9, netns=s.netns,
                    cookie=s.cookie, uid=s.uid)


class EbpfOwners:
    """The eBPF attribution source: reads the probe's sightings ring.

    `ring_fd`: the ring of a probe loaded elsewhere (the engine loads it and hands the fd to
    the discovery worker); without it, `run` loads a probe of its own. `netns_inode`: only
    sightings of that namespace are reported (default: this process's); `all_namespaces`
    reports every one.
    """

    def __init__(
        self,
        *,
        ring_fd: int | None = None,
        sys_root: Path = Path("/sys"),
        proc_root: Path = Path("/proc"),
        netns_inode: int | None = None,
        all_namespaces: bool = False,
        caps: int | None = None,
        restart_delay: float = 5.0,
        loader: Callable[[], LoadedProbe] = load,
    ) -> None:
        self.ring_fd = ring_fd
        self.sys_root = sys_root
        self.proc_root = proc_root
        self.netns_inode = netns_inode
        self.all_namespaces = all_namespaces
        self.caps = effective(proc_root) if caps is None else caps
        self.restart_delay = restart_delay
        self.loader = loader
        self.ready = asyncio.Event()  # set once the probes are attached and read
        self.sightings = 0
        self._fix: str | None = None

    # -- availability -----------------------------------------------------------------------

    def _tracepoints_in_btf(self, data: bytes) -> bool:
        return all(f"btf_trace_{tp}\0".encode() in data for tp in TRACEPOINTS)

    def available(self) -> str | None:
        """None when the source can run here, else the reason (see `fix` for the remedy)."""
        self._fix = None
        if not holds(BPF, self.caps):
            self._fix = ("run bwmon as root, or grant it CAP_BPF and CAP_PERFMON "
                         "(AmbientCapabilities= in its systemd unit)")
            return "attaching eBPF probes needs CAP_BPF + CAP_PERFMON"
        try:
            data = (self.sys_root / "kernel" / "btf" / "vmlinux").read_bytes()
        except OSError:
            return "no BTF: the kernel lacks /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)"
        if not self._tracepoints_in_btf(data):
            return "tracepoints missing: the kernel has no sock:sock_send_length/sock_recv_length"
        if not libbpf_present():
            self._fix = LIBBPF_FIX
            return "libbpf missing: no libbpf.so.1"
        return None

    def fix(self) -> str | None:
        """The command that removes the reason `available()` last gave, if there is one."""
        return self._fix

    def status(self) -> SourceStatus:
        detail = (f"socket probe, {self.sightings} sockets seen" if self.ready.is_set()
                  else "starting")
        return SourceStatus("ebpf", self.ready.is_set(), detail)

    def _wanted_netns(self) -> int | None:
        if self.all_namespaces:
            return None
        if self.netns_inode is not None:
            return self.netns_inode
        return os.stat(self.proc_root / "self" / "ns" / "net").st_ino

    # -- running ----------------------------------------------------------------------------

    async def run(
        self, on_sighting: Callable[[Sighting], None], on_problem: Callable[[str], None]
    ) -> None:
        """Report sightings until cancelled; a probe that cannot load is retried after a pause."""
        reason = self.available()
        if reason is not None:
            on_problem(f"eBPF attribution off: {reason}")
            return
        delay = self.restart_delay
        while True:
            probe: LoadedProbe | None = None
            fd = self.ring_fd
            try:
                if fd is None:
                    probe = await asyncio.to_thread(self.loader)
                    fd = probe.rings
                await self._read_ring(fd, on_sighting)
                return
            except (ProbeError, OSError) as exc:
                on_problem(f"eBPF attribution stopped: {exc}; retrying in {delay:.0f} s")
            finally:
                self.ready.clear()
                if probe is not None:
                    probe.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 300.0)

    async def _read_ring(self, fd: int, on_sighting: Callable[[Sighting], None]) -> None:
        """Wait for records, read them all, pause BATCH_SECONDS (one wake-up per burst)."""
        loop = asyncio.get_running_loop()
        clk_tck = os.sysconf("SC_CLK_TCK")
        netns = self._wanted_netns()
        ring = RingReader(fd, RING_BYTES)
        self.ready.set()
        try:
            while True:
                for raw in ring.drain():
                    s = sighting(raw, clk_tck)
                    if s is not None and (netns is None or s.netns == netns):
                        self.sightings += 1
                        on_sighting(s)
                # watched only while idle: the fd stays readable while records wait, so a
                # reader left in place would wake the loop without end during the pause
                readable: asyncio.Future[None] = loop.create_future()
                loop.add_reader(fd, _settle, readable)
                try:
                    await readable
                finally:
                    loop.remove_reader(fd)
                await asyncio.sleep(BATCH_SECONDS)
        finally:
            ring.close()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def open_probe(owners: EbpfOwners) -> tuple[LoadedProbe | None, str | None]:
    """Load the socket probe where `owners` says it can run: (probe, None) or (None, why not)."""
    reason = owners.available()
    if reason is not None:
        return None, reason
    try:
        return load(), None
    except ProbeError as exc:
        return None, str(exc)
