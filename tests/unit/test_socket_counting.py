"""Owners of socket deltas (attribution.socket_counting): a 1 ms connection seen only by its
destroy broadcast has no inode left, so with eBPF its owner is the sighting on its way from the
discovery worker: the bytes wait for it instead of going to (unattributed) at once."""

from __future__ import annotations

from bwmon.core.attribution.byte_merge import ByteMerge
from bwmon.core.attribution.ends import EndKey, EndUsage
from bwmon.core.attribution.socket_counting import PENDING_TICKS, SocketCounting
from bwmon.core.attribution.socket_flows import SocketFlows
from bwmon.core.model import ByteSource, ProcKey, SocketBytes
from tests.helpers.factories import conntrack_entry

OWNER = ProcKey(4242, 900)
END = EndKey("tcp", "10.0.0.1", 40000, "10.0.0.2", 443)


def closed_socket() -> SocketBytes:
    """The destroy broadcast of a connection bwmon never saw open (inode 0: nobody holds it)."""
    return SocketBytes(ByteSource.TCP_INFO, "tcp", 4, END.local, END.lport, END.remote,
                       END.rport, 7, 0, 1000, 16384, 65552, 7, closed=True)


async def counted(sightings: bool, learnt_at: int) -> list[tuple[int, ProcKey | None, int]]:
    """(tick, owner, bytes) of each usage placed, the sighting reaching memory at `learnt_at`."""
    flows, counting = SocketFlows(lookback=False), SocketCounting(ByteMerge(frozenset({"tcp"})), {})
    memory: dict[EndKey, ProcKey] = {}

    async def no_owners(inodes: set[int], uids: set[int] | None) -> dict[int, ProcKey]:
        return {}

    placed: list[tuple[int, ProcKey | None, int]] = []
    for tick in range(1, 8):
        if tick == learnt_at:
            memory[END] = OWNER
        samples = [closed_socket()] if tick == 2 else []
        added, _, _ = await counting.usages(
            flows.read(samples, tick), tick, owners=no_owners, memory=memory.get,
            remember=lambda end, owner: None, ct_counts=False, ct_tracks=False,
            sightings=sightings)
        placed += [(tick, u.owner, u.d_in + u.d_out) for u in added if isinstance(u, EndUsage)]
    return placed


async def test_with_ebpf_a_closed_socket_waits_for_its_sighting() -> None:
    assert await counted(sightings=True, learnt_at=3) == [(3, OWNER, 81936)]


async def test_a_sighting_that_never_comes_leaves_it_to_unattributed_a_few_ticks_later() -> None:
    assert await counted(sightings=True, learnt_at=99) == [(2 + PENDING_TICKS, None, 81936)]


async def test_without_ebpf_nothing_would_name_it_so_it_goes_at_once() -> None:
    assert await counted(sightings=False, learnt_at=3) == [(2, None, 81936)]


async def test_an_owner_a_source_names_is_described_by_what_the_kernel_said() -> None:
    flows, counting = SocketFlows(lookback=False), SocketCounting(ByteMerge(frozenset({"udp"})), {})
    seen: list[tuple[ProcKey, str, int]] = []
    flows.read([], 1)
    sample = SocketBytes(ByteSource.EBPF, "udp", 4, "10.0.0.1", 5353, "", 0, 8, 0, 1000, 0,
                         4000, owner=OWNER, comm="bwgen-udp")

    async def no_owners(inodes: set[int], uids: set[int] | None) -> dict[int, ProcKey]:
        return {}

    added, _, _ = await counting.usages(
        flows.read([sample], 2), 2, owners=no_owners, memory=lambda end: None,
        remember=lambda end, owner: None, ct_counts=False, ct_tracks=False,
        sighted=lambda key, comm, uid: seen.append((key, comm, uid)))
    assert seen == [(OWNER, "bwgen-udp", 1000)]
    assert [(u.owner, u.d_out) for u in added] == [(OWNER, 4000)]


async def held_then_conntrack(ct_in: int, ct_out: int) -> int:
    """Bytes counted for END in all: its socket's (16,384 in, 65,552 out, closed, owner
    unknown, held) and conntrack's for the same end, read the tick after."""
    merge = ByteMerge(frozenset({"tcp"}))
    flows, counting = SocketFlows(lookback=False), SocketCounting(merge, {})

    async def no_owners(inodes: set[int], uids: set[int] | None) -> dict[int, ProcKey]:
        return {}

    total = 0
    for tick in range(1, 3 + PENDING_TICKS):
        if tick == 3:
            entry = conntrack_entry(END.local, END.lport, END.remote, END.rport, ct_out, ct_in,
                                    state="CLOSE")
            ct = EndUsage(entry, END, OWNER, ct_in, ct_out, False, False)
            merge.conntrack([ct], tick)
            total += ct.d_in + ct.d_out
        samples = [closed_socket()] if tick == 2 else []
        added, _, _ = await counting.usages(
            flows.read(samples, tick), tick, owners=no_owners, memory=lambda end: None,
            remember=lambda end, owner: None, ct_counts=True, ct_tracks=True)
        total += sum(u.d_in + u.d_out for u in added)
    return total


async def test_held_socket_bytes_conntrack_counted_only_in_part_are_not_lost() -> None:
    # tracking came on mid-way: conntrack counted the last packets only; the rest stays counted
    assert await held_then_conntrack(500, 500) == 81_936
    assert await held_then_conntrack(17_000, 67_000) == 84_000  # it counted all: once, its own
