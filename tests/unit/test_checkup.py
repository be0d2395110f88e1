"""The doctor's checks repeated while bwmon runs: a fix or a new problem is noticed, logged,
and reflected in `blocking` (what the screen's findings and `bwmon_up` follow)."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from bwmon.core.capabilities import ALL_BITS
from bwmon.core.checkup import Checkup
from bwmon.core.doctor import diagnose
from bwmon.core.eventlog import EventLog
from bwmon.core.model import Level
from tests.unit.test_doctor import IPTABLES_TRACKING, NoEbpf, proc_tree, rulesets


async def test_a_fix_made_while_running_is_noticed_and_logged(tmp_path: Path) -> None:
    proc = proc_tree(tmp_path / "proc", acct="0")
    log = EventLog()
    checkup = Checkup(proc, "true", log, wall=lambda: 5.0, diagnose=functools.partial(
        diagnose, proc, ruleset_commands=rulesets(tmp_path, IPTABLES_TRACKING,
                                                  IPTABLES_TRACKING),
        ebpf=NoEbpf(), caps=ALL_BITS))
    await checkup.run_once()
    assert checkup.blocking and not log.tail()  # the first run's findings are the engine's
    changes: list[bool] = []
    task = asyncio.create_task(checkup.run_forever(lambda: changes.append(checkup.blocking),
                                                   interval=0.05))
    try:
        await asyncio.sleep(0.2)
        assert changes == []  # nothing changed: nothing reported
        (proc / "sys/net/netfilter/nf_conntrack_acct").write_text("1\n")  # the admin fixes it
        await asyncio.wait_for(_until(lambda: bool(changes)), 5)
        assert changes == [False] and not checkup.blocking
        fixed = log.tail()[-1]
        assert fixed.level is Level.INFO and fixed.message.startswith("accounting ok now")
        (proc / "sys/net/netfilter/nf_conntrack_acct").write_text("0\n")  # and undoes it
        await asyncio.wait_for(_until(lambda: len(changes) == 2), 5)
        broken = log.tail()[-1]
        assert broken.level is Level.WARNING and "nf_conntrack_acct=1" in broken.message
    finally:
        task.cancel()


async def _until(check: object) -> None:
    while not check():  # type: ignore[operator]
        await asyncio.sleep(0.02)
