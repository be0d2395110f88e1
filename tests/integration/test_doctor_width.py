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


ADVICE = ("run ", "set ", "apply ")  # fixes that are words to read, not a command to copy


def doctor_lines(prefix: tuple[str, ...] = ()) -> list[str]:
    """`bwmon doctor`'s lines on an 80-column pty, in a stock namespace."""
    with NetNS(acct=False, track=False) as ns:
        app = PtyApp(["doctor"], size=(80, 24), answer=False,
                     command=(*ns.argv(*prefix, sys.executable, "-m", "bwmon"),))
        try:
            assert app.wait_exit(60) is not None
        finally:
            app.close()
    return app.output.decode(errors="replace").replace("\r\n", "\n").splitlines()


def test_doctor_text_lines_up_and_fits_80_columns() -> None:
    assert_lines_up_and_fit(doctor_lines())


def test_advice_fixes_wrap_too() -> None:
    """Root without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN: the cap-bpf, ebpf and udp checks'
    fixes are advice ("run bwmon as root, or grant it ...", 120-150 characters), not commands:
    they wrap in the message column like the messages (user trial: they ran past 80 columns
    and the terminal folded them at column 0)."""
    lines = doctor_lines(("setpriv", "--bounding-set=-bpf,-perfmon,-sys_admin",
                          "--inh-caps=-bpf,-perfmon,-sys_admin"))
    assert any(line.strip().startswith("fix: run bwmon as root") for line in lines), lines
    assert_lines_up_and_fit(lines)


def assert_lines_up_and_fit(lines: list[str]) -> None:
    starts = set()
    for line in lines:
        if (m := FINDING.match(line)) is not None:
            starts.add(m.start(3))
    assert len(starts) == 1, "\n".join(lines)  # every message starts in one column
    column = starts.pop()
    for line in lines:
        if line.strip().startswith("fix:") and not line.strip()[5:].startswith(ADVICE):
            continue  # a command stays on one line, to be copied whole
        assert len(line) <= 80, "\n".join(lines)
        if line.startswith(" " * 3) and not FINDING.match(line):
            assert len(line) - len(line.lstrip()) == column, "\n".join(lines)
