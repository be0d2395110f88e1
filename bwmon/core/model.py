"""Plain data passed between bwmon's layers: samples from sources, rows of a snapshot.

Everything here is a frozen dataclass: sources build them, the pure steps combine them, and
consumers (TUI, printers, HTTP, alerts) read them without ever mutating one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from bwmon.core.sanitize import clean

# ---------------------------------------------------------------------------------------------
# Conntrack samples


class Tuple5(NamedTuple):
    """One direction of a conntrack entry: src → dst with ports (0 when the protocol has none).

    A named tuple, not a dataclass: flow keys are hashed and compared many times per tick,
    and a tuple does both in C.
    """

    src: str
    dst: str
    sport: int = 0
    dport: int = 0


@dataclass(frozen=True, slots=True)
class ConntrackEntry:
    """One line of the conntrack table (file or `conntrack -L -o extended`).

    `orig` is the direction of the first packet, `reply` the expected answer. Byte and packet
    counters are None when accounting was off as the flow was created (the kernel then prints
    none). Bytes are whole IP packets, headers included.
    """

    family: int  # 4 or 6
    proto: str  # "tcp", "udp", "icmp", "icmpv6", or "unknown"/name for other protocols
    protonum: int
    orig: Tuple5
    reply: Tuple5
    orig_packets: int | None = None
    orig_bytes: int | None = None
    reply_packets: int | None = None
    reply_bytes: int | None = None
    state: str | None = None  # TCP state such as "ESTABLISHED", "TIME_WAIT"
    timeout: int | None = None
    flags: frozenset[str] = frozenset()  # "UNREPLIED", "ASSURED", "OFFLOAD", ...
    zone: int = 0
    mark: int = 0
    ct_id: int | None = None  # present with `-o id` / events

    @property
    def key(self) -> FlowKey:
        """Identity of the flow: protocol, zone and original tuple."""
        return FlowKey(self.family, self.protonum, self.zone, self.orig)

    @property
    def has_counters(self) -> bool:
        return self.orig_bytes is not None and self.reply_bytes is not None


class FlowKey(NamedTuple):
    """Identity of a flow (a named tuple: hashed in C, see Tuple5)."""

    family: int
    protonum: int
    zone: int
    orig: Tuple5


@dataclass(slots=True)
class TableChange:
    """How one parse of a table differs from the parse before it (see FlowTracker.read)."""

    base: int  # serial of the parse before (-2: no account, check every entry)
    serial: int  # serial of this parse
    fresh: list[ConntrackEntry]  # entries built by this parse, but for `moved`
    dropped: list[ConntrackEntry]  # the previous parse's entries whose lines are gone
    # entries of lines where only the counters moved, and (`moved_from`, in step) those of
    # their previous lines: the tracker's cheap case (see FlowTracker.read). Two lists, not
    # pairs: they outlive the tick, and 5k new pairs made the collector scan after every one.
    # Every entry neither here nor in `fresh` is reused.
    moved: list[ConntrackEntry] = field(default_factory=list)
    moved_from: list[ConntrackEntry] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Units and byte sources


class Unit(StrEnum):
    """What a row's bytes are. A row fed by both kinds says MIXED (the manual explains it)."""

    IP = "ip"  # conntrack: whole IP packets, headers included
    PAYLOAD = "payload"  # pipes and socket counters: application payload only
    MIXED = "mixed"  # some of each (a flow counted by a socket, then by conntrack)


class ByteSource(StrEnum):
    """Where a flow's bytes were counted (DESIGN.md, "Byte sources, in order of preference")."""

    CONNTRACK = "conntrack"  # whole IP packets, per flow
    TCP_INFO = "tcp_info"  # a TCP socket's own payload counters (sock_diag)
    EBPF = "ebpf"  # payload sums per socket from the eBPF tracepoints

    @property
    def unit(self) -> Unit:
        return Unit.IP if self is ByteSource.CONNTRACK else Unit.PAYLOAD


# ---------------------------------------------------------------------------------------------
# Sockets and processes


@dataclass(frozen=True, slots=True)
class SocketEntry:
    """A row of /proc/net/{tcp,tcp6,udp,udp6} (or its sock_diag twin).

    Addresses are normalised: IPv4-mapped IPv6 addresses become plain IPv4 strings. `inode` is 0
    for sockets no process holds any more (TIME_WAIT).
    """

    proto: str  # "tcp" or "udp"
    local: str
    lport: int
    remote: str
    rport: int
    state: int
    uid: int
    inode: int


@dataclass(frozen=True, slots=True)
class SocketBytes:
    """One socket's cumulative payload bytes, as a per-socket byte source reads them.

    Produced by `bwmon.core.sources.byte_source.SocketByteSource` implementations: TCP's
    tcp_info through sock_diag (source TCP_INFO) and eBPF sums per socket (source EBPF).
    `cookie` names the socket and no other until reboot: the kernel's socket cookie, as
    sock_diag reports it and `bpf_get_socket_cookie` returns it, so a new socket on a reused
    tuple is a new socket. Addresses are normalised as in SocketEntry (IPv4-mapped IPv6 becomes
    IPv4, `family` 4); an unconnected socket has remote "" and rport 0. `bytes_in` is what the
    socket received, `bytes_out` what it sent, both since the socket was created. `closed`
    marks a socket's final counters (it is gone). `owner` is the process seen using the socket
    (eBPF, at first sight), else None: then `inode` is mapped through /proc/PID/fd; inode 0
    means no process holds the socket now (orphaned, still in the accept queue, destroyed).
    `uid` is the socket's user as the kernel gives it (-1: unknown). `netns` is the inode of
    the socket's network namespace where the source knows it (eBPF sees every namespace), else
    0: the namespace the source was opened in. `comm` is the owner's name as the kernel gave it
    with `owner` (eBPF): what describes the owner once it has exited and /proc has nothing.
    """

    source: ByteSource
    proto: str  # "tcp", "udp", ...
    family: int  # 4 or 6
    local: str
    lport: int
    remote: str
    rport: int
    cookie: int
    inode: int
    uid: int
    bytes_in: int
    bytes_out: int
    state: int = 0  # TCP state as the kernel numbers it (sources.socket_table.TCP_*); 0 for others
    closed: bool = False
    owner: ProcKey | None = None
    netns: int = 0
    comm: str = ""

    @property
    def unit(self) -> Unit:
        return self.source.unit


@dataclass(frozen=True, slots=True, order=True)
class ProcKey:
    """A process identity that survives PID reuse: pid plus its start time (clock ticks)."""

    pid: int
    start: int


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """What is shown about a process. Every text field is cleaned on construction (see
    `bwmon.core.sanitize`): whoever builds one, no consumer ever sees a control character."""

    key: ProcKey
    name: str  # comm
    cmdline: str  # NUL-separated argv joined by spaces; "[name]" for kernel threads
    user: str
    uid: int
    exe_base: str = ""  # basename of argv[0] (for auto-grouping)
    # its container (runtime's name, namespace/pod/container for Kubernetes, an `ip netns`
    # name or netns:<inode> for another namespace; "" for bwmon's own) and its systemd unit
    container: str = ""
    unit: str = ""

    def __post_init__(self) -> None:
        for name in ("name", "cmdline", "user", "exe_base", "container", "unit"):
            value = getattr(self, name)
            if (safe := clean(value)) is not value:
                object.__setattr__(self, name, safe)


# ---------------------------------------------------------------------------------------------
# Pipe samples


@dataclass(frozen=True, slots=True)
class PipeClient:
    """One client connection of a pipe monitor (cumulative payload bytes)."""

    peer: str
    bytes_in: int
    bytes_out: int
    open: bool = True


@dataclass(frozen=True, slots=True)
class PipeCounters:
    """Cumulative payload counters of one pipe, continuing across restarts of its child.

    `bytes_in` is what the pipe's clients sent to the target (requests), `bytes_out` what came
    back from the target to the clients, so a pipe in front of a download server shows "out".
    """

    name: str
    listen: str
    target: str
    bytes_in: int
    bytes_out: int
    connections: int  # currently open client connections
    clients: tuple[PipeClient, ...] = ()
    up: bool = True
    error: str | None = None


# ---------------------------------------------------------------------------------------------
# Snapshot


class RowKind(StrEnum):
    APP = "app"
    PROCESS = "process"
    PIPE = "pipe"
    UNATTRIBUTED = "unattributed"
    FORWARDED = "forwarded"


UNATTRIBUTED = "(unattributed)"
FORWARDED = "(forwarded)"


@dataclass(frozen=True, slots=True)
class Connection:
    """One flow as seen from one local socket (for the detail pane)."""

    proto: str
    local: str  # "addr:port"
    remote: str
    bytes_in: int  # cumulative since bwmon started (or since flow creation with lookback)
    bytes_out: int
    state: str | None = None
    open: bool = True


@dataclass(frozen=True, slots=True)
class ProcessRow:
    info: ProcessInfo
    app: str
    rate_in: float
    rate_out: float
    total_in: int
    total_out: int
    flows: int


@dataclass(frozen=True, slots=True)
class AppRow:
    """One line of the app table. Rates in bytes/s, totals in bytes."""

    name: str
    kind: RowKind
    unit: Unit
    rate_in: float
    rate_out: float
    total_in: int
    total_out: int
    flows: int = 0  # open connections/flows now
    processes: tuple[ProcessInfo, ...] = ()
    connections: tuple[Connection, ...] = ()
    uids: tuple[int, ...] = ()  # (unattributed): the users of sockets whose owner is unknown

    @property
    def uids_text(self) -> str:
        """E.g. "uid 0, 1000": whose sockets the row's bytes are, as the kernel said ("" when
        it did not say); shown beside (unattributed) by the table and the detail pane."""
        return "uid " + ", ".join(map(str, self.uids)) if self.uids else ""


@dataclass(frozen=True, slots=True)
class Totals:
    rate_in: float = 0.0
    rate_out: float = 0.0
    total_in: int = 0
    total_out: int = 0


@dataclass(frozen=True, slots=True)
class HostTotals:
    """Whole-host figures: each flow counted once (not per local end)."""

    rate_in: float = 0.0
    rate_out: float = 0.0
    total_in: int = 0
    total_out: int = 0
    loopback_total: int = 0  # bytes of loopback flows (counted once) since start
    loopback_rate: float = 0.0


class Level(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class LogEvent:
    """An entry of the alert log: alerts, notification outcomes, source problems."""

    time: float  # wall clock (epoch seconds)
    level: Level
    source: str  # "alert", "notify", "conntrack", "pipe:NAME", ...
    message: str
    data: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        """Messages quote names, command lines and commands' stderr: cleaned here, one line
        each, so no log line, terminal or JSON reader downstream sees a control character."""
        if (source := clean(self.source)) is not self.source:
            object.__setattr__(self, "source", source)
        if (message := clean(self.message)) is not self.message:
            object.__setattr__(self, "message", message)
        if any(clean(v) is not v for _, v in self.data):
            object.__setattr__(self, "data", tuple((clean(k), clean(v)) for k, v in self.data))


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str  # "conntrack-file", "conntrack-tool", "events", "ebpf", "pipe:NAME"
    active: bool
    detail: str = ""  # may quote an error, a host or a path: cleaned like a log message
    counts_bytes: bool = False  # a byte source (conntrack, pipes), not an owner or event source

    def __post_init__(self) -> None:
        if (detail := clean(self.detail)) is not self.detail:
            object.__setattr__(self, "detail", detail)


@dataclass(frozen=True, slots=True)
class Finding:
    """A failed prerequisite check: what is wrong and the exact command that fixes it."""

    check: str
    ok: bool
    message: str  # may quote paths and tools' output: cleaned like a log message
    fix: str | None = None

    def __post_init__(self) -> None:
        if (message := clean(self.message)) is not self.message:
            object.__setattr__(self, "message", message)


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    time: float  # wall clock
    rate_in: float
    rate_out: float


@dataclass(frozen=True, slots=True)
class NamespaceState:
    """A network namespace measured besides bwmon's own, as the last tick saw it."""

    inode: int
    name: str  # container name, ip netns name, or netns:<inode>
    processes: int
    flows: int  # entries of its conntrack table at the last read
    error: str | None = None  # why its table could not be read

    def __post_init__(self) -> None:
        for name in ("name", "error"):
            value = getattr(self, name)
            if value is not None and (safe := clean(value)) is not value:
                object.__setattr__(self, name, safe)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a consumer may show after one tick. Immutable; replaced every tick."""

    seq: int
    time: float  # wall clock of the tick (epoch seconds)
    elapsed: float  # seconds really elapsed since the previous tick (0 for the first)
    apps: tuple[AppRow, ...]  # grouped rows incl. pipes, (unattributed), (forwarded)
    processes: tuple[ProcessRow, ...]
    host: HostTotals
    filtered: Totals  # what include/exclude/ignore-local hid
    sources: tuple[SourceStatus, ...] = ()
    findings: tuple[Finding, ...] = ()  # doctor findings when nothing can be measured
    events: tuple[LogEvent, ...] = ()  # the alert log's recent tail
    checks: tuple[Finding, ...] = ()  # the doctor's latest outcome of every check
    # rows renamed by a change of groups or filters since the previous snapshot: (old row,
    # ((row it went to, share of its bytes), ...)); alerts follow them (alerts.rules.carry_over)
    regrouped: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    namespaces: tuple[NamespaceState, ...] = ()  # other network namespaces measured
    # bytes counted per byte source since start, each flow once ("conntrack", "tcp_info", ...)
    shares: tuple[tuple[str, int], ...] = ()
    unmeasured: tuple[str, ...] = ()  # protocols no source counts now ("udp"): not measured

    @property
    def measuring(self) -> bool:
        """True when a byte source is working: bytes moved now would be counted."""
        return any(s.active and s.counts_bytes for s in self.sources)

    def app(self, name: str) -> AppRow | None:
        for row in self.apps:
            if row.name == name:
                return row
        return None
