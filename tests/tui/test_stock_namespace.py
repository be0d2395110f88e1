"""bwmon-tui on a stock server: no conntrack rule, accounting off. In a real tmux pane, a
generator's TCP traffic shows on its own row within seconds (the sockets' counters), the header
says who measured it and that UDP is not measured, and names no source that delivers nothing;
no findings panel stands in the way."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.helpers.generators import uploading
from tests.helpers.netns import NetNS
from tests.helpers.terminal import Tmux
from tests.tui.test_ssh_e2e import tui_in

pytestmark = pytest.mark.privileged
PORT = 6011


def test_tcp_per_process_at_once_with_no_rule_and_no_accounting(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux (Debian: tmux)")
    config = tmp_path / "bwmon.toml"
    # conntrack events on, as by default: found in a user trial, the header said processes
    # were "found by polling, conntrack events" where conntrack tracks nothing (no events)
    config.write_text('[general]\nebpf = "off"\n\n[[groups]]\n'
                      'name = "stock-gen"\npatterns = ["--tag stock-gen "]\n')
    with NetNS(acct=False, track=False) as ns:
        uploading(ns, PORT, "stock-gen")  # 1 MB/s, paced
        command = tui_in(ns, config)
        def moving(screen: str) -> bool:
            return any("stock-gen" in line and ("KiB/s" in line or "MiB/s" in line)
                       for line in screen.splitlines())

        with Tmux(f"bwmon-stock-{os.getpid()}", command, (160, 40)) as tmux:
            screen = tmux.wait(moving, timeout=60)
            assert "measured by TCP sockets" in screen, screen
            assert "not measured: UDP" in screen, screen
            assert "Nothing can be measured" not in screen, screen
            found = next(line for line in screen.splitlines() if "processes found by" in line)
            assert found.split("processes found by ")[1].strip() == "polling", screen


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_header_keeps_who_measured_and_what_is_not_measured_at_80_and_120_columns(
        tmp_path: Path, size: tuple[int, int]) -> None:
    """Found trying bwmon-tui at 80x24 and 120x40: the header's first line was cut at
    "Total 12.4 MiB in…" and "│ measured…", so the shares and "not measured: UDP" (the reason
    a UDP app shows nothing) never showed. They must, whole, at the common sizes."""
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux (Debian: tmux)")
    config = tmp_path / "bwmon.toml"
    config.write_text('[general]\nevents = false\nebpf = "off"\n')
    port = PORT + size[0]
    with NetNS(acct=False, track=False) as ns:
        uploading(ns, port, "narrow-gen")  # 1 MB/s, paced
        command = tui_in(ns, config)

        def measured(screen: str) -> bool:
            return "TCP sockets" in screen.splitlines()[0] if screen.strip() else False

        with Tmux(f"bwmon-narrow-{os.getpid()}-{size[0]}", command, size,
                  env={"TERM": "xterm-256color"}) as tmux:
            screen = tmux.wait(measured, timeout=60)
            first = screen.splitlines()[0]
            assert "not measured: UDP" in first, screen
            assert "TCP sockets 100%" in first, screen
            assert "…" not in first, screen


def _rate(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"B/s": 1, "KiB/s": 1024, "MiB/s": 1 << 20, "GiB/s": 1 << 30}[unit]


def test_an_upload_over_loopback_is_out_in_the_header(tmp_path: Path) -> None:
    """Found trying bwmon-tui in a stock namespace: with the sockets' counters measuring, the
    header's In and Out of loopback traffic were the server's view (a client uploading at
    300 KiB/s showed as In), because the end counted was the one with the smaller port. The
    host total counts a flow from the side that opened it, as it does from conntrack."""
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux (Debian: tmux)")
    config = tmp_path / "bwmon.toml"
    config.write_text('[general]\nevents = false\nebpf = "off"\n')
    port = PORT + 7
    with NetNS(acct=False, track=False) as ns:
        uploading(ns, port, "uploader")  # 1 MB/s, paced
        command = tui_in(ns, config)
        pattern = re.compile(r"In ([\d.]+ \S+)\s+Out ([\d.]+ \S+)")

        def moving(screen: str) -> bool:
            m = pattern.search(screen.splitlines()[0]) if screen.strip() else None
            return m is not None and _rate(m.group(1)) + _rate(m.group(2)) > 500_000

        with Tmux(f"bwmon-upload-{os.getpid()}", command, (120, 40),
                  env={"TERM": "xterm-256color"}) as tmux:
            screen = tmux.wait(moving, timeout=60)
            m = pattern.search(screen.splitlines()[0])
            assert m is not None
            assert _rate(m.group(2)) > 10 * _rate(m.group(1)), screen


def test_the_header_follows_the_fixes_f_applied_at_once(tmp_path: Path) -> None:
    """User trial: after `f` applied the fixes (accounting, tracking rules, events) while
    bwmon-tui ran, the header kept saying "off: conntrack" and "not measured: UDP" until the
    next periodic check, up to a minute later, while conntrack already counted. The checks
    run again as soon as the fixes are applied."""
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux (Debian: tmux)")
    config = tmp_path / "bwmon.toml"
    config.write_text('[general]\nebpf = "off"\n')
    port = PORT + 9
    with NetNS(acct=False, track=False, events=2) as ns:
        uploading(ns, port, "fixed-gen")  # 1 MB/s, paced
        with Tmux(f"bwmon-fixes-{os.getpid()}", tui_in(ns, config), (120, 40),
                  env={"TERM": "xterm-256color"}) as tmux:
            tmux.wait(lambda s: "not measured: UDP" in s and "off: conntrack" in s, timeout=60)
            tmux.keys("f")
            tmux.wait(lambda s: "Run them (y)" in s, timeout=15)
            tmux.keys("y")
            screen = tmux.wait(lambda s: "Run them (y)" not in s, timeout=15)
            screen = tmux.wait(lambda s: "off: conntrack" not in s.splitlines()[0]
                               and "not measured" not in s.splitlines()[0], timeout=10)
            assert "measuring" in screen.splitlines()[0], screen
