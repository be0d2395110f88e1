"""Why (unattributed) has bytes, as the detail pane says it: "another user's" (and what bwmon
lacks to map those) only where bwmon lacks it; judged by capabilities as the doctor does,
never by the uid. Found in a user trial: running as root, the pane still said "without root"."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from bwmon.core.capabilities import DAC_READ_SEARCH, SYS_PTRACE
from bwmon.core.feed import ManualFeed
from bwmon.core.model import UNATTRIBUTED, Finding, RowKind
from bwmon.tui.app import BwmonApp
from bwmon.tui.controller import RecordingController
from bwmon.tui.demo import demo_snapshot
from bwmon.tui.detail_pane import DetailPane
from tests.conftest import REPO


def checks(ptrace: bool) -> tuple[Finding, ...]:
    return (Finding(DAC_READ_SEARCH.check, True, "held"),
            Finding(SYS_PTRACE.check, ptrace, "held" if ptrace else "missing"))


async def shown_reason(controller: RecordingController, found: tuple[Finding, ...]) -> str:
    """The detail pane's text with (unattributed) selected, the snapshot carrying `found`."""
    base = demo_snapshot(5, 2)
    row = next(a for a in base.apps if a.kind == RowKind.UNATTRIBUTED)
    busiest = dataclasses.replace(row, rate_in=1e9)  # first in the table: selected
    feed = ManualFeed()
    feed.push(dataclasses.replace(base, apps=(busiest,), checks=found))
    app = BwmonApp(feed, controller, is_root=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.table.selected_key is not None
        assert app.table.shown_row(app.table.selected_key).name == UNATTRIBUTED
        return app.query_one("#detail", DetailPane).body_plain


async def test_the_pane_says_another_users_only_when_bwmon_cannot_map_them(
        controller: RecordingController) -> None:
    held = await shown_reason(controller, checks(ptrace=True))
    assert "no process could be found for" in held
    assert "root" not in held and "another user" not in held and "CAP_" not in held, held
    lacking = await shown_reason(controller, checks(ptrace=False))
    assert "another user's" in lacking and SYS_PTRACE.name in lacking, lacking
    assert DAC_READ_SEARCH.name not in lacking, lacking


REASON = ("from bwmon.tui.detail_pane import unattributed_reason; "
          "print(unattributed_reason(()))")


@pytest.mark.privileged
def test_before_the_first_checkup_the_process_own_capabilities_decide() -> None:
    """No checks yet: this process's effective capabilities, read as the doctor reads them.
    Root holds what it takes; root without CAP_SYS_PTRACE (dropped from its bounding set)
    does not, whatever its uid."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert os.geteuid() == 0
    root = subprocess.run([sys.executable, "-c", REASON], env=env, capture_output=True,
                          text=True, check=True).stdout
    assert "root" not in root and "another user" not in root, root
    dropped = subprocess.run(["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace",
                              sys.executable, "-c", REASON], env=env, capture_output=True,
                             text=True, check=True).stdout
    assert "another user's" in dropped and SYS_PTRACE.name in dropped, dropped
