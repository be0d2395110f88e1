"""The history store split by place under a real `bwmon run`: two generators of one app, one
in a cgroup shaped like a systemd-nspawn container's and one in a systemd service's, send real
TCP traffic in a stock namespace of the test's own (socket counters: payload bytes), and
`bwmon report --by container|unit` gives each place its generator's bytes."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers.cgroups import Cgroup
from tests.helpers.generators import HEADER, TRAFFIC, sink
from tests.helpers.monitor import write_config
from tests.helpers.netns import NetNS
from tests.integration.test_history_live import Bwmon

pytestmark = pytest.mark.privileged

ENV = {**os.environ, "PYTHONPATH": str(REPO)}
PORT = 9401


def report(store: Path, *argv: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bwmon", "report", "top", "--since", "1h",
                           "--json", "--store", str(store), *argv],
                          env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


LISTS = {"app": "apps", "container": "containers", "unit": "systemd_units"}


def totals(doc: dict, field: str) -> dict[str | None, int]:
    """{app, container or unit (None: the bytes without one): bytes in + out}"""
    return {row[field]: row["bytes_total"] for row in doc[LISTS[doc["by"]]]}


def generate_in(ns: NetNS, group: Cgroup, send: int, recv: int) -> int:
    """traffic.py's client moved into `group` before it runs (so bwmon first sees it there);
    returns its payload bytes, both ways."""
    enter = f"echo $$ > {group.dir}/cgroup.procs && exec \"$@\""  # before `ip netns
    # exec`, which mounts the namespace's own /sys (no cgroup file system in it)
    argv = ns.argv(sys.executable, TRAFFIC, "client", "--tag", "gen", "--host", "127.0.0.1",
                   "--port", str(PORT), "--send", str(send), "--recv", str(recv),
                   "--rate", "2000000")
    gen = subprocess.Popen(["sh", "-c", enter, "sh", *argv], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    out, err = gen.communicate(timeout=120)
    assert gen.returncode == 0 and "done" in out, err
    return send + HEADER + recv


def test_an_apps_bytes_are_recorded_per_container_and_unit(tmp_path: Path) -> None:
    tag = secrets.token_hex(3)
    box, unit = f"box{tag}", f"bwtest{tag}.service"
    store = tmp_path / "history.sqlite"
    cfg = write_config(tmp_path / "bwmon.toml", {"interval": 0.2, "events": False,
                                                 "ebpf": "off"}, ("gen",),
                       f'\n[history]\npath = "{store}"\nflush_seconds = 1.0\n')
    with NetNS(acct=False, track=False) as ns, \
            Cgroup(f"/machine.slice/systemd-nspawn@{box}.service/payload") as in_box, \
            Cgroup(f"/system.slice/{unit}") as in_unit:
        sink(ns, PORT)
        bwmon = Bwmon(ns, cfg)
        bwmon.wait_for(lambda: bwmon.ticks >= 3 and bool(bwmon.said("recording history")))
        boxed = generate_in(ns, in_box, 3_000_000, 200_000)
        served = generate_in(ns, in_unit, 1_000_000, 50_000)
        done = bwmon.ticks
        bwmon.wait_for(lambda: bwmon.ticks >= done + 5)  # the last closes reach a tick
        assert bwmon.stop() == 0  # a clean stop writes what is tallied
    by_app = totals(report(store), "app")
    by_container = totals(report(store, "--by", "container", "--app", "gen"), "container")
    by_unit = totals(report(store, "--by", "unit", "--app", "gen"), "systemd_unit")
    in_place = totals(report(store, "--container", box), "app")
    for got, want in ((by_app["gen"], boxed + served), (by_container[box], boxed),
                      (by_container[None], served), (by_unit[unit], served),
                      (by_unit[None], boxed), (in_place["gen"], boxed)):
        assert 0.99 * want <= got <= 1.01 * want, (got, want)
    # the places' parts add up to the app's bytes exactly
    assert sum(by_container.values()) == sum(by_unit.values()) == by_app["gen"]
    assert set(by_container) == {box, None} and set(by_unit) == {unit, None}
    assert set(in_place) == {"gen"}
