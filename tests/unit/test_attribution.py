"""Attribution and accounting: direction, loopback, owner memory, conservation, filters, rates."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bwmon.core.accounting import Accounting
from bwmon.core.attribution.attributor import Attributor
from bwmon.core.attribution.flows import FlowDelta, FlowTracker
from bwmon.core.config.settings import GroupSettings
from bwmon.core.grouping import Grouper, ProcessFilter
from bwmon.core.model import FORWARDED, UNATTRIBUTED, ConntrackEntry, ProcKey, RowKind, SocketEntry
from tests.helpers.factories import conntrack_entry as flow
from tests.helpers.factories import process_info
from tests.helpers.factories import socket_entry as sock

LOCAL = frozenset({"192.0.2.10", "127.0.0.1", "::1"})
CLIENT = ProcKey(100, 1)
SERVER = ProcKey(200, 1)
INFO = {
    CLIENT: process_info("curl", "curl http://x/big", pid=100),
    SERVER: process_info("nginx", "nginx: worker process", pid=200, user="www", uid=33),
}


@dataclass
class FakeSockets:
    entries: list[SocketEntry] = field(default_factory=list)

    def find(
        self, proto: str, local: str, lport: int, remote: str, rport: int
    ) -> SocketEntry | None:
        for s in self.entries:
            if (s.proto, s.local, s.lport, s.remote, s.rport) == (
                proto,
                local,
                lport,
                remote,
                rport,
            ):
                return s
        return None

    def listener(self, proto: str, local: str, lport: int) -> SocketEntry | None:
        for s in self.entries:
            if s.state == 10 and s.lport == lport and s.local in (local, "0.0.0.0", "::"):
                return s
        return None


class Rig:
    """The pure steps wired together as the engine wires them, with fake I/O."""

    def __init__(
        self,
        *,
        lookback: bool = True,
        groups: list[GroupSettings] | None = None,
        auto_group: bool = True,
        include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (),
        ignore_local: bool = False,
    ) -> None:
        self.flows = FlowTracker(lookback=lookback)
        self.attr = Attributor()
        self.acc = Accounting(
            Grouper(groups or [], auto_group=auto_group),
            ProcessFilter(include, exclude),
            ignore_local=ignore_local,
        )
        self.sockets = FakeSockets()
        self.owners: dict[int, ProcKey] = {}
        self.tick = 0
        self.now = 1000.0
        self.last: list[FlowDelta] = []

    def step(self, entries: list[ConntrackEntry], elapsed: float = 1.0, destroyed=()):
        self.tick += 1
        self.now += elapsed
        deltas = self.flows.finish(destroyed, self.tick) + self.flows.update(entries, self.tick)
        self.last = deltas
        matches, inodes, _ = self.attr.match(deltas, self.sockets, LOCAL)
        usages = self.attr.attribute(
            matches, {i: self.owners[i] for i in inodes if i in self.owners}, self.tick
        )
        return self.acc.step(usages, [], INFO.get, self.now, elapsed if self.tick > 1 else 0.0)


def row(apps, name):
    return next(r for r in apps if r.name == name)


def test_outgoing_connection_in_and_out_from_the_socket_view() -> None:
    rig = Rig()
    rig.sockets.entries = [sock("192.0.2.10", 40000, "198.51.100.7", 443, 11)]
    rig.owners = {11: CLIENT}
    apps, procs, host, _ = rig.step([flow("192.0.2.10", 40000, "198.51.100.7", 443, 2000, 90000)])
    curl = row(apps, "curl")
    assert (curl.total_in, curl.total_out) == (90000, 2000)
    assert curl.flows == 1 and curl.kind == RowKind.APP
    assert (host.total_in, host.total_out) == (90000, 2000)
    assert procs[0].info.key == CLIENT


def test_incoming_connection_is_in_for_the_server() -> None:
    rig = Rig()
    rig.sockets.entries = [sock("192.0.2.10", 80, "198.51.100.7", 5555, 22)]
    rig.owners = {22: SERVER}
    apps, *_ = rig.step([flow("198.51.100.7", 5555, "192.0.2.10", 80, 700, 300000)])
    nginx = row(apps, "nginx")
    assert (nginx.total_in, nginx.total_out) == (700, 300000)


def test_loopback_flow_counts_for_both_ends_and_once_in_host_totals() -> None:
    rig = Rig()
    rig.sockets.entries = [
        sock("127.0.0.1", 40374, "127.0.0.1", 5000, 11),
        sock("127.0.0.1", 5000, "127.0.0.1", 40374, 22),
    ]
    rig.owners = {11: CLIENT, 22: SERVER}
    apps, _, host, _ = rig.step([flow("127.0.0.1", 40374, "127.0.0.1", 5000, 100580, 476)])
    assert (row(apps, "curl").total_out, row(apps, "curl").total_in) == (100580, 476)
    assert (row(apps, "nginx").total_in, row(apps, "nginx").total_out) == (100580, 476)
    assert host.total_out + host.total_in == 100580 + 476
    assert host.loopback_total == 100580 + 476


def test_owner_memory_keeps_closed_socket_with_its_process() -> None:
    rig = Rig()
    rig.sockets.entries = [sock("192.0.2.10", 40000, "198.51.100.7", 443, 11)]
    rig.owners = {11: CLIENT}
    rig.step([flow("192.0.2.10", 40000, "198.51.100.7", 443, 100, 100)])
    # the socket closed: TIME_WAIT row has inode 0, the fd is gone, the last bytes arrive
    rig.sockets.entries = [sock("192.0.2.10", 40000, "198.51.100.7", 443, 0)]
    rig.owners = {}
    apps, *_ = rig.step([flow("192.0.2.10", 40000, "198.51.100.7", 443, 180, 5100)])
    assert row(apps, "curl").total_in == 5100
    assert all(r.name != UNATTRIBUTED for r in apps)


def test_unknown_local_socket_is_unattributed_and_routed_flow_forwarded() -> None:
    rig = Rig()
    apps, *_ = rig.step(
        [
            flow("192.0.2.10", 41000, "198.51.100.7", 443, 10, 20),  # local address, no socket
            flow("203.0.113.5", 1234, "198.51.100.7", 80, 30, 40),  # neither end is local
        ]
    )
    un, fw = row(apps, UNATTRIBUTED), row(apps, FORWARDED)
    assert (un.total_in, un.total_out, un.kind) == (20, 10, RowKind.UNATTRIBUTED)
    assert (fw.total_in + fw.total_out, fw.kind) == (70, RowKind.FORWARDED)


def test_conservation_every_local_end_lands_in_exactly_one_row_or_filtered() -> None:
    rig = Rig(exclude=("nginx",))
    rig.sockets.entries = [
        sock("127.0.0.1", 40374, "127.0.0.1", 5000, 11),
        sock("127.0.0.1", 5000, "127.0.0.1", 40374, 22),
        sock("192.0.2.10", 40000, "198.51.100.7", 443, 11),
    ]
    rig.owners = {11: CLIENT, 22: SERVER}
    flows = [
        flow("127.0.0.1", 40374, "127.0.0.1", 5000, 1000, 50),
        flow("192.0.2.10", 40000, "198.51.100.7", 443, 70, 9000),
        flow("192.0.2.10", 41000, "198.51.100.7", 443, 10, 20),
        flow("203.0.113.5", 1234, "198.51.100.7", 80, 30, 40),
    ]
    for scale in (1, 3, 4):
        apps, _, _, filtered = rig.step(
            [
                flow(
                    f.orig.src,
                    f.orig.sport,
                    f.orig.dst,
                    f.orig.dport,
                    f.orig_bytes * scale,
                    f.reply_bytes * scale,
                )
                for f in flows
            ]
        )
        rows_total = sum(r.total_in + r.total_out for r in apps)
        ends = 2 * (1050 * scale) + (9070 + 30 + 70) * scale
        assert rows_total + filtered.total_in + filtered.total_out == ends
    assert filtered.total_in == 4 * 1000 and filtered.total_out == 4 * 50  # nginx hidden


def test_ignore_local_hides_loopback_as_filtered() -> None:
    rig = Rig(ignore_local=True)
    rig.sockets.entries = [sock("127.0.0.1", 40374, "127.0.0.1", 5000, 11)]
    rig.owners = {11: CLIENT}
    apps, _, _, filtered = rig.step([flow("127.0.0.1", 40374, "127.0.0.1", 5000, 10, 5)])
    assert not [r for r in apps if r.name == "curl"]
    assert filtered.total_in + filtered.total_out == 2 * 15


def test_rates_divide_by_real_elapsed_time_and_first_tick_is_baseline() -> None:
    rig = Rig()
    rig.sockets.entries = [sock("192.0.2.10", 40000, "198.51.100.7", 443, 11)]
    rig.owners = {11: CLIENT}
    apps, *_ = rig.step([flow("192.0.2.10", 40000, "198.51.100.7", 443, 0, 1000)])
    assert row(apps, "curl").rate_in == 0.0
    apps, *_ = rig.step([flow("192.0.2.10", 40000, "198.51.100.7", 443, 0, 4000)], elapsed=1.5)
    assert row(apps, "curl").rate_in == pytest.approx(2000.0)


def test_groups_first_match_wins_then_auto_group_then_the_process() -> None:
    groups = [
        GroupSettings(name="Web", patterns=["nginx", "curl"]),
        GroupSettings(name="Tools", patterns=["curl"]),
    ]
    g = Grouper(groups, auto_group=True)
    assert g.app_of(INFO[CLIENT]) == "Web"
    other = process_info("python3", "/usr/bin/python3 -m http.server", pid=5, start=5,
                         user="u", uid=1)
    assert g.app_of(other) == "python3"
    g.set_auto_group(False)  # each process on its own; never its command line by default
    assert g.app_of(other) == "python3[5]"
    g.set_auto_group(False, cmdline_names=True)  # asked for: bwmon 1.1's full command line
    assert g.app_of(other) == "/usr/bin/python3 -m http.server"


def test_include_and_exclude_exclude_wins() -> None:
    f = ProcessFilter(include=["curl|wget"], exclude=["wget"])
    assert f.shows("curl x") and not f.shows("wget y") and not f.shows("ssh z")


def test_connection_not_accepted_yet_goes_to_the_listening_process() -> None:
    rig = Rig()
    listen = sock("::", 80, "::", 0, 22, state=10, uid=33)
    # the client's bytes arrive while the connection still waits in the accept queue
    rig.sockets.entries = [listen, sock("192.0.2.10", 80, "198.51.100.7", 5555, 0)]
    rig.owners = {22: SERVER}
    apps, *_ = rig.step([flow("198.51.100.7", 5555, "192.0.2.10", 80, 900, 0)])
    assert row(apps, "nginx").total_in == 900
    assert all(r.name != UNATTRIBUTED for r in apps)


def test_owner_memory_is_capped_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import bwmon.core.attribution.attributor as attribution
    from bwmon.core.attribution.attributor import EndKey

    monkeypatch.setattr(attribution, "MEMORY_MAX", 100)
    attr = Attributor()
    for i in range(1000):
        attr.remember(EndKey("tcp", "127.0.0.1", 1000 + i, "127.0.0.1", 80), CLIENT, tick=i)
    assert len(attr) <= 100
    newest = EndKey("tcp", "127.0.0.1", 1999, "127.0.0.1", 80)
    assert attr.owner_of(newest) == CLIENT
    assert attr.owner_of(EndKey("tcp", "127.0.0.1", 1000, "127.0.0.1", 80)) is None
