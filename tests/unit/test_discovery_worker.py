"""The discovery worker's reports reach the engine intact: owners with their process facts,
final counters of ended flows, source status and problems; garbage is logged, not raised."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bwmon.core.attribution.attributor import EndKey
from bwmon.core.attribution.discovery import Discovery, sockdiag_lookup
from bwmon.core.attribution.discovery_worker import _dispatch, _entry_from, _entry_json, _LineSink
from bwmon.core.model import ConntrackEntry, Level, ProcessInfo, ProcKey, SourceStatus
from bwmon.core.sources.processes import ProcessTable
from tests.helpers.factories import conntrack_entry

ENTRY = conntrack_entry("::1", 40000, "::1", 53, 444, 148, proto="udp", orig_packets=3,
                        reply_packets=1, flags={"ASSURED"}, zone=5, ct_id=77)


class Sink:
    def __init__(self) -> None:
        self.owners: list[tuple[EndKey, ProcKey, ProcessInfo | None]] = []
        self.ended: list[ConntrackEntry] = []
        self.status: list[SourceStatus] = []

    def remember_owner(self, end: EndKey, owner: ProcKey, info: ProcessInfo | None = None) -> None:
        self.owners.append((end, owner, info))

    def flow_ended(self, entry: ConntrackEntry) -> None:
        self.ended.append(entry)

    def set_source_status(self, status: SourceStatus) -> None:
        self.status.append(status)


def test_reports_round_trip() -> None:
    assert _entry_from(json.loads(json.dumps(_entry_json(ENTRY)))) == ENTRY
    sink, problems = Sink(), []

    def log(level: Level, source: str, message: str) -> None:
        problems.append((level, source, message))

    lines = [
        {
            "o": ["tcp", "127.0.0.1", 5000, "127.0.0.1", 80],
            "p": [42, 9000],
            "i": ["curl", "curl http://x/", "root", 0, "curl"],
        },
        {"d": _entry_json(ENTRY)},
        {"s": ["ebpf", True, "bpftrace"]},
        {"l": ["warning", "events", "overrun"]},
    ]
    for line in lines:
        _dispatch(json.dumps(line).encode(), sink, log)
    end, owner, info = sink.owners[0]
    assert end == EndKey("tcp", "127.0.0.1", 5000, "127.0.0.1", 80)
    assert owner == ProcKey(42, 9000) and info is not None and info.cmdline == "curl http://x/"
    assert sink.ended == [ENTRY]
    assert sink.status == [SourceStatus("ebpf", True, "bpftrace")]
    assert problems == [(Level.WARNING, "events", "overrun")]

    _dispatch(b"{not json", sink, log)
    _dispatch(b'{"o": [1]}', sink, log)
    assert [p[1] for p in problems[1:]] == ["discovery", "discovery"]


def test_an_owner_gone_before_it_was_read_is_reported_as_the_kernel_named_it(
        tmp_path: Path) -> None:
    """The worker's wiring: a sighting's comm and uid reach the process table, so the facts
    sent with the owner describe a process that had exited by the time the ring was read."""
    lines: list[dict[str, Any]] = []

    class Out:
        def get_write_buffer_size(self) -> int:
            return 0

        def write(self, data: bytes) -> None:
            lines.append(json.loads(data))

    procs = ProcessTable(tmp_path)  # an empty /proc: every process has exited
    sink = _LineSink(procs.info, Out())  # type: ignore[arg-type]

    async def no_owners(inodes: set[int], uids: set[int]) -> dict[int, ProcKey]:
        return {}

    discovery = Discovery(sink, lambda *_: None, None, lambda: (), no_owners,  # type: ignore[arg-type]
                          describe=procs.info, sighted=procs.sighted)
    discovery.on_sighting("udp", "10.0.0.1", 4000, "10.0.0.2", 53, ProcKey(77, 5), "bwgen", 0)
    assert lines == [{"o": ["udp", "10.0.0.1", 4000, "10.0.0.2", 53], "p": [77, 5],
                      "i": ["bwgen", "[bwgen]", "root", 0, "bwgen", "", ""]}]


async def test_flows_without_sockets_are_not_looked_up() -> None:
    """An ICMP flow's NEW event (a ping, once a rule tracks flows) has no socket to find: the
    exact sock_diag lookup refused its protocol with ValueError, which ended discovery for good
    (no eBPF sighting or owner reached the engine again)."""
    sink = Sink()

    async def no_owners(inodes: set[int], uids: set[int]) -> dict[int, ProcKey]:
        return {}

    discovery = Discovery(sink, lambda *_: None, None, lambda: ("10.0.0.1",),  # type: ignore[arg-type]
                          no_owners, lookup=sockdiag_lookup)
    discovery.on_new(conntrack_entry("10.0.0.1", 0, "10.0.0.2", 0, proto="icmp"))
    assert not await discovery.resolve_pending()
    assert sink.owners == []
