"""The process view names a process as auto-grouping names its app: a script by the script's
name (`traffic.py [15152]`, not `python [15152]`), anything else by its program."""

from __future__ import annotations

from bwmon.tui.app import process_rows
from tests.helpers.factories import app_row, process_info, process_row, snapshot


def test_a_script_is_named_by_its_script_and_a_program_by_itself() -> None:
    script = process_info("python", "/usr/bin/python3 traffic.py client", pid=15152,
                          exe_base="traffic.py")
    program = process_info("curl", "curl https://example.org", pid=7)
    bare = process_info("kworker/0:1", "[kworker/0:1]", pid=9, exe_base="")
    snap = snapshot(1, [app_row("traffic.py", processes=[script]),
                        app_row("curl", processes=[program]),
                        app_row("kworker/0:1", processes=[bare])],
                    processes=[process_row(script, "traffic.py"), process_row(program),
                               process_row(bare)])
    assert [r.name for r in process_rows(snap)] == [
        "traffic.py [15152]", "curl [7]", "kworker/0:1 [9]"]
