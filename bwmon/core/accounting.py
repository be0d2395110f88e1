"""Per-process and per-app totals and rates, and the Snapshot built from them each tick.

The pure end of a tick: end usages (from attribution) and pipe counters in, a Snapshot out.
Every byte lands in exactly one row — a process/app, `(unattributed)`, `(forwarded)`, a pipe —
or in the `filtered` totals when include/exclude/ignore-local hides it (conservation).
Time is an argument; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from bwmon.core.attribution import EndKey, EndUsage
from bwmon.core.connections import MAX_CONNECTIONS as MAX_CONNECTIONS
from bwmon.core.connections import AppConnections
from bwmon.core.grouping import Grouper, MonitorFilters, ProcessFilter
from bwmon.core.model import (
    FORWARDED,
    UNATTRIBUTED,
    AppRow,
    Connection,
    HostTotals,
    PipeCounters,
    ProcessInfo,
    ProcessRow,
    ProcKey,
    RowKind,
    Totals,
    Unit,
)

# A row without traffic or open flows disappears after this many seconds.
LINGER_SECONDS = 120.0


@dataclass(slots=True)
class _Acc:
    """Cumulative bytes of one row, this tick's delta, its open flows and their processes."""

    total_in: int = 0
    total_out: int = 0
    d_in: int = 0
    d_out: int = 0
    flows: int = 0  # open flows now (kept incrementally across ticks)
    last_active: float = 0.0
    open_procs: dict[ProcKey, int] = field(default_factory=dict)  # process -> open flows here
    procs: set[ProcKey] = field(default_factory=set)  # processes that moved bytes this tick

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
class _EndTotals:
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
class _Placed:
    """Where an open usage's flow is counted, so it can be taken out when the flow changes."""

    usage: EndUsage  # held, so the id() key of `_open` is not reused while placed
    accs: tuple[_Acc, ...]
    owner: ProcKey | None
    app: str | None  # the app whose connection list shows it
    ends: _EndTotals | None


class Accounting:
    """Accumulates usage across ticks and builds rows.

    `step_changes` takes only what changed (usages of new or changed flows, and the previous
    usages they replace or that ended), so a tick costs in proportion to the changes; open
    flow counts, processes and connection lists are kept incrementally. `step` takes every
    usage of the tick, as a whole, for callers without a per-flow cache.
    """

    def __init__(
        self,
        grouper: Grouper,
        process_filter: ProcessFilter | MonitorFilters | None = None,
        *,
        ignore_local: bool = False,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self.grouper = grouper
        self._filter: ProcessFilter | MonitorFilters = process_filter or ProcessFilter()
        self.ignore_local = ignore_local
        self.linger = linger
        self._procs: dict[ProcKey, _Acc] = {}
        self._apps: dict[str, _Acc] = {}
        self._pipes: dict[str, _Acc] = {}
        self._pipe_seen: dict[str, tuple[int, int]] = {}
        self._ends: dict[EndKey, _EndTotals] = {}
        self._info: dict[ProcKey, ProcessInfo] = {}
        self._open: dict[int, _Placed] = {}
        self._conns = AppConnections()
        self._shown: dict[ProcKey, tuple[str, bool]] = {}
        self._next_expire = 0.0
        self._info_fn: Callable[[ProcKey], ProcessInfo | None] = lambda key: None
        self.filtered = _Acc()
        self.host = HostTotals()
        self._host_in = self._host_out = self._loop_total = 0

    @property
    def filter(self) -> ProcessFilter | MonitorFilters:
        return self._filter

    @filter.setter
    def filter(self, value: ProcessFilter | MonitorFilters) -> None:
        self._filter = value
        self.regroup()

    def regroup(self) -> None:
        """Groups or filters changed: count every open flow again under its new row."""
        placed = [p.usage for p in self._open.values()]
        for u in placed:
            self._unplace(u)
        self._shown.clear()
        for u in placed:
            self._place(u, self._ends.get(u.end) if u.end is not None else None, 0.0,
                        count_bytes=False)

    # -- inputs --------------------------------------------------------------------------------

    def step(
        self,
        usages: Iterable[EndUsage],
        pipes: Sequence[PipeCounters],
        info: Callable[[ProcKey], ProcessInfo | None],
        now: float,
        elapsed: float,
    ) -> tuple[tuple[AppRow, ...], tuple[ProcessRow, ...], HostTotals, Totals]:
        """Account one tick given every usage of it (each open flow, changed or not)."""
        previous = [p.usage for p in self._open.values()]
        return self.step_changes(list(usages), previous, pipes, info, now, elapsed)

    def step_changes(
        self,
        added: Sequence[EndUsage],
        closed: Sequence[EndUsage],
        pipes: Sequence[PipeCounters],
        info: Callable[[ProcKey], ProcessInfo | None],
        now: float,
        elapsed: float,
        replaced: Sequence[tuple[EndUsage, EndUsage]] = (),
        steady: Iterable[Sequence[EndUsage]] = (),
    ) -> tuple[tuple[AppRow, ...], tuple[ProcessRow, ...], HostTotals, Totals]:
        """Account one tick: `added` usages carry this tick's bytes (open ones stay counted
        as open flows until passed in `closed`); `info` resolves a process key (cached).
        `replaced` pairs a previous usage with this tick's usage of the same end and owner
        (a flow whose counters moved): the cheap case, counted where the previous one was.
        `steady` flows' usages are the very objects counted before, with this tick's bytes
        (see FlowOwners.plan): the cheapest case."""
        for acc in (*self._procs.values(), *self._apps.values(), *self._pipes.values()):
            acc.reset_tick()
        self.filtered.reset_tick()
        self._conns.new_tick()
        self._info_fn = info
        for u in closed:
            self._unplace(u)
        unattributed = self._apps.setdefault(UNATTRIBUTED, _Acc())
        forwarded = self._apps.setdefault(FORWARDED, _Acc())
        added = list(added)
        moved: list[EndUsage] = []
        for old, u in replaced:
            (moved if self._replace(old, u, now) else added).append(u)
        self._steady(steady, moved, added, now)
        host_in = host_out = loop = 0
        for u in added:
            end_tot = None
            if u.end is not None:
                end_tot = self._ends.get(u.end)
                if end_tot is None:
                    end_tot = self._ends[u.end] = _EndTotals()
                end_tot.add(u, now)
            self._place(u, end_tot, now)
        for usages in (moved, added):
            for u in usages:  # host totals: each flow once, from its initiator's side if local
                if u.end is None or not u.loopback:
                    host_in += u.d_in
                    host_out += u.d_out
                elif u.end.local == u.entry.orig.src and u.end.lport == u.entry.orig.sport:
                    loop += u.d_in + u.d_out
                    host_in += u.d_in
                    host_out += u.d_out
        for acc in (unattributed, forwarded):
            if acc.flows:
                acc.last_active = now
        self._account_pipes(pipes, now)
        self._host_in += host_in
        self._host_out += host_out
        self._loop_total += loop
        rate = (lambda b: b / elapsed) if elapsed > 0 else (lambda b: 0.0)
        self.host = HostTotals(
            rate(host_in), rate(host_out), self._host_in, self._host_out,
            self._loop_total, rate(loop),
        )
        apps = self._app_rows(now, rate)
        procs = self._process_rows(now, rate)
        f = self.filtered
        filtered = Totals(rate(f.d_in), rate(f.d_out), f.total_in, f.total_out)
        if now >= self._next_expire:
            self._expire(now)
            self._next_expire = now + self.linger / 8
        return apps, procs, self.host, filtered

    def _steady(self, steady: Iterable[Sequence[EndUsage]], moved: list[EndUsage],
                added: list[EndUsage], now: float) -> None:
        """`_replace` for usages counted before that are kept (the very objects), inlined:
        ~5,000 a tick at 50k flows. Each goes to `moved`, or to `added` if not counted."""
        opened, put = self._open, self._conns.put
        for usages in steady:
            for u in usages:
                placed = opened.get(id(u))
                if placed is None:
                    added.append(u)
                    continue
                moved.append(u)
                d_in, d_out = u.d_in, u.d_out
                ends = placed.ends
                if ends is not None:
                    ends.total_in += d_in
                    ends.total_out += d_out
                    ends.total += d_in + d_out
                    ends.seen = now
                if d_in or d_out:
                    for acc in placed.accs:
                        acc.d_in += d_in
                        acc.d_out += d_out
                        acc.total_in += d_in
                        acc.total_out += d_out
                        acc.last_active = now
                    if placed.owner is not None:
                        placed.accs[1].procs.add(placed.owner)
                if placed.app is not None and u.end is not None:
                    put(placed.app, u.end, u)

    def _replace(self, old: EndUsage, u: EndUsage, now: float) -> bool:
        """Count `u` where `old` (same end and owner, still open) was counted: only its bytes
        change. False when it cannot be: `old` was not counted, or `u`'s flow ended (then
        `old` is taken out and `u` must be placed as a new usage)."""
        opened = self._open
        placed = opened.pop(id(old), None)
        if placed is None or not u.open:
            if placed is not None:
                opened[id(old)] = placed
                self._unplace(old)
            return False
        if placed.ends is not None:
            placed.ends.add(u, now)
        if u.d_in or u.d_out:
            for acc in placed.accs:
                acc.add(u.d_in, u.d_out)
                acc.last_active = now
            if placed.owner is not None:
                placed.accs[1].procs.add(placed.owner)
        placed.usage = u
        opened[id(u)] = placed
        if placed.app is not None and u.end is not None:
            self._conns.put(placed.app, u.end, u)
        return True

    def _row_of(self, owner: ProcKey) -> tuple[str, bool]:
        cached = self._shown.get(owner)
        if cached is None:
            pinfo = self._info.get(owner)
            if pinfo is None:
                pinfo = self._info_fn(owner)
                if pinfo is None:  # exited before its facts could be read: say so, keep bytes
                    pinfo = ProcessInfo(owner, "?", f"[pid {owner.pid}, exited]", "?", -1,
                                        "(exited)")
                self._info[owner] = pinfo
            cached = self._shown[owner] = (self.grouper.app_of(pinfo),
                                           self._filter.shows(pinfo.cmdline))
        return cached

    def _place(self, u: EndUsage, end_tot: _EndTotals | None, now: float, *,
               count_bytes: bool = True) -> None:
        """Add a usage's bytes to its rows and, while its flow is open, count it there."""
        app: str | None = None
        owner: ProcKey | None = None
        moved = count_bytes and bool(u.d_in or u.d_out)
        if u.end is None:
            accs: tuple[_Acc, ...] = (self._apps[FORWARDED],)
        elif self.ignore_local and u.loopback:
            accs = (self.filtered,)
        elif u.owner is None:
            accs = (self._apps[UNATTRIBUTED],)
        else:
            name, shown = self._row_of(u.owner)
            if not shown:
                accs = (self.filtered,)
            else:
                owner, app = u.owner, name
                pacc = self._procs.get(owner)
                if pacc is None:
                    pacc = self._procs[owner] = _Acc()
                aacc = self._apps.get(app)
                if aacc is None:
                    aacc = self._apps[app] = _Acc()
                accs = (pacc, aacc)
                if moved or (count_bytes and not u.open):
                    aacc.procs.add(owner)
        if moved:
            for acc in accs:
                acc.add(u.d_in, u.d_out)
                acc.last_active = now
        if not u.open:
            return
        for acc in accs:
            acc.flows += 1
        if owner is not None and app is not None:
            aacc = accs[1]
            aacc.open_procs[owner] = aacc.open_procs.get(owner, 0) + 1
            if u.end is not None:
                self._conns.put(app, u.end, u)
        if end_tot is not None:
            end_tot.open += 1
        self._open[id(u)] = _Placed(u, accs, owner, app, end_tot)

    def _unplace(self, u: EndUsage) -> None:
        """Take a usage's open flow out of the rows counting it (its bytes stay)."""
        placed = self._open.pop(id(u), None)
        if placed is None:
            return
        for acc in placed.accs:
            acc.flows -= 1
        if placed.owner is not None and placed.app is not None:
            aacc = placed.accs[1]
            left = aacc.open_procs.get(placed.owner, 0) - 1
            if left > 0:
                aacc.open_procs[placed.owner] = left
            else:
                aacc.open_procs.pop(placed.owner, None)
            if u.end is not None:
                self._conns.remove(placed.app, u.end, u)
        if placed.ends is not None:
            placed.ends.open -= 1

    def _account_pipes(self, pipes: Sequence[PipeCounters], now: float) -> None:
        for p in pipes:
            acc = self._pipes.get(p.name)
            if acc is None:
                acc = self._pipes[p.name] = _Acc()
            prev_in, prev_out = self._pipe_seen.get(p.name, (0, 0))
            # counters continue across child restarts; a drop still never gives a negative delta
            d_in = p.bytes_in - prev_in if p.bytes_in >= prev_in else p.bytes_in
            d_out = p.bytes_out - prev_out if p.bytes_out >= prev_out else p.bytes_out
            self._pipe_seen[p.name] = (p.bytes_in, p.bytes_out)
            acc.add(d_in, d_out)
            acc.flows = p.connections
            acc.last_active = now

    def live_processes(self) -> list[ProcKey]:
        """Processes whose rows are still kept (their facts must stay cached)."""
        return list(self._procs)

    # -- outputs -------------------------------------------------------------------------------

    def _app_rows(self, now: float, rate: Callable[[int], float]) -> tuple[AppRow, ...]:
        rows: list[AppRow] = []
        for name, acc in self._apps.items():
            if acc.flows:
                acc.last_active = now
            elif not (acc.d_in or acc.d_out or now - acc.last_active < self.linger):
                continue
            if name in (UNATTRIBUTED, FORWARDED):
                if not (acc.total_in or acc.total_out or acc.flows):
                    continue
                kind = RowKind.UNATTRIBUTED if name == UNATTRIBUTED else RowKind.FORWARDED
            else:
                kind = RowKind.APP
            keys = acc.procs.union(acc.open_procs) if acc.procs else acc.open_procs
            procs = tuple(self._info[k] for k in sorted(keys) if k in self._info)
            rows.append(AppRow(name, kind, Unit.IP, rate(acc.d_in), rate(acc.d_out),
                               acc.total_in, acc.total_out, acc.flows, procs,
                               self._connections(name)))
        for name, acc in self._pipes.items():
            rows.append(AppRow(name, RowKind.PIPE, Unit.PAYLOAD, rate(acc.d_in), rate(acc.d_out),
                               acc.total_in, acc.total_out, acc.flows))
        return tuple(rows)

    def _connections(self, app: str) -> tuple[Connection, ...]:
        return self._conns.listed(app, self._ends)

    def _process_rows(self, now: float, rate: Callable[[int], float]) -> tuple[ProcessRow, ...]:
        rows: list[ProcessRow] = []
        for key, acc in self._procs.items():
            if acc.flows:
                acc.last_active = now
            elif not (acc.d_in or acc.d_out or now - acc.last_active < self.linger):
                continue
            pinfo = self._info.get(key)
            if pinfo is None:
                continue
            rows.append(ProcessRow(pinfo, self.grouper.app_of(pinfo), rate(acc.d_in),
                                   rate(acc.d_out), acc.total_in, acc.total_out, acc.flows))
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
        stale_ends = [k for k, e in self._ends.items()
                      if e.seen < now - self.linger and not e.open]
        for k in stale_ends:
            del self._ends[k]
