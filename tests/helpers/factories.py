"""The one place tests build model objects: snapshots, rows, process facts, flows and sockets.

Every factory takes the fields a test cares about and fills the rest with plain defaults, so a
test names only what it asserts on. Defaults follow what the real sources produce (a process's
`exe_base` is its argv[0]'s basename; the first tick of a feed has `elapsed` 0).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePosixPath

from bwmon.core.model import (
    AppRow,
    Connection,
    ConntrackEntry,
    Finding,
    HostTotals,
    LogEvent,
    PipeClient,
    PipeCounters,
    ProcessInfo,
    ProcessRow,
    ProcKey,
    RowKind,
    Snapshot,
    SocketEntry,
    SourceStatus,
    Totals,
    Tuple5,
    Unit,
)

T0 = 1_800_000_000.0  # a fixed wall clock (2027-01-15) for ticks built here


def process_info(
    name: str = "curl",
    cmdline: str | None = None,
    *,
    pid: int = 100,
    start: int = 1,
    user: str = "root",
    uid: int = 0,
    exe_base: str | None = None,
) -> ProcessInfo:
    """Facts of one process; `cmdline` defaults to its name, `exe_base` to argv[0]'s basename
    (a process title's colon left out, as bwmon.core.sources.proc_text does)."""
    cmdline = name if cmdline is None else cmdline
    if exe_base is None:
        exe_base = PurePosixPath(cmdline.split(" ", 1)[0]).name.rstrip(":")  # as proc_text's
    return ProcessInfo(ProcKey(pid, start), name, cmdline, user, uid, exe_base)


def connection(
    local: str = "10.0.0.1:40000",
    remote: str = "93.184.216.34:443",
    bytes_in: int = 0,
    bytes_out: int = 0,
    state: str | None = "ESTABLISHED",
    *,
    proto: str = "tcp",
    open: bool = True,
) -> Connection:
    return Connection(proto, local, remote, bytes_in, bytes_out, state, open)


def app_row(
    name: str = "app",
    rate_in: float = 0.0,
    rate_out: float = 0.0,
    total_in: int = 0,
    total_out: int = 0,
    *,
    kind: RowKind = RowKind.APP,
    unit: Unit | None = None,
    flows: int = 0,
    processes: Iterable[ProcessInfo] = (),
    connections: Iterable[Connection] = (),
) -> AppRow:
    """A row of the app table; a pipe row (`kind=RowKind.PIPE`) counts payload by default."""
    if unit is None:
        unit = Unit.PAYLOAD if kind is RowKind.PIPE else Unit.IP
    return AppRow(name, kind, unit, rate_in, rate_out, total_in, total_out, flows,
                  tuple(processes), tuple(connections))


def process_row(
    info: ProcessInfo,
    app: str | None = None,
    rate_in: float = 0.0,
    rate_out: float = 0.0,
    total_in: int = 0,
    total_out: int = 0,
    flows: int = 0,
) -> ProcessRow:
    """A process's row; its app defaults to the process's name."""
    return ProcessRow(info, info.name if app is None else app, rate_in, rate_out,
                      total_in, total_out, flows)


def snapshot(
    seq: int = 0,
    apps: Iterable[AppRow] = (),
    *,
    time: float | None = None,
    elapsed: float | None = None,
    processes: Iterable[ProcessRow] = (),
    host: HostTotals | None = None,
    filtered: Totals | None = None,
    sources: Iterable[SourceStatus] = (),
    findings: Iterable[Finding] = (),
    events: Iterable[LogEvent] = (),
) -> Snapshot:
    """Tick `seq` at T0 + seq seconds, one second after the previous (0 for the first)."""
    return Snapshot(
        seq=seq,
        time=T0 + seq if time is None else time,
        elapsed=(0.0 if seq == 0 else 1.0) if elapsed is None else elapsed,
        apps=tuple(apps),
        processes=tuple(processes),
        host=HostTotals() if host is None else host,
        filtered=Totals() if filtered is None else filtered,
        sources=tuple(sources),
        findings=tuple(findings),
        events=tuple(events),
    )


def pipe_counters(
    name: str = "web",
    bytes_in: int = 0,
    bytes_out: int = 0,
    *,
    listen: str = "127.0.0.1:8080",
    target: str = "127.0.0.1:80",
    connections: int = 0,
    clients: Iterable[PipeClient] = (),
    up: bool = True,
    error: str | None = None,
) -> PipeCounters:
    return PipeCounters(name, listen, target, bytes_in, bytes_out, connections,
                        tuple(clients), up, error)


def conntrack_entry(
    src: str = "10.0.0.1",
    sport: int = 40000,
    dst: str = "10.0.0.2",
    dport: int = 80,
    orig: int | None = None,
    reply: int | None = None,
    *,
    proto: str = "tcp",
    state: str | None = None,
    orig_packets: int | None = None,
    reply_packets: int | None = None,
    flags: Iterable[str] = (),
    zone: int = 0,
    ct_id: int | None = None,
) -> ConntrackEntry:
    """One conntrack entry from src:sport to dst:dport; the reply tuple mirrors it (no NAT).
    `orig`/`reply` are the byte counters of each direction (None: accounting off)."""
    protonum = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}[proto]
    return ConntrackEntry(
        6 if ":" in src else 4, proto, protonum,
        Tuple5(src, dst, sport, dport), Tuple5(dst, src, dport, sport),
        orig_packets=orig_packets, orig_bytes=orig,
        reply_packets=reply_packets, reply_bytes=reply,
        state=state, flags=frozenset(flags), zone=zone, ct_id=ct_id,
    )


def socket_entry(
    local: str = "10.0.0.1",
    lport: int = 40000,
    remote: str = "10.0.0.2",
    rport: int = 80,
    inode: int = 0,
    *,
    proto: str = "tcp",
    state: int = 1,  # TCP_ESTABLISHED
    uid: int = 0,
) -> SocketEntry:
    """One row of a socket table; inode 0 is a socket no process holds (TIME_WAIT)."""
    return SocketEntry(proto, local, lport, remote, rport, state, uid, inode)
