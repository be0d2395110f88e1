"""The parser's account of what changed between two reads lets the flow tracker skip passes
over every entry: its deltas and vanished flows must be exactly those of the full check.

Random table histories (counters moving, flows coming and going, state changes, a line
listed twice, garbage, DESTROY events handled before a stale read) are fed to two trackers,
one given the parser's TableChange and one not, and every tick's results must agree.
"""

from __future__ import annotations

import random

import pytest

from bwmon.core.attribution.flows import FlowChanges, FlowTracker
from bwmon.core.model import ConntrackEntry
from bwmon.core.sources.conntrack_parse import ConntrackParser, parse_conntrack


def _line(sport: int, state: str, orig: int, reply: int, timeout: int) -> str:
    return (f"ipv4     2 tcp      6 {timeout} {state} src=10.0.0.1 dst=10.0.0.2 sport={sport} "
            f"dport=443 packets=1 bytes={orig} src=10.0.0.2 dst=10.0.0.1 sport=443 "
            f"dport={sport} packets=1 bytes={reply} [ASSURED] mark=0 zone=0 use=2")


def _summary(changes: FlowChanges) -> tuple[list[tuple[object, int, int, bool]], list[object]]:
    """Every delta, whether in the general form or the steady one (see FlowChanges)."""
    deltas = sorted([(d.entry.key, d.d_orig, d.d_reply, d.open) for d in changes.deltas]
                    + [(k, d_orig, d_reply, True) for k, _e, d_orig, d_reply in changes.steady])
    return deltas, sorted(changes.gone)


@pytest.mark.parametrize("shuffled", [False, True], ids=["kernel order", "shuffled"])
@pytest.mark.parametrize("seed", range(8))
def test_tracker_given_the_change_agrees_with_the_full_check(seed: int, shuffled: bool) -> None:
    """In kernel order (a new flow's line lands anywhere, the others keep their order, as the
    kernel lists its hash buckets one by one), and shuffled at every read."""
    rng = random.Random(seed)
    flows: dict[int, list[object]] = {}  # sport -> [state, orig, reply], in listing order
    next_port = 1000
    parser = ConntrackParser()
    hinted, full = FlowTracker(lookback=True), FlowTracker(lookback=True)
    used_hints = twice = steady = 0
    for tick in range(1, 60):
        for sport in list(flows):
            r = rng.random()
            state, orig, reply = flows[sport]
            if r < 0.3:
                flows[sport] = [state, orig + rng.randint(1, 500), reply + rng.randint(0, 500)]
            elif r < 0.33:
                flows[sport] = ["TIME_WAIT", orig, reply]
            elif r < 0.38:
                del flows[sport]
        for _ in range(rng.randint(0, 6)):
            items = list(flows.items())
            items.insert(rng.randint(0, len(items)),
                         (next_port, ["ESTABLISHED", rng.randint(1, 900), rng.randint(0, 900)]))
            flows = dict(items)
            next_port += 1
        lines = [_line(p, str(s), int(o), int(r), 400 - tick) for p, (s, o, r) in flows.items()]
        if lines and rng.random() < 0.1:
            at = rng.randrange(len(lines))  # a line listed twice (a read racing a resize)
            lines.insert(rng.randint(at, len(lines)), lines[at])
            twice += 1
        if rng.random() < 0.1:
            lines.insert(rng.randint(0, len(lines)), "ipv4 2 garbage")
        if shuffled:
            rng.shuffle(lines)
        # DESTROY events: flows that end now, handled before this read, which may still
        # list them unchanged (a stale view) when the read raced the event
        ended = [p for p in flows if rng.random() < 0.05]
        finals: list[ConntrackEntry] = []
        for p in ended:
            state, orig, reply = flows[p]
            entry = parse_conntrack(_line(p, str(state), int(orig), int(reply), 1))[0]
            finals.append(entry)
            if rng.random() < 0.5:
                del flows[p]  # gone from the table by the next read
        assert [d.entry.key for d in hinted.finish(finals, tick)] == [
            d.entry.key for d in full.finish(finals, tick)]
        entries = parser.parse("\n".join(lines) + "\n")
        change = parser.change
        used_hints += change.base == hinted._serial
        got = hinted.read(entries, tick, change)
        entries_by_id = {id(e): e for e in entries}
        want = full.read(entries, tick)
        assert all(e.key == k and e is entries_by_id[id(e)] for k, e, _o, _r in got.steady)
        steady += len(got.steady)
        g, w = _summary(got), _summary(want)
        assert g == w, f"tick {tick}"
        assert len(hinted) == len(full)
    # the shortcut was really taken: on every read but the first and those listing a line twice
    assert used_hints >= 58 - twice
    assert steady > 0  # and flows whose counters alone moved took the cheapest form
