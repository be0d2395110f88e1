"""The parts of Textual below its public API that bwmon-tui relies on are still there. After a
Textual upgrade that moves one, this fails naming the hook and the file that uses it, instead
of the feature quietly stopping (Ctrl+L doing nothing, the table's caches growing again)."""

from __future__ import annotations

import signal

from textual.app import App
from textual.cache import LRUCache
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.widgets import DataTable

from bwmon.tui.app_table import RENDER_CACHES
from bwmon.tui.output.driver import DiffDriver


async def test_private_textual_hooks_are_where_bwmon_tui_expects_them() -> None:
    moved: list[str] = []

    app: App[None] = App()
    async with app.run_test():
        if not isinstance(getattr(app, "_driver", None), Driver):
            moved.append("App._driver, the running driver (bwmon/tui/app.py: Ctrl+L redraw)")

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTSTP, signal.SIGCONT)}
    try:  # a driver's constructor takes over Ctrl+Z and fg: given back below
        driver = DiffDriver(app)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    if not isinstance(getattr(driver, "fileno", None), int):
        moved.append("LinuxDriver.fileno, the terminal's descriptor "
                     "(bwmon/tui/output/driver.py: the size a frame is diffed at)")
    for name in ("write", "flush"):  # every frame's output goes through these two
        if name not in vars(LinuxDriver) and name not in vars(Driver):
            moved.append(f"LinuxDriver.{name} (bwmon/tui/output/driver.py: the frame's output)")

    table: DataTable[str] = DataTable()
    for name in RENDER_CACHES:
        cache = getattr(table, name, None)
        if not isinstance(cache, LRUCache) or not isinstance(cache.maxsize, int):
            moved.append(f"DataTable.{name}, an LRUCache (bwmon/tui/app_table.py: its size cap)")

    assert not moved, "Textual moved what bwmon-tui relies on: " + "; ".join(moved)
