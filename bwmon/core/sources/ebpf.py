"""Optional kernel-side attribution: which process sent or received on which socket, as it happens.

A bpftrace program (`ebpf_probe.bt`) on the `sock:sock_send_length`/`sock_recv_length`
tracepoints reports the first sighting of each TCP/UDP socket of bwmon's network namespace, so
even a 1 ms connection gets its owner; conntrack keeps counting the bytes. Where tracefs is not
mounted, bpftrace runs in a private mount namespace that mounts it, leaving the host's mounts alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bwmon.core.capabilities import BPF, effective, holds
from bwmon.core.model import ProcKey, SourceStatus
from bwmon.core.runtime.process_tree import die_with_parent
from bwmon.core.sanitize import decode_comm

PROBE = Path(__file__).with_name("ebpf_probe.bt")
TRACEPOINTS = ("sock_send_length", "sock_recv_length")
TRACEFS_FIX = "mount -t tracefs tracefs /sys/kernel/tracing"
BPFTRACE_FIX = "apt-get install bpftrace"
_PROTOS = {6: "tcp", 17: "udp"}
# stderr lines bpftrace prints on healthy runs (memlock is irrelevant on memcg-accounted kernels)
_BENIGN = ("RLIMIT_MEMLOCK", "Attaching ")
BATCH_SECONDS = 0.02  # sightings are consumed once per tick: 20 ms of latency costs nothing


@dataclass(frozen=True, slots=True)
class Sighting:
    """A process seen sending or receiving on a socket (the tracepoints fire in its context).

    `start` is the process start time in clock ticks since boot, as in /proc/PID/stat and
    `ProcKey.start`. Addresses follow `SocketEntry`: IPv4-mapped IPv6 become plain IPv4 (and
    `family` 4, the family conntrack files the flow under). An unconnected UDP socket has remote
    "0.0.0.0"/"::" and rport 0: match it by local port. `time` is CLOCK_MONOTONIC seconds.
    """

    pid: int
    start: int
    comm: str
    proto: str  # "tcp" or "udp"
    family: int  # 4 or 6
    local: str
    lport: int
    remote: str
    rport: int
    time: float

    @property
    def key(self) -> ProcKey:
        return ProcKey(self.pid, self.start)


def _addr(text: str) -> tuple[str, int]:
    """inet_ntop text (already canonical) → (address, family); mapped IPv4 unwrapped."""
    try:
        if ":" not in text:
            socket.inet_pton(socket.AF_INET, text)
            return text, 4
        socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        raise ValueError(text) from None
    if text.startswith("::ffff:") and "." in text:
        return text[7:], 4
    return text, 6


def parse_line(line: str, clk_tck: int = 100) -> Sighting | None:
    """One probe output line → a Sighting; None for anything else (banner, blank, garbage)."""
    parts = line.split(" ", 10)
    if len(parts) != 11 or parts[0] != "S":
        return None
    try:
        pid, start_ns, protonum, family = (int(p) for p in parts[1:5])
        local, lfam = _addr(parts[5])
        remote, rfam = _addr(parts[7])
        lport, rport, nsecs = int(parts[6]), int(parts[8]), int(parts[9])
    except ValueError:
        return None
    proto = _PROTOS.get(protonum)
    if proto is None or family not in (4, 6):
        return None
    if family == 6 and lfam == 4 and rfam == 4:
        family = 4
    elif family == 6 and (lfam == 4) != (rfam == 4):
        # one side mapped, the other the wildcard "::": keep the wildcard in the same family
        family = 4
        local = "0.0.0.0" if lfam == 6 else local
        remote = "0.0.0.0" if rfam == 6 else remote
    return Sighting(
        pid=pid,
        start=start_ns // (1_000_000_000 // clk_tck),
        # the probe prints comm's raw bytes: decoded like /proc's (sanitize.decode_comm), so
        # a name cut mid-character or holding escapes names the process the same everywhere
        comm=decode_comm(parts[10].encode("utf-8", "surrogateescape")),
        proto=proto,
        family=family,
        local=local,
        lport=lport,
        remote=remote,
        rport=rport,
        time=nsecs / 1e9,
    )


class EbpfOwners:
    """The eBPF attribution source: runs bpftrace and turns its lines into Sightings."""

    def __init__(
        self,
        *,
        bpftrace: str = "bpftrace",
        sys_root: Path = Path("/sys"),
        proc_root: Path = Path("/proc"),
        netns_inode: int | None = None,
        euid: int | None = None,
        caps: int | None = None,
        restart_delay: float = 5.0,
    ) -> None:
        self.bpftrace = bpftrace
        self.sys_root = sys_root
        self.proc_root = proc_root
        self.netns_inode = netns_inode
        self.euid = os.geteuid() if euid is None else euid
        self.caps = effective(proc_root) if caps is None else caps
        self.restart_delay = restart_delay
        self.ready = asyncio.Event()  # set once the probes are attached
        self.sightings = 0
        self.pid: int | None = None  # of the running bpftrace (for CPU accounting)
        self._fix: str | None = None

    # -- availability -----------------------------------------------------------------------

    def _tracing_dirs(self) -> list[Path]:
        kernel = self.sys_root / "kernel"
        return [kernel / "tracing", kernel / "debug" / "tracing"]

    def tracefs(self) -> Path | None:
        """The mounted tracefs showing the sock tracepoints, if any."""
        for d in self._tracing_dirs():
            if (d / "events" / "sock" / TRACEPOINTS[0]).is_dir():
                return d
        return None

    def _tracepoints_in_btf(self) -> bool:
        try:
            data = (self.sys_root / "kernel" / "btf" / "vmlinux").read_bytes()
        except OSError:
            return False
        return all(f"btf_trace_{tp}".encode() in data for tp in TRACEPOINTS)

    def _can_mount_privately(self) -> bool:
        try:
            fs = (self.proc_root / "filesystems").read_text()
        except OSError:
            return False
        return "tracefs" in fs.split() and shutil.which("unshare") is not None

    def available(self) -> str | None:
        """None when the source can run here, else the reason (see `fix` for the remedy)."""
        self._fix = None
        if not holds(BPF, self.caps):
            self._fix = ("run bwmon as root, or grant it CAP_BPF and CAP_PERFMON "
                         "(AmbientCapabilities= in its systemd unit)")
            return "attaching eBPF probes needs CAP_BPF + CAP_PERFMON"
        if self.euid != 0:
            self._fix = "run bwmon as root (sudo)"
            return "bpftrace runs only as uid 0, whatever the capabilities"
        if not (self.sys_root / "kernel" / "btf" / "vmlinux").exists():
            return "no BTF: the kernel lacks /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)"
        if shutil.which(self.bpftrace) is None:
            self._fix = BPFTRACE_FIX
            return f"bpftrace missing: no {self.bpftrace!r} on PATH"
        mounted = self.tracefs()
        missing = "tracepoints missing: the kernel has no sock:sock_send_length/sock_recv_length"
        if mounted is None and not self._tracepoints_in_btf():
            return missing
        if mounted is not None:
            events = mounted / "events" / "sock"
            if not all((events / tp).is_dir() for tp in TRACEPOINTS):
                return missing
        elif not self._can_mount_privately():
            self._fix = TRACEFS_FIX
            return "tracefs not mounted at /sys/kernel/tracing"
        return None

    def fix(self) -> str | None:
        """The command that removes the reason `available()` last gave, if there is one."""
        return self._fix

    def argv(self) -> list[str]:
        """The command run: bpftrace, wrapped in a private tracefs mount when none is mounted."""
        inode = self.netns_inode
        if inode is None:
            inode = os.stat(self.proc_root / "self" / "ns" / "net").st_ino
        probe = [self.bpftrace, str(PROBE), str(inode)]
        if self.tracefs() is not None:
            return probe
        target = str(self.sys_root / "kernel" / "tracing")
        script = 'mount -t tracefs tracefs "$0" && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, target,
                *probe]

    def status(self) -> SourceStatus:
        detail = f"bpftrace, {self.sightings} sockets seen" if self.ready.is_set() else "starting"
        return SourceStatus("ebpf", self.ready.is_set(), detail)

    # -- running ----------------------------------------------------------------------------

    async def run(
        self, on_sighting: Callable[[Sighting], None], on_problem: Callable[[str], None]
    ) -> None:
        """Report sightings until cancelled; restarts a crashed bpftrace after a pause."""
        reason = self.available()
        if reason is not None:
            on_problem(f"eBPF attribution off: {reason}")
            return
        clk_tck = os.sysconf("SC_CLK_TCK")
        delay = self.restart_delay
        while True:
            problem = await self._run_once(self.argv(), clk_tck, on_sighting)
            on_problem(f"eBPF attribution stopped: {problem}; retrying in {delay:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 300.0)

    async def _run_once(
        self, argv: Sequence[str], clk_tck: int, on_sighting: Callable[[Sighting], None]
    ) -> str:
        env = dict(os.environ, BPFTRACE_MAP_KEYS_MAX="65536")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, preexec_fn=die_with_parent,
            )
        except OSError as exc:
            return f"cannot start {argv[0]}: {exc.strerror}"
        assert proc.stdout is not None and proc.stderr is not None
        self.pid = proc.pid
        errors: deque[str] = deque(maxlen=5)
        drain = asyncio.create_task(self._collect_stderr(proc.stderr, errors))
        try:
            pending = b""
            # whole chunks, not single lines, and a short pause between reads: a burst of
            # sightings costs one wake-up (a full pipe holds ~800 lines: ~40,000 lines/s)
            while chunk := await proc.stdout.read(1 << 16):
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    self._line(raw.decode("utf-8", "surrogateescape"), clk_tck, on_sighting,
                               errors)
                await asyncio.sleep(BATCH_SECONDS)
            await proc.wait()
            await drain
        finally:
            self.ready.clear()
            self.pid = None
            if proc.returncode is None:
                await _stop(proc)
            drain.cancel()
        tail = "; ".join(errors) or "no message"
        return f"bpftrace exited with status {proc.returncode}: {tail}"

    def _line(self, line: str, clk_tck: int, on_sighting: Callable[[Sighting], None],
              errors: deque[str]) -> None:
        sighting = parse_line(line, clk_tck)
        if sighting is not None:
            self.sightings += 1
            on_sighting(sighting)
        elif line.startswith("ready"):
            self.ready.set()
        elif line.startswith("Lost "):
            errors.append(line.strip())

    @staticmethod
    async def _collect_stderr(stream: asyncio.StreamReader, errors: deque[str]) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").strip()
            if line and not any(b in line for b in _BENIGN):
                errors.append(line)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGINT lets bpftrace detach cleanly; SIGKILL if it does not within 2 s."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(proc.wait(), 2.0)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
