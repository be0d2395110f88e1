"""Per-flow byte deltas from successive conntrack reads: reset-safe, lookback-aware.

A pure step: it keeps the counters of the previous read and turns each new read (plus the final
counters of flows that ended, from DESTROY events) into deltas. No clock, no I/O: the tick number
is an argument. Deltas are never negative: a counter that drops means the tuple now names a new
flow, whose delta is its whole counter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import not_

from bwmon.core.model import ConntrackEntry, FlowKey, TableChange
from bwmon.core.runtime.slots import fast_constructor

# How many ticks the final counters of a destroyed flow are remembered, so that a poll that was
# read before the DESTROY event was handled cannot count the flow a second time.
TOMBSTONE_TICKS = 3
# How many ticks the last counters of a flow that left the table are remembered, so that its
# DESTROY event, handled after the read that no longer listed it, adds only what it moved since.
VANISHED_TICKS = 10


@dataclass(frozen=True, slots=True)
class FlowDelta:
    """Bytes a flow moved since the previous read, per conntrack direction."""

    entry: ConntrackEntry
    d_orig: int  # bytes in the original direction (from the flow's initiator)
    d_reply: int  # bytes in the reply direction
    open: bool = True  # False for a flow that ended (DESTROY event)


new_delta = fast_constructor(FlowDelta, ("entry", "d_orig", "d_reply", "open"))


# A flow whose counters alone moved: (key, entry now, d_orig, d_reply). A plain tuple, as the
# cheap case of FlowDelta: at 50k flows ~5,000 of them a tick pass through three stages.
Steady = tuple[FlowKey, ConntrackEntry, int, int]


@dataclass(slots=True)
class _Seen:
    orig: int
    reply: int
    ct_id: int | None
    entry: ConntrackEntry  # the object last read: the parser hands the same one back unchanged


@dataclass(slots=True)
class FlowChanges:
    """What one table read changed: deltas of new or changed entries, and flows that vanished.

    Entries the parser handed back as the very same object (nothing but timeouts moved) are
    neither: their delta is zero and their previous attribution still holds.
    """

    deltas: list[FlowDelta]
    gone: list[FlowKey]
    unchanged: int = 0
    # flows whose counters alone moved, in the cheap form (key, entry, d_orig, d_reply): an
    # open flow's delta without a FlowDelta object (see FlowOwners.plan)
    steady: list[Steady] = field(default_factory=list)


# TCP states of a connection that is closed, kept by conntrack for a while (up to 2 minutes)
CLOSED_STATES = frozenset({"TIME_WAIT", "CLOSE"})


class FlowTracker:
    """Turns conntrack reads into deltas.

    `lookback=True` counts what a flow already carried when bwmon first saw it in its first read,
    unless the connection was closed then (CLOSED_STATES): the bytes of connections over before
    bwmon started, often of processes long gone, would fill `(unattributed)` with old traffic
    at the first second (issue 23, item 8); they are a baseline, as with `lookback=False`, which
    takes the whole first read as a baseline. Flows first seen later always count in
    full: they began after bwmon started. `read` does Python work only for entries whose object
    changed since the previous read (the rest is set arithmetic on object ids, done in C).
    """

    def __init__(self, *, lookback: bool) -> None:
        self.lookback = lookback
        self._count_closed = True
        self._seen: dict[FlowKey, _Seen] = {}
        # id(entry) -> key for every entry object held in _seen (held, so ids are not reused)
        self._by_id: dict[int, FlowKey] = {}
        self._tombstones: dict[FlowKey, tuple[int, int, int]] = {}  # key -> (orig, reply, tick)
        self._vanished: dict[FlowKey, tuple[int, int, int]] = {}  # key -> (orig, reply, tick)
        self._reads = 0
        self._serial = -1  # serial of the last TableChange read (-1: none)
        # entries no longer held since the last read (their flows ended): id -> entry
        self._released: dict[int, ConntrackEntry] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def entries(self) -> list[ConntrackEntry]:
        """Every entry last read for flows still in the table."""
        return [seen.entry for seen in self._seen.values()]

    def entry(self, key: FlowKey) -> ConntrackEntry | None:
        """The entry last read for a flow still in the table."""
        seen = self._seen.get(key)
        return None if seen is None else seen.entry

    def update(self, entries: Sequence[ConntrackEntry], tick: int) -> list[FlowDelta]:
        """Deltas of one full table read, one per entry (zero for unchanged ones), in order."""
        changes = self.read(entries, tick)
        by_entry = {id(d.entry): d for d in changes.deltas}
        return [by_entry.get(id(e)) or FlowDelta(e, 0, 0) for e in entries]

    def read(self, entries: Sequence[ConntrackEntry], tick: int,
             change: TableChange | None = None) -> FlowChanges:
        """One full table read: deltas of new and changed entries, keys of vanished flows.

        `change` is the parser's account of this read against the one before (see
        ConntrackParser); when that previous read is the one this tracker saw last, it
        replaces four passes over every entry (a sixth of a 50k tick) with work in
        proportion to what changed. Without it, or out of step, every entry is checked."""
        first = self._reads == 0
        self._reads += 1
        count_new = self.lookback or not first
        self._count_closed = not first  # lookback: connections already closed are a baseline
        by_id = self._by_id
        hinted = change is not None and change.base == self._serial
        released, self._released = self._released, {}
        self._serial = change.serial if change is not None else -1
        if change is not None and hinted:
            steady, late = self._steady(change.moved_from, change.moved)
            deltas = self._fresh(change.fresh, count_new)
            if late:
                deltas.extend(self._fresh(late, count_new))
            gone = self._vanish(map(id, change.dropped), tick)
            built = len(change.fresh) + len(change.moved)
            if released:  # entries of flows ended since, listed again unchanged (stale views)
                dropped = set(map(id, change.dropped))
                rest = [e for i, e in released.items() if i not in dropped]
                deltas.extend(self._fresh(rest, count_new))
                built += len(rest)
            if len(by_id) != len(entries):  # a safety net: should not happen
                rest = list(compress(entries, map(not_, map(by_id.__contains__, map(id, entries)))))
                deltas.extend(self._fresh(rest, count_new))
                built += len(rest)
            self._expire_tombstones(tick)
            return FlowChanges(deltas, gone, len(entries) - built, steady)
        ids = list(map(id, entries))
        held = set(by_id)
        fresh = list(compress(entries, map(not_, map(by_id.__contains__, ids))))
        deltas = self._fresh(fresh, count_new)
        gone = []
        if len(held) + len(fresh) != len(ids) or fresh:  # some held entries were not read again
            gone = self._vanish(held.difference(ids), tick)
        self._expire_tombstones(tick)
        return FlowChanges(deltas, gone, len(ids) - len(fresh))

    def _steady(self, before: Iterable[ConntrackEntry], moved: Iterable[ConntrackEntry]
                ) -> tuple[list[Steady], list[ConntrackEntry]]:
        """The cheap case of `_fresh`: lines whose counters alone moved, given with the entry
        of their previous line. A flow held with that very entry, whose counters did not drop
        (same conntrack id), gets its delta here; any other entry is returned for `_fresh`."""
        seen, by_id = self._seen, self._by_id
        steady: list[Steady] = []
        late: list[ConntrackEntry] = []
        for was, entry in zip(before, moved, strict=True):
            key = by_id.pop(id(was), None)
            if key is not None:
                old = seen[key]
                orig, reply = entry.orig_bytes or 0, entry.reply_bytes or 0
                if (old.entry is was and orig >= old.orig and reply >= old.reply
                        and entry.ct_id == old.ct_id):
                    by_id[id(entry)] = key
                    steady.append((key, entry, orig - old.orig, reply - old.reply))
                    old.orig, old.reply, old.entry = orig, reply, entry
                    continue
                by_id[id(was)] = key  # not the cheap case: `_fresh` takes it as it is
            late.append(entry)
        return steady, late

    def _fresh(self, fresh: Iterable[ConntrackEntry], count_new: bool) -> list[FlowDelta]:
        """Deltas of entry objects not held before: new flows, or flows whose line changed."""
        seen = self._seen
        by_id = self._by_id
        deltas: list[FlowDelta] = []
        tombstones = self._tombstones
        for entry in fresh:
            key = entry.key
            orig = entry.orig_bytes or 0
            reply = entry.reply_bytes or 0
            old = seen.get(key)
            if old is None:
                stone = tombstones.get(key)
                if stone is not None and orig <= stone[0] and reply <= stone[1]:
                    # a stale view of a flow whose final counters were already counted
                    seen[key] = _Seen(stone[0], stone[1], entry.ct_id, entry)
                    by_id[id(entry)] = key
                    continue
                if count_new and (self._count_closed or entry.state not in CLOSED_STATES):
                    d_orig, d_reply = orig, reply
                else:
                    d_orig, d_reply = 0, 0
                seen[key] = _Seen(orig, reply, entry.ct_id, entry)
            else:
                # keep the held key and record: nothing new outlives the tick for a flow
                # whose counters moved (the collector after each tick scans what survives)
                key = by_id.pop(id(old.entry), key)
                if orig < old.orig or reply < old.reply or (
                    entry.ct_id is not None and old.ct_id is not None and entry.ct_id != old.ct_id
                ):
                    d_orig, d_reply = orig, reply  # the tuple now names a new flow
                else:
                    d_orig, d_reply = orig - old.orig, reply - old.reply
                old.orig, old.reply, old.ct_id, old.entry = orig, reply, entry.ct_id, entry
            by_id[id(entry)] = key
            deltas.append(new_delta(entry, d_orig, d_reply, True))
        return deltas

    def _vanish(self, stale_ids: Iterable[int], tick: int) -> list[FlowKey]:
        """Flows of entries held before and not read again (unless replaced above)."""
        by_id, seen = self._by_id, self._seen
        gone: list[FlowKey] = []
        for stale in stale_ids:
            vanished = by_id.pop(stale, None)  # None: replaced by a changed entry, or not held
            if vanished is not None:
                last = seen.pop(vanished)
                self._vanished[vanished] = (last.orig, last.reply, tick)
                gone.append(vanished)
        return gone

    def finish(self, entries: Iterable[ConntrackEntry], tick: int) -> list[FlowDelta]:
        """Deltas of flows that ended (DESTROY events with final counters) since the last read.

        Call it before `update` of the same tick: a read taken before a DESTROY was handled then
        shows counters no higher than the final ones and is recognised as stale.
        """
        deltas: list[FlowDelta] = []
        for entry in entries:
            key = entry.key
            old = self._seen.pop(key, None)
            if old is not None:
                self._by_id.pop(id(old.entry), None)
                self._released[id(old.entry)] = old.entry
            orig = entry.orig_bytes or 0
            reply = entry.reply_bytes or 0
            if old is None:
                stone = self._tombstones.get(key)
                if stone is not None and orig <= stone[0] and reply <= stone[1]:
                    continue  # the same end reported twice
                last = self._vanished.pop(key, None)
                if last is not None and orig >= last[0] and reply >= last[1]:
                    # left the table (expired, read away) before its DESTROY was handled
                    d_orig, d_reply = orig - last[0], reply - last[1]
                else:
                    d_orig, d_reply = orig, reply  # lived and died between two reads
            elif orig < old.orig or reply < old.reply:
                d_orig, d_reply = orig, reply
            else:
                d_orig, d_reply = orig - old.orig, reply - old.reply
            self._tombstones[key] = (orig, reply, tick)
            deltas.append(FlowDelta(entry, d_orig, d_reply, open=False))
        return deltas

    def _expire_tombstones(self, tick: int) -> None:
        if self._tombstones:
            self._tombstones = {
                k: v for k, v in self._tombstones.items() if tick - v[2] < TOMBSTONE_TICKS
            }
        if self._vanished:
            self._vanished = {
                k: v for k, v in self._vanished.items() if tick - v[2] < VANISHED_TICKS
            }
