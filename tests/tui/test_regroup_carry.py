"""Regrouping carries rows over (issue 23, item 6). bwmon-tui in a real tmux measures two real
traffic clients in a private network namespace, each on its own row (auto-group off), with an
alert rule that fires for both and runs a command. Pressing `a` puts them (and the sink) into
one row, and so does saving a new group `web` for them in the group editor: that row starts
with their totals and their trend, the old rows do not stay behind as idle ghosts, and the
alert, already active for these processes, does not fire again (its command does not run
again) but shows on under the new name."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TRAFFIC
from tests.helpers.netns import NetNS
from tests.helpers.terminal import REPO, Tmux

pytestmark = pytest.mark.privileged
BARS = "▁▂▃▄▅▆▇█"
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
OLD_ROW = re.compile(r"^ (traffic\.py\[\d+\])\s")


def rows(screen: str) -> dict[str, list[str]]:
    """The app table's rows by name: their cells as shown."""
    found = {}
    for line in screen.splitlines()[3:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 7 and re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB)", cells[3]):
            found[cells[0]] = [*cells, line]
    return found


def bars(row: list[str]) -> int:
    """How many slices of a row's trend (after its Conn column) have a bar."""
    trend = row[-1][row[-1].rindex(row[6]) + len(row[6]):]
    return sum(trend.count(b) for b in BARS)


def size(cell: str) -> float:
    number, unit = cell.split()
    return float(number) * UNITS[unit]


# how to regroup (keys, each with what the screen shows once they took effect), the row the
# clients end up in, and whether the sink's row joins them
WAYS = {
    "a": ([(["a"], None)], "traffic.py", True),
    "editor": ([(["g"], "Add group"), (["C-n"], "group1"), (["-l", "web"], "web"),
                (["C-e"], "regex, e.g."), (["-l", "tag web-"], "tag web-"), (["C-s"], None)],
               "web", False),
}


class Session:
    """bwmon-tui in its own tmux pane, with its own alert command log (`fired`) and store."""

    def __init__(self, way: str, ns: NetNS, tmp: Path) -> None:
        self.keys, self.new, self.with_sink = WAYS[way]
        self.way = way
        self.fired = tmp / f"fired-{way}"
        config = tmp / f"bwmon-{way}.toml"
        config.write_text(
            '[general]\ninterval = 0.5\nauto_group = false\n'
            '[[alerts]]\nname = "budget"\nmatch = "--tag web"\nin_threshold = 1.0\n'
            f'window = 3.0\ncommand = ["sh", "-c", "echo $BWMON_APP >> {self.fired}"]\n'
            f'[history]\npath = "{tmp / way / "history.sqlite"}"\n')
        command = (f"ip netns exec {ns.name} env -u COLUMNS -u LINES TERM=xterm-256color "
                   f"PYTHONPATH={REPO} {sys.executable} -m bwmon.tui.main --config {config}")
        self.tmux = Tmux(f"bwmon-regroup-{os.getpid()}-{way}", command, (120, 40))
        self.problems: list[str] = []

    def fired_runs(self) -> list[str]:
        return self.fired.read_text().splitlines() if self.fired.exists() else []

    def ready(self) -> None:
        """Until its three old rows have fired (both clients') and have three trend bars."""
        self.tmux.wait(lambda s: len([n for n in rows(s) if OLD_ROW.match(f" {n} ")]) == 3,
                       timeout=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(self.fired_runs()) != 2:
            time.sleep(0.2)
        assert len(self.fired_runs()) == 2, (self.way, self.fired_runs())
        # three finished 4-second slices in every row's trend (what the new row must show)
        self.tmux.wait(lambda s: sum(bars(r) >= 3 for n, r in rows(s).items()
                                     if OLD_ROW.match(f" {n} ")) == 3, timeout=30)

    def regroup(self) -> None:
        """Press its keys; check the new row at once (its past and its total)."""
        self.runs = self.fired_runs()
        before = rows(self.tmux.wait(lambda s: sum(bars(r) >= 3 for n, r in rows(s).items()
                                                   if OLD_ROW.match(f" {n} ")) == 3, timeout=30))
        everyone = [n for n in before if OLD_ROW.match(f" {n} ")]
        self.old = everyone if self.with_sink else self.runs  # the clients' rows: those that fired
        assert len(everyone) == 3 and set(self.runs) <= set(everyone), before.keys()
        carried = sum(size(before[n][3]) for n in self.old)
        for key, shown in self.keys:  # on a loaded machine, keys must not outrun the screens
            self.tmux.keys(*key)
            if shown is not None:
                self.tmux.wait(lambda s, shown=shown: shown in s, timeout=10)
        screen = self.tmux.wait(lambda s: self.new in rows(s), timeout=10)
        row = rows(screen)[self.new]
        if bars(row) < 3:
            self.problems.append(f"no past in the new row's trend: {row[-1]!r}")
        if size(row[3]) < carried * 0.99:
            self.problems.append(f"the new row's total {row[3]} is below the old rows' "
                                 f"{carried / (1 << 20):.1f} MiB")
        self.regrouped = time.monotonic()

    def settled(self) -> str:
        """Its screen 3 s or more after the regroup: no ghosts, the alert carried, not fired
        again; the problems go to `problems`."""
        time.sleep(max(0.0, self.regrouped + 3 - time.monotonic()))
        screen = self.tmux.screen()
        ghosts = [n for n in rows(screen) if n in self.old]
        if ghosts:
            self.problems.append(f"old rows stayed: {ghosts}")
        header = screen.splitlines()[1]
        if f"ALERT {self.new} in" not in header:
            self.problems.append(f"the header lost the alert or kept old names: {header!r}")
        lines = self.fired_runs()
        if lines != self.runs:
            self.problems.append(f"the alert fired again: its command ran for "
                                 f"{lines[len(self.runs):]}")
        return screen


def test_regrouping_carries_totals_trend_and_alerts_to_the_new_row(tmp_path: Path) -> None:
    """Both ways at once, each in a bwmon-tui of its own watching the same clients: the wait
    for fired alerts and three trend slices (most of the time) is shared."""
    if shutil.which("tmux") is None:
        pytest.fail("needs tmux (Debian: tmux)", pytrace=False)
    with NetNS() as ns:
        sink = ns.popen([sys.executable, TRAFFIC, "sink", "--port", "5001"],
                        stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        for tag in ("web-1", "web-2"):
            ns.popen([sys.executable, TRAFFIC, "client", "--tag", tag, "--host", "127.0.0.1",
                      "--port", "5001", "--send", "100000", "--recv", "100000",
                      "--count", "100000", "--hold", "0.1"], stdout=subprocess.DEVNULL)
        sessions = [Session(way, ns, tmp_path) for way in WAYS]
        try:
            for session in sessions:
                session.ready()
            for session in sessions:
                session.regroup()
            report = []
            for session in sessions:
                screen = session.settled()
                if session.problems:
                    report += [f"{session.way}: {p}" for p in session.problems] + [screen]
            assert not report, "\n".join(report)
        finally:
            for session in sessions:
                session.tmux.kill()
