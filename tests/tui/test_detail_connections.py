"""The detail pane's connection list: largest first, and a connection keeps its line while
it shows the same figure as its neighbours, however the core happens to list equal ones."""

from __future__ import annotations

import dataclasses

from bwmon.core.feed import ManualFeed
from bwmon.core.model import Connection, Snapshot
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import RecordingController
from bwmon.tui.demo import demo_snapshot
from bwmon.tui.detail_pane import DetailPane, connection_key, steady_connections
from bwmon.tui.format import human_bytes
from tests.helpers.factories import connection
from tests.helpers.screen_text import widget_lines


def conn(port: int, size: int = 5836) -> Connection:
    return connection(f"10.0.0.1:{port}", "10.0.0.2:7001", 268, size, "TIME_WAIT")


def ports(connections: list[Connection]) -> list[int]:
    return [int(c.local.rsplit(":", 1)[1]) for c in connections]


def test_equal_connections_keep_their_lines_and_new_ones_come_after_them() -> None:
    first = steady_connections([conn(1), conn(2), conn(3)], {})
    before = {connection_key(c): i for i, c in enumerate(first)}
    # the core lists the same equal connections in another order, one closed, one new
    again = steady_connections([conn(4), conn(3), conn(1)], before)
    assert ports(again) == [1, 3, 4]


def test_a_bigger_connection_still_goes_first_and_a_smaller_one_last() -> None:
    before = {connection_key(c): i for i, c in enumerate([conn(1), conn(2)])}
    shown = steady_connections([conn(2), conn(9, 1), conn(1), conn(8, 50_000)], before)
    assert ports(shown) == [8, 1, 2, 9]


def test_only_a_difference_that_shows_reorders() -> None:
    """5836 and 5840 bytes both show as 5.70 KiB: no reason to swap lines."""
    before = {connection_key(c): i for i, c in enumerate([conn(1, 5836), conn(2, 5840)])}
    assert ports(steady_connections([conn(2, 5840), conn(1, 5836)], before)) == [1, 2]


def shuffled(base: Snapshot, n: int) -> Snapshot:
    """The first app with six equal connections, listed rotated by n (as a set would)."""
    conns = [conn(p) for p in range(1, 7)]
    conns = conns[n % 6:] + conns[:n % 6]
    app = dataclasses.replace(base.apps[0], name="alpha", connections=tuple(conns))
    return dataclasses.replace(base, seq=n, time=base.time + n, apps=(app,))


async def test_the_pane_shows_equal_connections_in_the_same_lines_every_tick(
        controller: RecordingController) -> None:
    base = demo_snapshot(5, 1)
    feed = ManualFeed()
    feed.push(shuffled(base, 0))
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        pane = app.query_one("#detail", DetailPane)
        first = pane.body_plain
        assert ":1 → " in first and ":6 → " in first
        for n in range(1, 4):
            feed.push(shuffled(base, n))
            await pilot.pause()
            assert pane.body_plain == first, n


async def test_each_connection_is_one_line_at_120_columns(app: BwmonApp) -> None:
    """Issue 23, item 10: connection lines wrapped in the detail pane at 120×40 (the figures
    and state on a line of their own). Now one line each, with both figures and the remote
    end; the whole local address where the pane is wide enough."""
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("down", "down")
        await pilot.pause()
        row = app.table.shown_row(app.table.selected_key or "")
        assert row is not None and len(row.connections) >= 2
        body = app.query_one("#detail-body")
        lines = [line.rstrip() for line in widget_lines(app, body) if line.strip()]
        listed = [line for line in lines if line.startswith("tcp")]
        assert len(listed) == len(row.connections)
        assert lines[-len(listed):] == listed, "a connection line went on to the next one"
        for c in row.connections:
            assert any(human_bytes(c.bytes_in) in line and human_bytes(c.bytes_out) in line
                       and c.remote in line for line in listed), c
        await pilot.resize_terminal(200, 40)
        await pilot.pause()
        wide = " ".join(widget_lines(app, body))
        assert all(f"{c.local} → {c.remote}" in wide for c in row.connections)
