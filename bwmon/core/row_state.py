"""The rows' state kept across ticks, and the rows and expiry read out of it.

Accounting (accounting.py) puts each tick's bytes into this state; here is what it holds
(per process, app, pipe and flow end) and how rows, connection lists and the forgetting of
idle rows are read out of it. Split from accounting.py, which stays the per-tick input side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bwmon.core.attribution.connections import AppConnections
from bwmon.core.attribution.ends import EndKey, EndUsage
from bwmon.core.grouping import Grouper
from bwmon.core.model import (
    FORWARDED,
    UNATTRIBUTED,
    AppRow,
    Connection,
    ProcessInfo,
    ProcessRow,
    ProcKey,
    RowKind,
    Unit,
)

IP_BYTES, PAYLOAD_BYTES = 1, 2
# A closed flow end's totals are kept this long (or the row linger, if shorter): long enough for
# a late usage of the same end (a table read seconds after its socket closed) to add to them.
# Nothing lists a closed end, so the row linger (120 s) only held ~13,000 of them under churn.
END_LINGER_SECONDS = 30.0
_UNITS = {IP_BYTES: Unit.IP, PAYLOAD_BYTES: Unit.PAYLOAD, IP_BYTES | PAYLOAD_BYTES: Unit.MIXED}


@dataclass(slots=True)
class Acc:
    """Cumulative bytes of one row, this tick's delta, its open flows and their processes."""

    total_in: int = 0
    total_out: int = 0
    d_in: int = 0
    d_out: int = 0
    flows: int = 0  # open flows now, closing ones too (kept incrementally across ticks)
    conns: int = 0  # open connections now: the open flows not closing (TIME_WAIT, CLOSE)
    last_active: float = 0.0
    # process -> its open connections here (closing flows left out: the process may be gone)
    open_procs: dict[ProcKey, int] = field(default_factory=dict)
    procs: set[ProcKey] = field(default_factory=set)  # processes that moved bytes this tick
    units: int = 0  # what its bytes were: IP_BYTES, PAYLOAD_BYTES or both
    uids: set[int] = field(default_factory=set)  # (unattributed): users of its sockets

    def add(self, d_in: int, d_out: int) -> None:
        self.d_in += d_in
        self.d_out += d_out
        self.total_in += d_in
        self.total_out += d_out

    def reset_tick(self) -> None:
        self.d_in = self.d_out = 0
        if self.procs:
            self.procs = set()


@dataclass(slots=True)
class EndAcc:
    """A flow end's cumulative bytes (connection lists rank by them) and its open usages."""

    total_in: int = 0
    total_out: int = 0
    seen: float = 0.0
    open: int = 0  # open usages of this end (an open end never expires)
    total: int = 0  # total_in + total_out (connection lists rank by it)

    def add(self, u: EndUsage, now: float) -> None:
        self.total_in += u.d_in
        self.total_out += u.d_out
        self.total += u.d_in + u.d_out
        self.seen = now


@dataclass(slots=True)
class Placed:
    """Where an open usage's flow is counted, so it can be taken out when the flow changes."""

    usage: EndUsage  # held, so the id() key of `_open` is not reused while placed
    accs: tuple[Acc, ...]
    owner: ProcKey | None
    app: str | None  # the app whose connection list shows it
    ends: EndAcc | None
    live: bool = False  # counted as an open connection (not closing)

    @property
    def app_acc(self) -> Acc:
        """The app row's counters: the last of `accs` (a process's are (process, app))."""
        return self.accs[-1]

    def set_live(self, live: bool) -> None:
        """Count the flow as an open connection (or not) in its rows and its process."""
        if live == self.live:
            return
        self.live = live
        step = 1 if live else -1
        for acc in self.accs:
            acc.conns += step
        if self.owner is not None and self.app is not None:
            procs = self.app_acc.open_procs
            left = procs.get(self.owner, 0) + step
            if left > 0:
                procs[self.owner] = left
            else:
                procs.pop(self.owner, None)


class RowState:
    """Counters per process, app, pipe and flow end, and the rows built from them."""

    def __init__(self, grouper: Grouper, linger: float) -> None:
        self.grouper = grouper
        self.linger = linger
        self._procs: dict[ProcKey, Acc] = {}
        self._apps: dict[str, Acc] = {}
        self._pipes: dict[str, Acc] = {}
        self._ends: dict[EndKey, EndAcc] = {}
        self._info: dict[ProcKey, ProcessInfo] = {}
        self._conns = AppConnections()
        self._shown: dict[ProcKey, tuple[str, bool]] = {}  # process -> (its app, shown)
        self.default_unit = Unit.IP  # a row that moved no bytes yet: what its source counts

    def live_processes(self) -> list[ProcKey]:
        """Processes whose rows are still kept (their facts must stay cached)."""
        return list(self._procs)

    # -- outputs -------------------------------------------------------------------------------

    def _shown_now(self, acc: Acc, now: float) -> bool:
        """A row is shown while it has open flows (active now), moved bytes this tick, or was
        active within `linger`."""
        if acc.flows:
            acc.last_active = now
            return True
        return bool(acc.d_in or acc.d_out or now - acc.last_active < self.linger)

    def _app_rows(self, now: float, rate: Callable[[int], float]) -> tuple[AppRow, ...]:
        rows: list[AppRow] = []
        for name, acc in self._apps.items():
            if not self._shown_now(acc, now):
                continue
            if name in (UNATTRIBUTED, FORWARDED):
                if not (acc.total_in or acc.total_out or acc.flows):
                    continue
                kind = RowKind.UNATTRIBUTED if name == UNATTRIBUTED else RowKind.FORWARDED
            else:
                kind = RowKind.APP
            keys = acc.procs.union(acc.open_procs) if acc.procs else acc.open_procs
            procs = tuple(self._info[k] for k in sorted(keys) if k in self._info)
            unit = _UNITS.get(acc.units, self.default_unit)
            rows.append(AppRow(name, kind, unit, rate(acc.d_in), rate(acc.d_out),
                               acc.total_in, acc.total_out, acc.conns, procs,
                               self._connections(name), tuple(sorted(acc.uids))))
        for name, acc in self._pipes.items():
            rows.append(AppRow(name, RowKind.PIPE, Unit.PAYLOAD, rate(acc.d_in), rate(acc.d_out),
                               acc.total_in, acc.total_out, acc.flows))  # its open clients
        return tuple(rows)

    def _connections(self, app: str) -> tuple[Connection, ...]:
        return self._conns.listed(app, self._ends)

    def _process_rows(self, now: float, rate: Callable[[int], float]) -> tuple[ProcessRow, ...]:
        rows: list[ProcessRow] = []
        for key, acc in self._procs.items():
            if not self._shown_now(acc, now):
                continue
            pinfo = self._info.get(key)
            if pinfo is None:
                continue
            rows.append(ProcessRow(pinfo, self.grouper.app_of(pinfo), rate(acc.d_in),
                                   rate(acc.d_out), acc.total_in, acc.total_out, acc.conns))
        return tuple(rows)

    def forget_exited(self, now: float, alive: Callable[[ProcKey], bool]) -> int:
        """Forget the rows of processes that exited and were idle for `linger` (no open flow):
        no byte can reach them again, and theirs stay in their app's totals. Returns how many.

        Without this an exited process is kept 10 × linger, which under process churn holds
        every short-lived client of the last 20 minutes. `alive` is asked only about rows
        already idle for `linger`.
        """
        horizon = now - self.linger
        gone = [k for k, a in self._procs.items()
                if not a.flows and a.last_active < horizon and not alive(k)]
        for pkey in gone:
            self._forget_process(pkey)
        return len(gone)

    def _forget_process(self, pkey: ProcKey) -> None:
        del self._procs[pkey]
        self._info.pop(pkey, None)
        self._shown.pop(pkey, None)

    def _expire(self, now: float) -> None:
        """Forget rows, processes and flow ends inactive for 10 × linger (bounded memory)."""
        horizon = now - 10 * self.linger
        for pkey in [k for k, a in self._procs.items() if a.last_active < horizon and not a.flows]:
            self._forget_process(pkey)
        for name in [k for k, a in self._apps.items() if a.last_active < horizon and not a.flows]:
            if name not in (UNATTRIBUTED, FORWARDED):
                del self._apps[name]
        self._conns.forget_apps(self._apps.__contains__)
        if len(self._info) > len(self._procs) + 1024:
            self._info = {k: v for k, v in self._info.items() if k in self._procs}
            self._shown = {k: v for k, v in self._shown.items() if k in self._info}
        end_horizon = now - min(self.linger, END_LINGER_SECONDS)
        stale_ends = [k for k, e in self._ends.items() if e.seen < end_horizon and not e.open]
        for k in stale_ends:
            del self._ends[k]
