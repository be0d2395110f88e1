"""Per-process and per-app totals and rates, and the Snapshot built from them each tick.

The pure end of a tick: end usages (from attribution) and pipe counters in, a Snapshot out.
Every byte lands in exactly one row — a process/app, `(unattributed)`, `(forwarded)`, a pipe —
or in the `filtered` totals when include/exclude/ignore-local hides it (conservation).
Time is an argument; nothing here reads a clock. The state the bytes go into, and how rows
are read out of it, is in row_state.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from bwmon.core.attribution.attributor import EndUsage
from bwmon.core.attribution.connections import MAX_CONNECTIONS as MAX_CONNECTIONS
from bwmon.core.attribution.flows import CLOSED_STATES
from bwmon.core.grouping import Grouper, MonitorFilters, ProcessFilter
from bwmon.core.model import (
    FORWARDED,
    UNATTRIBUTED,
    AppRow,
    HostTotals,
    PipeCounters,
    ProcessInfo,
    ProcessRow,
    ProcKey,
    Totals,
)
from bwmon.core.regrouping import Moves, compose, move_totals
from bwmon.core.row_state import IP_BYTES, PAYLOAD_BYTES, Acc, EndAcc, Placed, RowState

# A row without traffic or open flows disappears after this many seconds.
LINGER_SECONDS = 120.0


class TickRows(NamedTuple):
    """What one accounting step gives the snapshot: its rows and totals."""

    apps: tuple[AppRow, ...]
    processes: tuple[ProcessRow, ...]
    host: HostTotals
    filtered: Totals


class Accounting(RowState):
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
        super().__init__(grouper, linger)
        self._filter: ProcessFilter | MonitorFilters = process_filter or ProcessFilter()
        self.ignore_local = ignore_local
        self._pipe_seen: dict[str, tuple[int, int]] = {}
        self._open: dict[int, Placed] = {}
        self._next_expire = 0.0
        self._info_fn: Callable[[ProcKey], ProcessInfo | None] = lambda key: None
        self.filtered = Acc()
        self.host = HostTotals()
        self._host_in = self._host_out = self._loop_total = 0
        self._moves: Moves = {}

    @property
    def filter(self) -> ProcessFilter | MonitorFilters:
        return self._filter

    @filter.setter
    def filter(self, value: ProcessFilter | MonitorFilters) -> None:
        self.set_filter(value)

    def set_filter(self, value: ProcessFilter | MonitorFilters) -> Moves:
        """A new filter: rows shown and hidden change as with `regroup`; returns the moves."""
        self._filter = value
        return self.regroup()

    def regroup(self) -> Moves:
        """Groups or filters changed: count every open flow again under its new row, and move
        each process's totals along with it (regrouping.py). Returns the rows' moves, also
        kept (composed) for the next snapshot until `take_moves`."""
        placed = [p.usage for p in self._open.values()]
        for u in placed:
            self._unplace(u)
        old_of = {k: app for k, (app, shown) in self._shown.items() if shown and k in self._procs}
        self._shown.clear()
        new_of: dict[ProcKey, str | None] = {}
        for key in old_of:
            if key in self._info:
                name, shown = self._row_of(key)
                new_of[key] = name if shown else None
        moves = move_totals(self._apps, self._procs, old_of, new_of, (UNATTRIBUTED, FORWARDED))
        for u in placed:
            self._place(u, self._ends.get(u.end) if u.end is not None else None, 0.0,
                        count_bytes=False)
        self._moves = compose(self._moves, moves)
        return moves

    def take_moves(self) -> Moves:
        """The moves of every regroup since the last call (for the next snapshot)."""
        moves, self._moves = self._moves, {}
        return moves

    # -- inputs --------------------------------------------------------------------------------

    def step(
        self,
        usages: Iterable[EndUsage],
        pipes: Sequence[PipeCounters],
        info: Callable[[ProcKey], ProcessInfo | None],
        now: float,
        elapsed: float,
    ) -> TickRows:
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
    ) -> TickRows:
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
        unattributed = self._apps.setdefault(UNATTRIBUTED, Acc())
        forwarded = self._apps.setdefault(FORWARDED, Acc())
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
                    end_tot = self._ends[u.end] = EndAcc()
                end_tot.add(u, now)
            self._place(u, end_tot, now)
        for usages in (moved, added):
            for u in usages:  # host totals: each flow once, from its initiator's side if local
                if u.elsewhere:  # counted by the namespace whose end it is
                    continue
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
        return TickRows(apps, procs, self.host, filtered)

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
                        acc.units |= IP_BYTES
                    if placed.owner is not None:
                        placed.app_acc.procs.add(placed.owner)
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
            unit = PAYLOAD_BYTES if u.payload else IP_BYTES
            for acc in placed.accs:
                acc.add(u.d_in, u.d_out)
                acc.last_active = now
                acc.units |= unit
            if placed.owner is not None:
                placed.app_acc.procs.add(placed.owner)
        placed.usage = u
        placed.set_live(u.entry.state not in CLOSED_STATES)  # e.g. now in TIME_WAIT
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
                                           self._filter.shows(pinfo.cmdline, pinfo.container,
                                                              pinfo.unit))
        return cached

    def _place(self, u: EndUsage, end_tot: EndAcc | None, now: float, *,
               count_bytes: bool = True) -> None:
        """Add a usage's bytes to its rows and, while its flow is open, count it there."""
        app: str | None = None
        owner: ProcKey | None = None
        moved = count_bytes and bool(u.d_in or u.d_out)
        if u.elsewhere:  # another namespace counts this flow with its own end: no row here
            accs: tuple[Acc, ...] = ()
        elif u.end is None:
            accs = (self._apps[FORWARDED],)
        elif self.ignore_local and u.loopback:
            accs = (self.filtered,)
        elif u.owner is None:
            accs = (self._apps[UNATTRIBUTED],)
            uid = getattr(u, "uid", -1)  # a socket's user, where the kernel gave one
            if uid >= 0 and count_bytes and (u.d_in or u.d_out):
                accs[0].uids.add(uid)
        else:
            name, shown = self._row_of(u.owner)
            if not shown:
                accs = (self.filtered,)
            else:
                owner, app = u.owner, name
                pacc = self._procs.get(owner)
                if pacc is None:
                    pacc = self._procs[owner] = Acc()
                aacc = self._apps.get(app)
                if aacc is None:
                    aacc = self._apps[app] = Acc()
                accs = (pacc, aacc)
                if moved or (count_bytes and not u.open):
                    aacc.procs.add(owner)
        if moved:
            unit = PAYLOAD_BYTES if u.payload else IP_BYTES
            for acc in accs:
                acc.add(u.d_in, u.d_out)
                acc.last_active = now
                acc.units |= unit
        if not u.open:
            return
        for acc in accs:
            acc.flows += 1
        if owner is not None and app is not None and u.end is not None:
            self._conns.put(app, u.end, u)
        if end_tot is not None:
            end_tot.open += 1
        placed = self._open[id(u)] = Placed(u, accs, owner, app, end_tot)
        placed.set_live(u.entry.state not in CLOSED_STATES)

    def _unplace(self, u: EndUsage) -> None:
        """Take a usage's open flow out of the rows counting it (its bytes stay)."""
        placed = self._open.pop(id(u), None)
        if placed is None:
            return
        for acc in placed.accs:
            acc.flows -= 1
        placed.set_live(False)
        if placed.owner is not None and placed.app is not None and u.end is not None:
            self._conns.remove(placed.app, u.end, u)
        if placed.ends is not None:
            placed.ends.open -= 1

    def _account_pipes(self, pipes: Sequence[PipeCounters], now: float) -> None:
        for p in pipes:
            acc = self._pipes.get(p.name)
            if acc is None:
                acc = self._pipes[p.name] = Acc()
            prev_in, prev_out = self._pipe_seen.get(p.name, (0, 0))
            # counters continue across child restarts; a drop still never gives a negative delta
            d_in = p.bytes_in - prev_in if p.bytes_in >= prev_in else p.bytes_in
            d_out = p.bytes_out - prev_out if p.bytes_out >= prev_out else p.bytes_out
            self._pipe_seen[p.name] = (p.bytes_in, p.bytes_out)
            acc.add(d_in, d_out)
            acc.flows = p.connections
            acc.last_active = now

