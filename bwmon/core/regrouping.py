"""When groups change, rows are renamed: totals and histories follow the processes.

Saving groups in the editor, the `a` key (auto-group) or a changed filter puts processes into
other rows. Without this, the new rows started at zero with no history while the old ones
stayed behind as idle "ghost" rows for two minutes, and alerts fired again under the new names.
Here a live process's bytes move with it to its new row; an old row left without processes
goes, and the bytes of its exited processes go along to the row that took most of its bytes.
The outcome is a set of moves (old row → new row, share of the old row's bytes) that the
history (`merge_series`) and the alert state (alerts.rules.carry_over) apply in the same way.
Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TypeVar

from bwmon.core.model import HistoryPoint, ProcKey
from bwmon.core.row_state import Acc

Moves = dict[str, dict[str, float]]  # old row -> {row it went to (maybe itself): share}


def move_totals(apps: dict[str, Acc], procs: Mapping[ProcKey, Acc],
                old_of: Mapping[ProcKey, str], new_of: Mapping[ProcKey, str | None],
                keep: Collection[str]) -> Moves:
    """Move each process's totals from its old app row to its new one (None: now hidden by a
    filter), in `apps`, which must count no open flows; rows named in `keep` always stay.
    Returns the moves of the rows that changed."""
    sent: dict[str, dict[str, int]] = {}
    for key, old in old_of.items():
        new = new_of.get(key, old)
        pacc = procs.get(key)
        if new == old or pacc is None:
            continue
        size = pacc.total_in + pacc.total_out
        src = apps.get(old)
        if src is not None:
            src.total_in = max(0, src.total_in - pacc.total_in)
            src.total_out = max(0, src.total_out - pacc.total_out)
        if new is not None:
            dst = apps.setdefault(new, Acc())
            dst.total_in += pacc.total_in
            dst.total_out += pacc.total_out
            dst.last_active = max(dst.last_active, pacc.last_active)
        to = sent.setdefault(old, {})
        to[new or ""] = to.get(new or "", 0) + max(size, 1)  # 1: an idle process counts too
    staying = {name for name in new_of.values() if name is not None}
    staying.update(old for key, old in old_of.items() if key not in new_of)
    moves: Moves = {}
    for old, to in sent.items():
        src = apps.get(old)
        rest = (src.total_in + src.total_out) if src is not None else 0
        if src is not None and old not in staying and old not in keep:
            heir = max((n for n in to if n), key=lambda n: to[n], default=None)
            if heir is not None:  # the exited processes' bytes go where most of the rest went
                dst = apps[heir]
                dst.total_in += src.total_in
                dst.total_out += src.total_out
                to[heir] += rest
                rest = 0
            del apps[old]
        elif src is not None:
            to[old] = to.get(old, 0) + max(rest, 1)
        whole = sum(to.values())
        moves[old] = {n: b / whole for n, b in to.items() if n}
    return moves


def compose(first: Moves, then: Moves) -> Moves:
    """The moves of two regroups in a row, as one."""
    if not first:
        return then
    out: Moves = {}
    for old, to in first.items():
        mine = out.setdefault(old, {})
        for mid, share in to.items():
            for target, s2 in then.get(mid, {mid: 1.0}).items():
                mine[target] = mine.get(target, 0.0) + share * s2
    for old, to in then.items():
        if old not in first:
            out[old] = dict(to)
    return out


T = TypeVar("T")


def merge_series(series: Mapping[str, Sequence[T]], moves: Moves,
                 scaled: Callable[[T, float], T], added: Callable[[T, T], T],
                 time_of: Callable[[T], float]) -> dict[str, list[T]]:
    """The series after `moves`: a row's own (if it did not move) plus the moved rows' shares,
    summed point by point (points of one tick share their time)."""
    out: dict[str, dict[float, T]] = {}
    for name, points in series.items():
        for target, share in moves.get(name, {name: 1.0}).items():
            merged = out.setdefault(target, {})
            for p in points:
                part = scaled(p, share) if share != 1.0 else p
                t = time_of(p)
                merged[t] = added(merged[t], part) if t in merged else part
    return {name: [pts[t] for t in sorted(pts)] for name, pts in out.items()}


def merge_history(series: Mapping[str, Sequence[HistoryPoint]],
                  moves: Moves) -> dict[str, list[HistoryPoint]]:
    """History points after `moves` (rates scaled by each share and summed)."""
    return merge_series(
        series, moves,
        lambda p, s: HistoryPoint(p.time, p.rate_in * s, p.rate_out * s),
        lambda a, b: HistoryPoint(a.time, a.rate_in + b.rate_in, a.rate_out + b.rate_out),
        lambda p: p.time)
