"""`bwmon doctor` on an 80-column terminal (a real pty) in a stock namespace: found trying it
as a new user. Check names longer than their column ("cap-dac-read-search") pushed their first
line out of line with the rest of the text, and the closing sentence ran past 80 columns."""

from __future__ import annotations

import re
import sys

import pytest

from tests.helpers.netns import NetNS
from tests.helpers.terminal import PtyApp

pytestmark = pytest.mark.privileged
FINDING = re.compile(r"^  (ok|warn|FAIL|upgr)\s+(\S+)\s+(\S)")


def test_doctor_text_lines_up_and_fits_80_columns() -> None:
    with NetNS(acct=False, track=False) as ns:
        app = PtyApp(["doctor"], size=(80, 24), answer=False,
                     command=(*ns.argv(sys.executable, "-m", "bwmon"),))
        try:
            assert app.wait_exit(60) is not None
        finally:
            app.close()
    lines = app.output.decode(errors="replace").replace("\r\n", "\n").splitlines()
    starts = set()
    for line in lines:
        if (m := FINDING.match(line)) is not None:
            starts.add(m.start(3))
    assert len(starts) == 1, "\n".join(lines)  # every message starts in one column
    column = starts.pop()
    for line in lines:
        if line.strip().startswith("fix:"):
            continue  # a command stays on one line, to be copied whole
        assert len(line) <= 80, "\n".join(lines)
        if line.startswith(" " * 3) and not FINDING.match(line):
            assert len(line) - len(line.lstrip()) == column, "\n".join(lines)
