"""A running `bwmon monitor --json` in a test's namespace, its snapshots read as they come.

One class for the integration tests that watch bwmon from outside, like a consumer would: it
starts bwmon in a namespace, collects each JSON line as a tick, waits for ticks, sources or any
condition, and stops it, failing on a non-zero exit or a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.helpers.generators import sink
from tests.helpers.netns import NetNS

REPO = Path(__file__).resolve().parents[2]
Tick = dict[str, Any]


def write_config(path: Path, general: Mapping[str, object] = {}, tags: Iterable[str] = (),
                 extra: str = "") -> Path:
    """A bwmon.toml: `[general]` settings, one group per generator tag (matching traffic.py's
    `--tag TAG `), then `extra` TOML. Readable by any user (tests run bwmon as nobody too)."""
    lines = ["[general]", *(f"{k} = {json.dumps(v)}" for k, v in general.items()), ""]
    for tag in tags:
        lines += ["[[groups]]", f"name = {json.dumps(tag)}",
                  f"patterns = [{json.dumps(f'--tag {tag} ')}]", ""]
    path.write_text("\n".join(lines) + extra)
    path.chmod(0o644)
    return path


class Monitor:
    """`bwmon monitor --json` in `ns` (behind `prefix`, e.g. setpriv); ticks as they come."""

    def __init__(self, ns: NetNS, config: Path, *, interval: float = 0.5,
                 prefix: Sequence[str] = (), env: Mapping[str, str] = {},
                 args: Sequence[str] = ()) -> None:
        self.proc = ns.popen(
            [*prefix, sys.executable, "-m", "bwmon", "monitor", "--json", "--config",
             str(config), "--no-lookback", "--interval", str(interval), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), **env})
        self.ticks: list[Tick] = []
        self.err = ""
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._readers:
            t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.ticks.append(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.err = self.proc.stderr.read()

    def _alive(self) -> None:
        if self.proc.poll() is not None:
            self._readers[1].join(5)
            raise AssertionError(f"bwmon exited: {self.err}")

    def wait_for(self, what: str, test: Callable[[Tick], bool],
                 timeout: float = 15.0) -> Tick:
        """The first tick from now on (or already read) that passes `test`."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for tick in self.ticks[seen:]:
                if test(tick):
                    return tick
            seen = len(self.ticks)
            self._alive()
            time.sleep(0.05)
        raise AssertionError(f"never saw {what} in {timeout} s; stderr: {self.err[-1500:]}")

    def wait_ticks(self, n: int, timeout: float = 30.0) -> Tick:
        """Until `n` more ticks have come; the last one."""
        want = len(self.ticks) + n
        self.wait_for(f"{n} more ticks", lambda _: len(self.ticks) >= want, timeout)
        return self.ticks[-1]

    def wait_active(self, source: str, timeout: float = 30.0) -> Tick:
        """Until a tick says `source` is active (eBPF: the probes are attached)."""
        return self.wait_for(f"source {source} active", lambda t: any(
            s["name"] == source and s["active"] for s in t["sources"]), timeout)

    def stop(self) -> list[Tick]:
        """Stop bwmon; every tick it wrote. Only the reader threads read its pipes:
        `communicate()` would read stdout too, and a line split between two readers came out
        cut in half."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        for t in self._readers:
            t.join(10)
        assert self.proc.returncode == 0, self.err
        assert "Traceback" not in self.err, self.err
        return self.ticks


def total(tick: Tick, name: str) -> int:
    """An app row's in+out bytes in one tick (0: no such row)."""
    row = next((a for a in tick["apps"] if a["name"] == name), None)
    return 0 if row is None else int(row["total_in"] + row["total_out"])


def peak_totals(ticks: Sequence[Tick]) -> dict[str, int]:
    """Each app's in+out bytes at its largest over the ticks (a row may leave before the end)."""
    best: dict[str, int] = {}
    for tick in ticks:
        for app in tick["apps"]:
            best[app["name"]] = max(best.get(app["name"], 0), total(tick, app["name"]))
    return best


@contextlib.contextmanager
def watching_a_bare_namespace(tmp_path: Path, prefix: str, port: int,
                              tags: Iterable[str] = ()) -> Iterator[tuple[Monitor, NetNS]]:
    """bwmon with eBPF on, in a namespace of its own (its "host"), measuring a bare child
    namespace (no conntrack rule, accounting off) in which a sink listens on `port`: (bwmon,
    child) once a process there is measured and two more ticks have passed. On leaving, four
    more ticks (the last sockets' bytes and closes reach one), then the sink and bwmon stop."""
    config = write_config(tmp_path / "bwmon.toml", {"events": False, "ebpf": "on"}, tags,
                          f'[namespaces]\nscope = "all"\ninclude = ["^{prefix}-"]\n')
    with NetNS(prefix="bwnh") as home, NetNS(prefix=prefix, acct=False, track=False) as box:
        bwmon = Monitor(home, config)
        try:
            bwmon.wait_active("ebpf")
            server = sink(box, port)
            bwmon.wait_for("a process in the namespace", lambda t: any(
                n["name"] == box.name and n["processes"] for n in t["namespaces"]))
            bwmon.wait_ticks(2)
            yield bwmon, box
            bwmon.wait_ticks(4)
            server.kill()
            server.wait()
        finally:
            bwmon.stop()
