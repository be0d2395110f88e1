"""The app table: header clicks and keys sort and reverse; sort and selection survive refreshes;
rows update in place; special rows stay last; the row cap sums the rest."""

from __future__ import annotations

import dataclasses

from textual.pilot import Pilot

from bwmon.core.feed import ManualFeed
from bwmon.core.model import RowKind, Snapshot
from bwmon.tui.app import BwmonApp
from bwmon.tui.app_table import MORE_KEY, AppTable
from bwmon.tui.demo import demo_snapshot
from bwmon.tui.format import shown_bytes
from bwmon.tui.steady_order import MARGIN, MEAN_MARGIN, MEAN_SECONDS


def header_x(table: AppTable, key: str) -> int:
    """The x offset of a column header's middle, as a user would click it."""
    x = 0
    for column in table.ordered_columns:
        width = column.get_render_width(table)
        if column.key.value == key:
            return x + width // 2
        x += width
    raise KeyError(key)


def names(app: BwmonApp) -> list[str]:
    return app.table.row_keys_in_order()


def ordinary(app: BwmonApp) -> list[str]:
    return [n for n in names(app) if not n.startswith("(")]


def means(app: BwmonApp) -> list[float]:
    """The mean rates in + out over the last MEAN_SECONDS (what rate sorts order apps by),
    top to bottom."""
    found = [app.feed.history.mean_rates(n, MEAN_SECONDS) for n in ordinary(app)]
    return [sum(pair) for pair in found if pair is not None]


def steadily_sorted(figures: list[float], descending: bool = True,
                    margin: float = MARGIN) -> bool:
    """No figure is clearly ahead of (by more than `margin`) a figure shown above it."""
    sign = 1.0 if descending else -1.0
    return all(not (sign * (low - up) > margin * min(abs(low), abs(up)))
               for i, up in enumerate(figures) for low in figures[i + 1:])


async def click_header(pilot: Pilot[None], app: BwmonApp, key: str) -> None:
    await pilot.click("#apps", offset=(header_x(app.table, key), 0))
    await pilot.pause()


async def test_starts_sorted_by_rate_in_plus_out_busiest_first(app: BwmonApp) -> None:
    """The first sort answers "which app moves the most, either way": In/s + Out/s (by the
    mean of the last seconds), both headers marked; 0 comes back to it from another sort."""
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert len(means(app)) == len(ordinary(app))
        assert means(app) == sorted(means(app), reverse=True)
        assert len(set(means(app))) > 3  # figures that differ: the order means something
        assert names(app)[-1] == "(unattributed)"
        labels = [c.label.plain for c in app.table.ordered_columns]
        assert [label.endswith("▼") for label in labels[:4]] == [False, True, True, False]
        await pilot.press("1")
        assert ordinary(app) == sorted(ordinary(app))
        await pilot.press("0")
        assert means(app) == sorted(means(app), reverse=True)
        await pilot.press("greater_than_sign")  # the next sort: In/s
        assert app.table.sort_column == "rate_in"
        await pilot.press("less_than_sign", "less_than_sign")  # back past in + out: App
        assert app.table.sort_column == "app"


async def test_header_click_sorts_then_reverses(app: BwmonApp) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await click_header(pilot, app, "app")
        assert ordinary(app) == sorted(ordinary(app))
        label = app.table.ordered_columns[0].label.plain
        assert label.endswith("▲")
        await click_header(pilot, app, "app")
        assert ordinary(app) == sorted(ordinary(app), reverse=True)
        assert app.table.ordered_columns[0].label.plain.endswith("▼")
        assert names(app)[-1] == "(unattributed)"  # pinned whatever the direction


async def test_number_keys_sort_and_repeat_reverses(app: BwmonApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("4")  # Tot in, biggest first
        snap = app.shown
        assert snap is not None
        totals = [shown_bytes(snap.app(n).total_in)  # type: ignore[union-attr]
                  for n in ordinary(app)]
        assert totals == sorted(totals, reverse=True)
        await pilot.press("4")
        totals = [shown_bytes(snap.app(n).total_in)  # type: ignore[union-attr]
                  for n in ordinary(app)]
        assert totals == sorted(totals)
        await pilot.press("r")
        totals = [shown_bytes(snap.app(n).total_in)  # type: ignore[union-attr]
                  for n in ordinary(app)]
        assert totals == sorted(totals, reverse=True)


async def test_sort_and_selection_survive_refreshes(app: BwmonApp, feed: ManualFeed) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("down", "down", "down")
        chosen = app.table.selected_key
        assert chosen is not None
        moved = False
        before = names(app)
        for tick in range(31, 45):  # rates change: rows swap places
            feed.push(demo_snapshot(tick, 10))
            await pilot.pause()
            assert app.table.selected_key == chosen
            assert steadily_sorted(means(app), margin=MEAN_MARGIN)
            moved = moved or names(app) != before
        assert moved, "the demo data should make rows change places"
        await pilot.press("1")  # re-sort by name: selection follows the row
        assert app.table.selected_key == chosen


async def test_rows_update_in_place(app: BwmonApp, feed: ManualFeed) -> None:
    """Cells change without rows being removed and re-added (no flicker, no jump to top)."""
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.table
        await pilot.press(*["down"] * 12)
        row_objects = dict(table.rows)
        feed.push(demo_snapshot(31, 10))
        await pilot.pause()
        assert all(table.rows[k] is v for k, v in row_objects.items())  # same objects: kept
        assert len(table.rows) == len(row_objects)
        assert table.selected_key == "(unattributed)"
        snap = app.shown
        assert snap is not None
        firefox = snap.app("firefox")
        assert firefox is not None
        cell = table.get_cell("firefox", "rate_in")
        assert cell.plain.strip() and cell.plain != "0 B"


async def test_vanishing_and_new_apps(app: BwmonApp, feed: ManualFeed) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        snap = demo_snapshot(31, 10)
        apps = [a for a in snap.apps if a.name != "ssh"]
        apps.insert(0, dataclasses.replace(apps[0], name="newcomer"))
        feed.push(dataclasses.replace(snap, apps=tuple(apps)))
        await pilot.pause()
        assert "ssh" not in names(app)
        assert "newcomer" in names(app)


async def test_row_cap_sums_the_rest(feed: ManualFeed, controller: object) -> None:
    from bwmon.core.config.settings import Settings
    from bwmon.tui.controller import RecordingController

    ctl = RecordingController(Settings.model_validate({"tui": {"max_rows": 10}}))
    many = ManualFeed()
    snap: Snapshot = demo_snapshot(5, 30)
    many.push(snap)
    app = BwmonApp(many, ctl, is_root=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        shown = names(app)
        assert len(shown) == 10
        assert shown[-1] == MORE_KEY
        more = app.table.shown_row(MORE_KEY)
        assert more is not None
        visible = [snap.app(n) for n in shown if n != MORE_KEY]
        total = sum(a.total_in for a in snap.apps)
        assert more.total_in == total - sum(a.total_in for a in visible if a is not None)
        assert more.kind == RowKind.APP


async def test_selected_row_fills_the_detail_pane(app: BwmonApp) -> None:
    from bwmon.tui.detail_pane import DetailPane, RateGraph

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("1", *["up"] * 12)  # by name, then to the top: apt
        assert app.table.selected_key == "apt"
        body = app.query_one(DetailPane).body_plain
        assert "/usr/bin/apt --profile p0" in body
        assert "203.0.113.11:443" in body
        spark = app.query_one("#spark-in-120", RateGraph)
        assert spark.data and len(spark.data) == 30  # 30 ticks of history so far
        assert spark.data[-1] == app.table.shown_row("apt").rate_in  # type: ignore[union-attr]
        await pilot.press("down")
        body = app.query_one(DetailPane).body_plain
        assert "/usr/bin/chromium" in body


async def test_render_caches_stay_small_while_every_cell_changes(controller: object) -> None:
    """Fifty rows whose cells all change each tick: DataTable's render caches must not keep
    thousands of stale cells (they were ~9 MiB of the TUI's memory)."""
    from bwmon.tui.app_table import RENDER_CACHES
    from bwmon.tui.controller import RecordingController

    assert isinstance(controller, RecordingController)
    feed = ManualFeed()
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(120, 40)) as pilot:
        for tick in range(40):
            feed.push(demo_snapshot(tick, 50))
            await pilot.pause()
        assert len(app.table.rows) >= 50
        for name, size in RENDER_CACHES.items():
            assert 0 < len(getattr(app.table, name)) <= size


def _two_apps(n: int, alpha: float, beta: float) -> Snapshot:
    """Tick n of a snapshot holding two apps, alpha and beta, with these rates in (and none
    out: the default sort, in + out, is by these figures)."""
    base = demo_snapshot(5, 3)
    template = base.apps[0]
    apps = (dataclasses.replace(template, name="alpha", rate_in=alpha, rate_out=0.0),
            dataclasses.replace(template, name="beta", rate_in=beta, rate_out=0.0))
    return dataclasses.replace(base, seq=n, time=base.time + n, apps=apps)


def _two_app_table(controller: object, alpha: float, beta: float
                   ) -> tuple[ManualFeed, BwmonApp]:
    """A feed holding tick 0 of `_two_apps` and the app reading it."""
    from bwmon.tui.controller import RecordingController

    assert isinstance(controller, RecordingController)
    feed = ManualFeed()
    feed.push(_two_apps(0, alpha, beta))
    return feed, BwmonApp(feed, controller, is_root=False)


async def test_rows_showing_the_same_rate_keep_their_places(controller: object) -> None:
    """Two apps both showing 1.60 KiB/s whose exact rates swap every tick: they stay put
    (the table sorts by the figure shown); a difference the user can see still moves them."""
    tick = _two_apps
    feed, app = _two_app_table(controller, 1640.2, 1640.9)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        first = names(app)
        for n in range(1, 5):  # the exact rates swap each tick, the shown ones do not
            feed.push(tick(n, 1640.9, 1640.2) if n % 2 else tick(n, 1640.2, 1640.9))
            await pilot.pause()
            assert names(app) == first
        feed.push(tick(5, 3000.0, 1000.0) if first[0] == "beta" else tick(5, 1000.0, 3000.0))
        await pilot.pause()
        assert names(app) == first[::-1]


async def test_rates_that_take_turns_keep_their_rows_and_a_sort_key_sorts_exactly(
        controller: object) -> None:
    """Two apps whose rates take turns being ahead (1.2 vs 1.0 KiB/s, then the other way):
    they keep their rows instead of swapping every tick; a clearly bigger rate (double)
    passes at once; choosing the sort again sorts exactly at once."""
    tick = _two_apps
    feed, app = _two_app_table(controller, 1200.0, 1000.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert names(app)[:2] == ["alpha", "beta"]
        for n in range(1, 8):  # beta ahead on odd ticks, alpha on even ones
            feed.push(tick(n, 1000.0, 1200.0) if n % 2 else tick(n, 1200.0, 1000.0))
            await pilot.pause()
            assert names(app)[:2] == ["alpha", "beta"], n
        await pilot.press("0")  # the sort chosen again: exact order at once
        assert names(app)[:2] == ["beta", "alpha"]
        feed.push(tick(8, 1000.0, 1200.0))
        await pilot.pause()
        feed.push(tick(9, 3000.0, 1000.0))  # a burst: its 5-s mean passes beta's by 29 %
        await pilot.pause()
        assert names(app)[:2] == ["alpha", "beta"]


def _apps(n: int, rates: dict[str, float]) -> Snapshot:
    """Tick n of a snapshot holding these apps with these rates out (none in)."""
    base = demo_snapshot(5, 3)
    template = base.apps[0]
    apps = tuple(dataclasses.replace(template, name=name, rate_in=0.0, rate_out=rate)
                 for name, rate in rates.items())
    return dataclasses.replace(base, seq=n, time=base.time + n, apps=apps)


async def test_apps_with_jittering_rates_keep_their_rows_and_a_burst_rises_in_two_updates(
        controller: object) -> None:
    """Twelve apps moving the same traffic, each second's figure off by up to ±35 % at random
    (the benchmark's clients jitter by a median 1.28× from one second to the next): ordered by
    their 5-second means, few rows move (the single-second rule moved ~10 of 12 an update on
    this data, test_steady_order). One app then moving three times as much passes all of them
    within two updates."""
    import random

    from bwmon.tui.controller import RecordingController

    assert isinstance(controller, RecordingController)
    rng = random.Random(3)
    names_ = [f"app-{i:02d}" for i in range(12)]

    def jittered(n: int, burst: str | None = None) -> Snapshot:
        rates = {name: 100_000.0 * rng.uniform(0.65, 1.35) for name in names_}
        if burst is not None:
            rates[burst] = 300_000.0
        return _apps(n, rates)

    feed = ManualFeed()
    for n in range(6):
        feed.push(jittered(n))
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        moved = 0
        for n in range(6, 36):
            before = ordinary(app)
            feed.push(jittered(n))
            await pilot.pause()
            moved += sum(a != b for a, b in zip(before, ordinary(app), strict=True))
        assert moved <= 30 * 4, moved  # under 4 of 12 rows an update, on average
        last = ordinary(app)[-1]
        feed.push(jittered(36, burst=last))
        await pilot.pause()
        feed.push(jittered(37, burst=last))
        await pilot.pause()
        assert ordinary(app)[0] == last


async def test_trend_cells_are_fixed_slices_of_the_clock(controller: object) -> None:
    """Each trend cell is the mean rate of one finished TREND_SLICE-second slice of the clock:
    within a slice no cell changes (the running slice is not shown, its mean would change
    every tick); when a slice is over, the cells move one left. With ticks running late
    (1.2 s apart) no cell is left empty."""
    from bwmon.tui.app_table import TREND_SLICE, TREND_WIDTH
    from bwmon.tui.controller import RecordingController

    assert isinstance(controller, RecordingController)
    base = demo_snapshot(5, 3)
    name = base.apps[0].name
    feed = ManualFeed()
    app = BwmonApp(feed, controller, is_root=False)
    start = (base.time // TREND_SLICE + 1) * TREND_SLICE  # the start of a slice
    async with app.run_test(size=(120, 40)) as pilot:
        cells: list[str] = []
        times: list[float] = []
        n = 0
        while start + 1.2 * n < start + (TREND_WIDTH + 1) * TREND_SLICE:
            t = start + 1.2 * n
            # The first slice is the busiest, so the scale stays put while it is shown (the
            # only row: all rows share the scale).
            rate = 50_000.0 if t < start + TREND_SLICE else (n * 37 % 11 + 1) * 1000.0
            apps = (dataclasses.replace(base.apps[0], rate_in=rate, rate_out=0.0),)
            feed.push(dataclasses.replace(base, seq=n, time=t, apps=apps, elapsed=1.0))
            await pilot.pause()
            cells.append(app.table.get_cell(name, "trend").plain)
            times.append(t)
            n += 1
        assert len(cells[-1]) == TREND_WIDTH and " " not in cells[-1], repr(cells[-1])
        assert cells[-1][0] == "█"  # the busy first slice, now the oldest cell
        shifts = 0
        for i in range(1, len(cells)):
            if times[i] // TREND_SLICE == times[i - 1] // TREND_SLICE:
                assert cells[i] == cells[i - 1], (i, cells[i - 1], cells[i])
            else:  # a new slice: the cells moved one to the left
                assert cells[i][:-1] == cells[i - 1][1:], (i, cells[i - 1], cells[i])
                shifts += 1
        assert shifts == TREND_WIDTH


async def test_trend_has_no_holes_when_ticks_come_further_apart_than_a_slice(
        controller: object) -> None:
    """On a starved machine ticks can come 5 s apart, leaving 4-s slices without a tick of
    their own: the next tick's rate (its mean since the previous one) covers them, so the
    trend shows no hole."""
    from bwmon.tui.app_table import TREND_WIDTH
    from bwmon.tui.controller import RecordingController

    assert isinstance(controller, RecordingController)
    base = demo_snapshot(5, 3)
    feed = ManualFeed()
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(120, 40)) as pilot:
        for n in range(10):
            feed.push(dataclasses.replace(base, seq=n, time=base.time + 5.0 * n, elapsed=5.0))
            await pilot.pause()
        trend = app.table.get_cell(base.apps[0].name, "trend").plain
        assert len(trend) == TREND_WIDTH and " " not in trend, repr(trend)
