"""The Container/unit column: shown while some row runs in a container or unit, and the
filter (/) finds rows by container and unit names."""

from __future__ import annotations

import dataclasses

from bwmon.core.feed import ManualFeed
from bwmon.core.model import AppRow
from bwmon.tui.app import BwmonApp
from bwmon.tui.demo import demo_snapshot


def _placed(row: AppRow, container: str = "", unit: str = "") -> AppRow:
    procs = tuple(dataclasses.replace(p, container=container, unit=unit)
                  for p in row.processes)
    return dataclasses.replace(row, processes=procs)


async def test_column_appears_with_containers_and_filter_finds_them(
        app: BwmonApp, feed: ManualFeed) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.table
        assert "where" not in [c.key.value for c in table.ordered_columns]
        snap = demo_snapshot(31, 10)
        apps = [r for r in snap.apps if r.processes]
        first, second = apps[0], apps[1]
        placed = {first.name: _placed(first, container="shop/front-1/api"),
                  second.name: _placed(second, unit="nginx.service")}
        feed.push(dataclasses.replace(
            snap, apps=tuple(placed.get(r.name, r) for r in snap.apps)))
        await pilot.pause()
        assert [c.key.value for c in table.ordered_columns][:2] == ["app", "where"]
        assert table.get_cell(first.name, "where").plain == "shop/front-1/api"
        assert table.get_cell(second.name, "where").plain == "nginx.service"

        await pilot.press("slash", *"front-1")
        await pilot.pause()
        shown = [n for n in table.row_keys_in_order() if not n.startswith("(")]
        assert shown == [first.name]
        await pilot.press("escape")
        await pilot.pause()
        feed.push(demo_snapshot(32, 10))
        await pilot.pause()
        assert "where" not in [c.key.value for c in table.ordered_columns]
