"""ConntrackSource on fixture /proc trees and stand-in tools: file first, tool where no file,
and every failure as one message naming its fix."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from bwmon.core.sources import conntrack_read as conntrack_source
from bwmon.core.sources.conntrack_parse import parse_conntrack
from bwmon.core.sources.conntrack_read import ConntrackSource, SourceError

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "conntrack"


def proc_tree(tmp_path: Path, name: str | None, fixture: str = "acct.nf_conntrack") -> Path:
    (tmp_path / "net").mkdir()
    if name is not None:
        shutil.copy(FIX / fixture, tmp_path / "net" / name)
    return tmp_path


def fake_tool(tmp_path: Path, body: str) -> Path:
    """An executable standing in for `conntrack`; it records its argv in argv.txt."""
    tool = tmp_path / "fake-conntrack"
    tool.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv.txt\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool


async def test_reads_the_file_when_there_is_one(tmp_path: Path) -> None:
    root = proc_tree(tmp_path, "nf_conntrack")
    src = ConntrackSource(root, command="/nonexistent/conntrack")
    assert (src.kind, src.detail) == ("file", str(root / "net" / "nf_conntrack"))
    entries = await src.read()
    assert len(entries) == len(parse_conntrack((FIX / "acct.nf_conntrack").read_text()))


async def test_reads_the_old_ip_conntrack_file(tmp_path: Path) -> None:
    root = proc_tree(tmp_path, "ip_conntrack", "handwritten.nf_conntrack")
    src = ConntrackSource(root)
    assert src.kind == "file" and src.detail.endswith("ip_conntrack")
    assert any(e.orig.sport == 22 for e in await src.read())


async def test_runs_the_tool_where_no_file_exists(tmp_path: Path) -> None:
    tool = fake_tool(tmp_path, f"cat {FIX / 'acct.conntrack-L'}")
    src = ConntrackSource(proc_tree(tmp_path, None), command=str(tool),
                          argv_prefix=["env", "BWMON_TEST=1"])
    assert src.kind == "tool" and src.detail.startswith("env BWMON_TEST=1 ")
    entries = await src.read()
    assert len(entries) == len((FIX / "acct.conntrack-L").read_text().splitlines())
    assert all(e.ct_id is not None for e in entries)
    assert (tmp_path / "argv.txt").read_text().split() == ["-L", "-o", "extended,id"]


async def test_missing_tool_names_the_package(tmp_path: Path) -> None:
    src = ConntrackSource(proc_tree(tmp_path, None), command="/nonexistent/conntrack")
    with pytest.raises(SourceError) as err:
        await src.read()
    assert err.value.fix is not None and "apt-get install conntrack" in err.value.fix
    assert "modprobe nf_conntrack" in err.value.fix


async def test_tool_refused_says_run_as_root(tmp_path: Path) -> None:
    tool = fake_tool(tmp_path, "echo 'conntrack v1.4.7 (conntrack-tools): Operation failed: "
                               "sorry, you must be root or get CAP_NET_ADMIN capability to do "
                               "this' >&2; exit 1")
    src = ConntrackSource(proc_tree(tmp_path, None), command=[str(tool)])
    with pytest.raises(SourceError) as err:
        await src.read()
    assert err.value.fix is not None and "root" in err.value.fix
    assert "CAP_NET_ADMIN" in err.value.message


async def test_unreadable_file_says_run_as_root(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kw: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("aiofiles.open", refuse)  # imported where the file is read
    src = ConntrackSource(proc_tree(tmp_path, "nf_conntrack"))
    with pytest.raises(SourceError) as err:
        await src.read()
    assert err.value.fix == conntrack_source.ROOT_FIX and "permission denied" in str(err.value)


async def test_vanished_file_falls_back_to_the_tool(tmp_path: Path) -> None:
    root = proc_tree(tmp_path, "nf_conntrack")
    tool = fake_tool(tmp_path, f"cat {FIX / 'acct.conntrack-L'}")
    src = ConntrackSource(root, command=str(tool))
    (root / "net" / "nf_conntrack").unlink()
    assert len(await src.read()) > 10 and src.kind == "tool"


async def test_hanging_tool_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    tool = fake_tool(tmp_path, f"echo $$ > {pidfile}; exec sleep 30")
    src = ConntrackSource(proc_tree(tmp_path, None), command=str(tool), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(SourceError, match="took over"):
        await src.read()
    assert time.monotonic() - started < 5
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_cancelled_read_kills_the_tool(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    tool = fake_tool(tmp_path, f"echo $$ > {pidfile}; exec sleep 30")
    src = ConntrackSource(proc_tree(tmp_path, None), command=str(tool))
    task = asyncio.create_task(src.read())
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(ProcessLookupError):
        os.kill(int(pidfile.read_text()), 0)


def test_source_error_reads_as_one_line() -> None:
    err = SourceError("cannot read /proc/net/nf_conntrack", "run as root")
    assert str(err) == "cannot read /proc/net/nf_conntrack (fix: run as root)"
    assert "\n" not in str(err)
