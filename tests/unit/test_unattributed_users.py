"""(unattributed) says whose sockets its bytes are, where the kernel gave their uid: beside the
row in `bwmon monitor`'s table and in the TUI's detail pane (JSON: the row's `uids`)."""

from __future__ import annotations

from dataclasses import replace

from bwmon.cli.headless import format_table
from bwmon.core.model import UNATTRIBUTED, RowKind
from bwmon.tui.detail_pane import detail_body
from tests.helpers.factories import app_row, snapshot

ROW = app_row(UNATTRIBUTED, total_in=4000, total_out=9000, kind=RowKind.UNATTRIBUTED,
              flows=0)


def test_the_table_names_the_users_of_unattributed_sockets() -> None:
    lines = format_table(snapshot(1, [replace(ROW, uids=(0, 1000))]), bandwidth=False)
    row = next(line for line in lines if UNATTRIBUTED in line)
    assert row.endswith("(unattributed) [uid 0, 1000]")
    alone = format_table(snapshot(1, [ROW]), bandwidth=False)  # the kernel gave none
    assert next(line for line in alone if UNATTRIBUTED in line).endswith("(unattributed)")


def test_the_detail_pane_names_them_too() -> None:
    """By name where the system has one (found trying it as root: "uid 0" made a reader
    look up who uid 0 is)."""
    unnamed = 4_242_999  # no user has it
    text = [t.plain for t in detail_body(replace(ROW, uids=(0, unnamed)))]
    assert f"Their sockets' users: root (uid 0), uid {unnamed}" in text
    assert not any("users" in t for t in (t.plain for t in detail_body(ROW)))
