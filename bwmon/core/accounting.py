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
# Connections listed per app row (largest first) for the detail pane.
MAX_CONNECTIONS = 50


@dataclass(slots=True)
class _Acc:
    """Cumulative bytes of one row plus this tick's delta and open flow count."""

    total_in: int = 0
    total_out: int = 0
    d_in: int = 0
    d_out: int = 0
    flows: int = 0
    last_active: float = 0.0
    procs: set[ProcKey] = field(default_factory=set)

    def add(self, d_in: int, d_out: int, open_: bool) -> None:
        self.d_in += d_in
        self.d_out += d_out
        self.total_in += d_in
        self.total_out += d_out
        if open_:
            self.flows += 1

    def reset_tick(self) -> None:
        self.d_in = self.d_out = self.flows = 0
        self.procs = set()


@dataclass(slots=True)
class _EndTotals:
    total_in: int = 0
    total_out: int = 0
    seen: float = 0.0


def _fmt_endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class Accounting:
    """Accumulates usage across ticks and builds rows."""

    def __init__(
        self,
        grouper: Grouper,
        process_filter: ProcessFilter | MonitorFilters | None = None,
        *,
        ignore_local: bool = False,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self.grouper = grouper
        self.filter: ProcessFilter | MonitorFilters = process_filter or ProcessFilter()
        self.ignore_local = ignore_local
        self.linger = linger
        self._procs: dict[ProcKey, _Acc] = {}
        self._apps: dict[str, _Acc] = {}
        self._pipes: dict[str, _Acc] = {}
        self._pipe_seen: dict[str, tuple[int, int]] = {}
        self._ends: dict[EndKey, _EndTotals] = {}
        self._info: dict[ProcKey, ProcessInfo] = {}
        self.filtered = _Acc()
        self.host = HostTotals()
        self._host_in = self._host_out = self._loop_total = 0

    # -- inputs --------------------------------------------------------------------------------

    def step(
        self,
        usages: Iterable[EndUsage],
        pipes: Sequence[PipeCounters],
        info: Callable[[ProcKey], ProcessInfo | None],
        now: float,
        elapsed: float,
    ) -> tuple[tuple[AppRow, ...], tuple[ProcessRow, ...], HostTotals, Totals]:
        """Account one tick. `info` resolves a process key (cached here once seen)."""
        for acc in (*self._procs.values(), *self._apps.values(), *self._pipes.values()):
            acc.reset_tick()
        self.filtered.reset_tick()
        unattributed = self._apps.setdefault(UNATTRIBUTED, _Acc())
        forwarded = self._apps.setdefault(FORWARDED, _Acc())
        conns: dict[str, list[Connection]] = {}
        host_in = host_out = loop = 0
        shown_cache: dict[ProcKey, tuple[str, bool]] = {}

        for u in usages:
            # host totals: each flow once — from its initiator's side when that end is local
            if u.end is None:
                forwarded.add(u.d_in, u.d_out, u.open)
                host_in += u.d_in
                host_out += u.d_out
                if u.d_in or u.d_out or u.open:
                    forwarded.last_active = now
                continue
            initiator = u.end.local == u.entry.orig.src and u.end.lport == u.entry.orig.sport
            if u.loopback:
                if initiator:
                    loop += u.d_in + u.d_out
                    host_in += u.d_in
                    host_out += u.d_out
            else:
                host_in += u.d_in
                host_out += u.d_out
            end_tot = self._ends.get(u.end)
            if end_tot is None:
                end_tot = self._ends[u.end] = _EndTotals()
            end_tot.total_in += u.d_in
            end_tot.total_out += u.d_out
            end_tot.seen = now
            if self.ignore_local and u.loopback:
                self.filtered.add(u.d_in, u.d_out, u.open)
                continue
            if u.owner is None:
                unattributed.add(u.d_in, u.d_out, u.open)
                if u.d_in or u.d_out or u.open:
                    unattributed.last_active = now
                continue
            cached = shown_cache.get(u.owner)
            if cached is None:
                pinfo = self._info.get(u.owner)
                if pinfo is None:
                    pinfo = info(u.owner)
                    if pinfo is not None:
                        self._info[u.owner] = pinfo
                if pinfo is None:  # exited before its facts could be read: say so, keep bytes
                    pinfo = self._info[u.owner] = ProcessInfo(
                        u.owner, "?", f"[pid {u.owner.pid}, exited]", "?", -1, "(exited)"
                    )
                cached = (self.grouper.app_of(pinfo), self.filter.shows(pinfo.cmdline))
                shown_cache[u.owner] = cached
            app, shown = cached
            if not shown:
                self.filtered.add(u.d_in, u.d_out, u.open)
                continue
            pacc = self._procs.get(u.owner)
            if pacc is None:
                pacc = self._procs[u.owner] = _Acc()
            pacc.add(u.d_in, u.d_out, u.open)
            aacc = self._apps.get(app)
            if aacc is None:
                aacc = self._apps[app] = _Acc()
            aacc.add(u.d_in, u.d_out, u.open)
            aacc.procs.add(u.owner)
            if u.d_in or u.d_out or u.open:
                pacc.last_active = aacc.last_active = now
            if u.open:
                conns.setdefault(app, []).append(
                    Connection(
                        u.end.proto,
                        _fmt_endpoint(u.end.local, u.end.lport),
                        _fmt_endpoint(u.end.remote, u.end.rport),
                        end_tot.total_in,
                        end_tot.total_out,
                        u.entry.state,
                    )
                )

        self._account_pipes(pipes, now)
        self._host_in += host_in
        self._host_out += host_out
        self._loop_total += loop
        rate = (lambda b: b / elapsed) if elapsed > 0 else (lambda b: 0.0)
        self.host = HostTotals(
            rate(host_in), rate(host_out), self._host_in, self._host_out,
            self._loop_total, rate(loop),
        )
        apps = self._app_rows(conns, now, rate)
        procs = self._process_rows(now, rate)
        f = self.filtered
        filtered = Totals(rate(f.d_in), rate(f.d_out), f.total_in, f.total_out)
        self._expire(now)
        return apps, procs, self.host, filtered

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
            acc.add(d_in, d_out, False)
            acc.flows = p.connections
            acc.last_active = now

    def live_processes(self) -> list[ProcKey]:
        """Processes whose rows are still kept (their facts must stay cached)."""
        return list(self._procs)

    # -- outputs -------------------------------------------------------------------------------

    def _app_rows(
        self, conns: dict[str, list[Connection]], now: float, rate: Callable[[int], float]
    ) -> tuple[AppRow, ...]:
        rows: list[AppRow] = []
        for name, acc in self._apps.items():
            if not (acc.flows or acc.d_in or acc.d_out or now - acc.last_active < self.linger):
                continue
            if name in (UNATTRIBUTED, FORWARDED):
                if not (acc.total_in or acc.total_out or acc.flows):
                    continue
                kind = RowKind.UNATTRIBUTED if name == UNATTRIBUTED else RowKind.FORWARDED
            else:
                kind = RowKind.APP
            app_conns = conns.get(name, [])
            if len(app_conns) > MAX_CONNECTIONS:
                app_conns.sort(key=lambda c: c.bytes_in + c.bytes_out, reverse=True)
                app_conns = app_conns[:MAX_CONNECTIONS]
            procs = tuple(self._info[k] for k in sorted(acc.procs) if k in self._info)
            rows.append(AppRow(name, kind, Unit.IP, rate(acc.d_in), rate(acc.d_out),
                               acc.total_in, acc.total_out, acc.flows, procs, tuple(app_conns)))
        for name, acc in self._pipes.items():
            rows.append(AppRow(name, RowKind.PIPE, Unit.PAYLOAD, rate(acc.d_in), rate(acc.d_out),
                               acc.total_in, acc.total_out, acc.flows))
        return tuple(rows)

    def _process_rows(self, now: float, rate: Callable[[int], float]) -> tuple[ProcessRow, ...]:
        rows: list[ProcessRow] = []
        for key, acc in self._procs.items():
            if not (acc.flows or acc.d_in or acc.d_out or now - acc.last_active < self.linger):
                continue
            pinfo = self._info.get(key)
            if pinfo is None:
                continue
            rows.append(ProcessRow(pinfo, self.grouper.app_of(pinfo), rate(acc.d_in),
                                   rate(acc.d_out), acc.total_in, acc.total_out, acc.flows))
        return tuple(rows)

    def _expire(self, now: float) -> None:
        """Forget rows, processes and flow ends inactive for 10 × linger (bounded memory)."""
        horizon = now - 10 * self.linger
        for pkey in [k for k, a in self._procs.items() if a.last_active < horizon and not a.flows]:
            del self._procs[pkey]
        for name in [k for k, a in self._apps.items() if a.last_active < horizon and not a.flows]:
            if name not in (UNATTRIBUTED, FORWARDED):
                del self._apps[name]
        if len(self._info) > len(self._procs) + 1024:
            self._info = {k: v for k, v in self._info.items() if k in self._procs}
        stale_ends = [k for k, e in self._ends.items() if e.seen < now - self.linger]
        for k in stale_ends:
            del self._ends[k]
