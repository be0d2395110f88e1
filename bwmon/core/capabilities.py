"""Which Linux capabilities this process holds, and what each one lets bwmon see.

bwmon needs no uid 0: a service user holding these capabilities (ambient, e.g. from
`AmbientCapabilities=` in a systemd unit or `setpriv --ambient-caps`) measures everything root
would. The mask is CapEff from `<proc_root>/self/status`; the doctor reports each capability as
one check, with what it adds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CAP_DAC_READ_SEARCH = 2
CAP_NET_ADMIN = 12
CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


@dataclass(frozen=True, slots=True)
class Capability:
    """One capability bwmon uses (or a pair that works only together), as a doctor check."""

    name: str  # as systemd and setpriv spell it, e.g. "CAP_NET_ADMIN"
    bits: tuple[int, ...]  # all of them are needed
    check: str  # the doctor check's name
    adds: str  # what holding it adds to what bwmon measures


NET_ADMIN = Capability(
    "CAP_NET_ADMIN", (CAP_NET_ADMIN,), "cap-net-admin",
    "conntrack over netlink (`conntrack -L` where /proc/net/nf_conntrack is absent, and "
    "`conntrack -E` events for connections shorter than a tick) and reading the firewall rules")
DAC_READ_SEARCH = Capability(
    "CAP_DAC_READ_SEARCH", (CAP_DAC_READ_SEARCH,), "cap-dac-read-search",
    "reading the root-only /proc/net/nf_conntrack and listing other users' /proc/PID/fd "
    "(without it and CAP_SYS_PTRACE, other users' TCP traffic is counted as (unattributed))")
SYS_PTRACE = Capability(
    "CAP_SYS_PTRACE", (CAP_SYS_PTRACE,), "cap-sys-ptrace",
    "mapping other users' sockets to their processes (the links in /proc/PID/fd); your own "
    "processes' TCP traffic is measured without any capability")
BPF = Capability(
    "CAP_BPF + CAP_PERFMON", (CAP_BPF, CAP_PERFMON), "cap-bpf",
    "eBPF: the owner of a connection shorter than a tick, and the bytes of UDP sockets")
ALL = (NET_ADMIN, DAC_READ_SEARCH, SYS_PTRACE, BPF)
ALL_BITS = (1 << 64) - 1


def effective(proc_root: Path = Path("/proc")) -> int:
    """This process's effective capability mask (CapEff). Where /proc cannot tell, uid 0 is
    taken to hold every capability and anyone else none."""
    try:
        for line in (proc_root / "self" / "status").read_bytes().splitlines():
            if line.startswith(b"CapEff:"):  # bytes: the Name line may be any bytes
                return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return ALL_BITS if os.geteuid() == 0 else 0


def holds(cap: Capability, mask: int) -> bool:
    """Whether `mask` has every bit of `cap`. Before Linux 5.8 split CAP_BPF and CAP_PERFMON out
    of it, CAP_SYS_ADMIN stood for both."""
    if all(mask >> bit & 1 for bit in cap.bits):
        return True
    return cap is BPF and bool(mask >> CAP_SYS_ADMIN & 1)


def missing_for_other_users(mask: int) -> list[Capability]:
    """What `mask` lacks to map other users' sockets to their processes: listing their
    /proc/PID/fd needs CAP_DAC_READ_SEARCH, reading the links in it CAP_SYS_PTRACE."""
    return [cap for cap in (DAC_READ_SEARCH, SYS_PTRACE) if not holds(cap, mask)]


def missing(mask: int) -> list[Capability]:
    """The capabilities bwmon uses that `mask` lacks."""
    return [cap for cap in ALL if not holds(cap, mask)]
