"""The observers of the short-connection benchmark: bwmon instances, nethogs, the ground truth.

Each runs inside the client namespace for the whole benchmark and is read cumulatively: bwmon's
`--json` ticks (one app group per benchmark cell), nethogs' trace mode in total-bytes view
(`-t -v 2`), and conntrack's own counters (DESTROY events captured with `conntrack -E` plus a
final read of the table). CPU is utime+stime from /proc/PID/stat, over a process and its children.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bwmon.core.model import ConntrackEntry, FlowKey  # noqa: E402
from bwmon.core.sources.conntrack_events import parse_event_line  # noqa: E402
from bwmon.core.sources.conntrack_parse import parse_conntrack  # noqa: E402
from tests.helpers.netns import NetNS  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
# bwmon's attribution modes: name -> [general] settings
MODES = {
    "poll": {"events": "false", "ebpf": '"off"'},
    "events": {"events": "true", "ebpf": '"off"'},
    "ebpf": {"events": "true", "ebpf": '"on"'},
}


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu(root: int) -> float:
    """CPU seconds of `root` and its living descendants (bwmon's discovery worker and conntrack -E)."""
    parents: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))) is not None:
            parents.setdefault(st[0], []).append(int(name))
            cpu[int(name)] = st[1]
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(parents.get(pid, ()))
    return total


class Lines:
    """A child process whose stdout lines are collected by a thread as they come."""

    def __init__(self, ns: NetNS, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = ns.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
        self.lines: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(s, out), daemon=True)
                         for s, out in ((self.proc.stdout, self.lines),
                                        (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream: Iterable[str] | None, out: list[str]) -> None:
        for line in stream or ():
            out.append(line)

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self._threads:
            t.join(5)


class Bwmon(Lines):
    """`bwmon monitor --json` in the client namespace, in one attribution mode."""

    def __init__(self, ns: NetNS, mode: str, groups: dict[str, str], tmp: Path) -> None:
        cfg = ["[general]", *(f"{k} = {v}" for k, v in MODES[mode].items()), ""]
        for name, pattern in groups.items():
            cfg += ["[[groups]]", f'name = "{name}"', f"patterns = [{json.dumps(pattern)}]", ""]
        path = tmp / f"bwmon-{mode}.toml"
        path.write_text("\n".join(cfg))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        super().__init__(ns, [sys.executable, "-m", "bwmon", "monitor", "--json", "--config",
                              str(path), "--no-lookback", "--interval", "1"], env)
        self.mode = mode

    def ticks(self) -> int:
        return len(self.lines)

    def totals(self, upto: int | None = None) -> dict[str, int]:
        """Largest in+out total each app row reached in the first `upto` ticks (all by
        default; rows are cumulative, and may expire)."""
        best: dict[str, int] = {}
        for line in list(self.lines)[:upto]:
            try:
                snap = json.loads(line)
            except ValueError:
                continue
            for app in snap["apps"]:
                total = app["total_in"] + app["total_out"]
                best[app["name"]] = max(best.get(app["name"], 0), total)
        return best

    def sources(self) -> list[str]:
        for line in reversed(list(self.lines)):
            try:
                snap = json.loads(line)
            except ValueError:
                continue
            return [s["name"] for s in snap["sources"] if s["active"]]
        return []


class Nethogs(Lines):
    """nethogs in trace mode, total bytes per process, on the client namespace's veth."""

    def __init__(self, ns: NetNS, device: str) -> None:
        super().__init__(ns, ["nethogs", "-t", "-C", "-v", "2", "-d", "1", device])

    def totals(self) -> dict[str, float]:
        """Latest sent+received bytes per row ("pid:<n>" or "unknown TCP"/"unknown UDP")."""
        rows: dict[str, float] = {}
        for line in list(self.lines):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            name, sent, recv = parts
            prog = name.rpartition("/")[0]  # program/pid/uid
            prog, _, pid = prog.rpartition("/")
            key = prog if pid == "0" and prog.startswith("unknown") else f"pid:{pid}"
            try:
                rows[key] = max(rows.get(key, 0.0), float(sent) + float(recv))
            except ValueError:
                continue
        return rows


class Truth:
    """Conntrack's own final counters for every flow: DESTROY events, then a last table read."""

    def __init__(self, ns: NetNS) -> None:
        self.ns = ns
        self.events = Lines(ns, ["conntrack", "-E", "-e", "DESTROY", "-o", "extended,id",
                                 "-b", str(8 << 20)])

    def flows(self) -> dict[FlowKey, ConntrackEntry]:
        found: dict[FlowKey, ConntrackEntry] = {}
        table = parse_conntrack(self.ns.conntrack_text())
        events = [ev.entry for line in list(self.events.lines)
                  if (ev := parse_event_line(line)) is not None]
        for e in (*events, *table):
            old = found.get(e.key)
            if old is None or (e.orig_bytes or 0) >= (old.orig_bytes or 0):
                found[e.key] = e
        return found

    def bytes_to(self, flows: dict[FlowKey, ConntrackEntry], proto: str, port: int) -> int:
        return sum((e.orig_bytes or 0) + (e.reply_bytes or 0) for e in flows.values()
                   if e.proto == proto and e.orig.dport == port)

    def overruns(self) -> int:
        return sum("ENOBUFS" in line or "No buffer space" in line for line in self.events.err)
