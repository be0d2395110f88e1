"""ProcessTable on a fixture /proc tree: owners of socket inodes, PID reuse, process facts."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bwmon.core.grouping import Grouper
from bwmon.core.model import ProcKey
from bwmon.core.sources.proc_text import command_line, parse_start
from bwmon.core.sources.processes import MAX_SIGHTED, UNFOUND_RETRY_CALLS, ProcessTable

PROC = Path(__file__).resolve().parent.parent / "fixtures" / "proc"
STAT_4242 = (PROC / "4242" / "stat").read_text()


def make_process(
    root: Path,
    pid: int,
    start: int,
    sockets: list[int],
    *,
    argv: tuple[str, ...] = ("/usr/bin/worker", "--serve"),
    uid: int = 0,
    other_fds: int = 2,
) -> ProcKey:
    """A fake /proc/PID: stat with the given start time, cmdline, comm, status and fd links."""
    d = root / str(pid)
    d.mkdir()
    fields = STAT_4242[STAT_4242.rindex(")") + 2 :].split()
    fields[19] = str(start)
    (d / "stat").write_text(f"{pid} ({Path(argv[0]).name}) {' '.join(fields)}\n")
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (d / "comm").write_text(Path(argv[0]).name[:15] + "\n")
    (d / "status").write_text(f"Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    fd = d / "fd"
    fd.mkdir()
    for n in range(other_fds):
        os.symlink("/dev/null" if n % 2 else "pipe:[99]", fd / str(n))
    for n, inode in enumerate(sockets, start=other_fds):
        os.symlink(f"socket:[{inode}]", fd / str(n))
    return ProcKey(pid, start)


def add_socket(root: Path, pid: int, inode: int) -> None:
    fd = root / str(pid) / "fd"
    os.symlink(f"socket:[{inode}]", fd / str(len(os.listdir(fd)) + 10))


def end_process(root: Path, pid: int) -> None:
    """Remove /proc/PID (moved aside, so a recreated pid gets a new directory inode)."""
    graveyard = root.parent / f"{root.name}-dead"
    graveyard.mkdir(exist_ok=True)
    os.rename(root / str(pid), graveyard / f"{pid}-{len(os.listdir(graveyard))}")


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """An empty fake /proc, in RAM when possible: these tests create thousands of files."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        r = Path(tempfile.mkdtemp(prefix="bwmon-proc-", dir=shm))
        yield r
        shutil.rmtree(r, ignore_errors=True)
        shutil.rmtree(f"{r}-dead", ignore_errors=True)
    else:
        r = tmp_path / "proc"
        r.mkdir()
        yield r


# ---- parsing ---------------------------------------------------------------------------------


def test_start_time_survives_a_comm_with_spaces_and_parentheses() -> None:
    text = (PROC / "4343" / "stat").read_bytes()
    assert b"odd) (name" in text
    assert parse_start(text) == int(text.split()[22])  # field 22, one token later than usual


def test_command_line_of_kernel_thread_and_of_a_program() -> None:
    assert command_line(b"", "kthreadd") == ("[kthreadd]", "kthreadd")
    assert command_line(b"/usr/sbin/sshd\0-D\0\0", "sshd") == ("/usr/sbin/sshd -D", "sshd")
    assert command_line(b"-bash\0", "bash") == ("-bash", "bash")
    # process titles: the program before the colon, one app with its listener
    assert command_line(b"sshd: root@pts/0\0", "sshd") == ("sshd: root@pts/0", "sshd")
    assert command_line(b"nginx: worker process\0", "nginx") == ("nginx: worker process", "nginx")
    assert command_line(b"postgres: 16/main: checkpointer\0", "postgres")[1] == "postgres"


def test_info_from_recorded_process_files() -> None:
    table = ProcessTable(PROC)
    start = parse_start((PROC / "4343" / "stat").read_bytes())
    info = table.info(ProcKey(4343, start))
    assert info is not None
    assert info.name == "odd) (name"
    assert info.cmdline.endswith(" extra arg") and " -c " in info.cmdline
    assert info.exe_base == "python3" and info.user == "root" and info.uid == 0
    kthread = table.info(ProcKey(2, parse_start((PROC / "2" / "stat").read_bytes())))
    assert kthread is not None and kthread.cmdline == "[kthreadd]"


def test_info_refuses_a_key_whose_start_time_does_not_match() -> None:
    start = parse_start((PROC / "4343" / "stat").read_bytes())
    assert ProcessTable(PROC).info(ProcKey(4343, start + 1)) is None


def test_unknown_uid_is_shown_as_its_number(root: Path) -> None:
    key = make_process(root, 10, 500, [], uid=3999999)
    info = ProcessTable(root).info(key)
    assert info is not None and info.user == "3999999" and info.uid == 3999999


def test_running_lists_every_process() -> None:
    names = {i.name for i in ProcessTable(PROC).running()}
    assert names == {"kthreadd", "python3", "odd) (name"}


# ---- owners ----------------------------------------------------------------------------------


async def test_owners_maps_inodes_to_their_processes(root: Path) -> None:
    a = make_process(root, 100, 1000, [501, 502])
    b = make_process(root, 200, 2000, [601])
    make_process(root, 300, 3000, [])
    table = ProcessTable(root)
    assert await table.owners({501, 502, 601, 0}) == {501: a, 502: a, 601: b}


async def test_nothing_new_means_no_directory_read(root: Path) -> None:
    a = make_process(root, 100, 1000, [501])
    for pid in range(101, 140):
        make_process(root, pid, 1000 + pid, [pid * 10])
    table = ProcessTable(root)
    await table.owners({501})
    scans, reads = table.scans, table.dirs_read
    for _ in range(3):
        assert await table.owners({501}) == {501: a}
    assert (table.scans, table.dirs_read) == (scans, reads)


async def test_a_new_process_is_found_by_reading_only_its_directory(root: Path) -> None:
    for pid in range(100, 150):
        make_process(root, pid, 1000 + pid, [pid * 10])
    table = ProcessTable(root)
    await table.owners({1000})
    reads = table.dirs_read
    new = make_process(root, 151, 9000, [7777])
    assert await table.owners({1000, 7777}) == {1000: ProcKey(100, 1100), 7777: new}
    assert table.dirs_read == reads + 1


async def test_a_new_socket_in_a_known_process_is_found(root: Path) -> None:
    a = make_process(root, 100, 1000, [501])
    for pid in range(101, 120):
        make_process(root, pid, 1000 + pid, [pid * 10])
    table = ProcessTable(root)
    await table.owners({501})
    add_socket(root, 100, 502)
    assert await table.owners({501, 502}) == {501: a, 502: a}


async def test_a_process_that_just_opened_a_socket_is_looked_at_before_the_rest(
    root: Path,
) -> None:
    busy = make_process(root, 100, 1000, [501])
    for pid in range(101, 160):
        make_process(root, pid, 1000 + pid, [pid * 10])
    table = ProcessTable(root)
    await table.owners({501})
    add_socket(root, 100, 502)
    assert await table.owners({501, 502}) == {501: busy, 502: busy}  # found by a full stat pass
    checked, reads = table.dirs_checked, table.dirs_read
    add_socket(root, 100, 503)
    assert await table.owners({501, 502, 503}) == {501: busy, 502: busy, 503: busy}
    assert (table.dirs_checked - checked, table.dirs_read - reads) == (1, 1)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown of the fake fd directory needs root")
async def test_uid_hint_reads_that_users_processes_first(root: Path) -> None:
    for pid in range(100, 140):
        make_process(root, pid, 1000 + pid, [pid * 10])
    mine = make_process(root, 50, 900, [4242])
    os.chown(root / "50" / "fd", 1234, -1)  # /proc/PID/fd belongs to the process's user
    table = ProcessTable(root)
    assert await table.owners({4242}, uids={1234}) == {4242: mine}
    assert table.dirs_read == 1


async def test_pid_reuse_gives_a_different_owner(root: Path) -> None:
    old = make_process(root, 100, 1000, [501])
    table = ProcessTable(root)
    assert await table.owners({501}) == {501: old}
    end_process(root, 100)
    assert not table.alive(old)
    new = make_process(root, 100, 5000, [501])  # same pid (and even inode), new start time
    assert new != old and table.alive(new)
    assert await table.owners({501}) == {501: new}


async def test_dead_owner_hands_the_socket_to_the_remaining_holder(
    root: Path,
) -> None:
    parent = make_process(root, 100, 1000, [501])
    child = make_process(root, 150, 3000, [501])
    table = ProcessTable(root)
    # shared after fork: the most recently started holder owns it
    assert await table.owners({501}) == {501: child}
    end_process(root, 150)
    assert await table.owners({501}) == {501: parent}


async def test_shared_socket_goes_to_the_later_started_holder_not_the_higher_pid(
    root: Path,
) -> None:
    newer = make_process(root, 100, 9000, [501, 601])  # lower pid but started later (pid wrap)
    older = make_process(root, 200, 1000, [501, 701])
    got = await ProcessTable(root).owners({501, 601, 701})
    assert got == {501: newer, 601: newer, 701: older}


async def test_unplaceable_inode_is_not_searched_every_call(root: Path) -> None:
    for pid in range(100, 130):
        make_process(root, pid, 1000 + pid, [pid * 10])
    table = ProcessTable(root)
    assert await table.owners({1000, 424242}) == {1000: ProcKey(100, 1100)}
    scans = table.scans
    for _ in range(UNFOUND_RETRY_CALLS - 2):
        assert await table.owners({1000, 424242}) == {1000: ProcKey(100, 1100)}
    assert table.scans == scans
    # ... but it is retried now and then, and found once a process holds it
    late = make_process(root, 131, 9999, [424242])
    for _ in range(2):
        got = await table.owners({1000, 424242})
    assert got == {1000: ProcKey(100, 1100), 424242: late}


async def test_facts_of_an_owner_survive_its_exit(root: Path) -> None:
    key = make_process(root, 100, 1000, [501], argv=("/opt/short-lived", "--once"))
    table = ProcessTable(root)
    await table.owners({501})
    end_process(root, 100)
    info = table.info(key)
    assert info is not None and info.cmdline == "/opt/short-lived --once"


def test_a_process_gone_before_it_was_read_is_described_by_its_sighting(root: Path) -> None:
    """eBPF named it (comm, uid) as it used a socket; /proc had nothing by the time bwmon
    asked: it is shown by its comm, auto-grouped by it, with the user the kernel gave."""
    table = ProcessTable(root)
    gone = ProcKey(321, 4000)
    assert table.info(gone) is None
    table.sighted(gone, "bwgen-udp", 0)
    info = table.info(gone)
    assert info is not None
    assert (info.name, info.exe_base, info.cmdline, info.uid, info.user) == (
        "bwgen-udp", "bwgen-udp", "[bwgen-udp]", 0, "root")
    assert Grouper().app_of(info) == "bwgen-udp"


def test_proc_wins_over_a_sighting_while_the_process_runs(root: Path) -> None:
    key = make_process(root, 100, 1000, [501], argv=("/usr/bin/python3", "/opt/bwgen", "-x"))
    table = ProcessTable(root)
    table.sighted(key, "bwgen", 0)
    info = table.info(key)
    assert info is not None and info.cmdline == "/usr/bin/python3 /opt/bwgen -x"
    assert table._sighted == {}  # read from /proc: the sighting is not kept


def test_a_sighting_of_a_reused_pid_describes_the_process_it_saw(root: Path) -> None:
    make_process(root, 100, 2000, [], argv=("/usr/bin/other",))
    table = ProcessTable(root)
    seen = ProcKey(100, 1000)  # the pid now names a process started later
    table.sighted(seen, "bwgen", 1000)
    info = table.info(seen)
    assert info is not None and info.name == "bwgen" and info.uid == 1000


def test_sightings_kept_for_later_are_bounded(root: Path) -> None:
    table = ProcessTable(root)
    for pid in range(MAX_SIGHTED + 100):
        table.sighted(ProcKey(pid + 1, 1), "x", 0)
    assert len(table._sighted) == MAX_SIGHTED
    assert table.info(ProcKey(1, 1)) is None  # the oldest went first
    assert table.info(ProcKey(MAX_SIGHTED + 100, 1)) is not None


async def test_expire_forgets_dead_processes_but_keeps_what_is_shown(
    root: Path,
) -> None:
    keys = [make_process(root, pid, 1000 + pid, [pid * 10]) for pid in range(100, 110)]
    table = ProcessTable(root)
    await table.owners({pid * 10 for pid in range(100, 110)})
    for k in keys:
        table.info(k)
    for k in keys[:5]:
        end_process(root, k.pid)
    assert table.expire(now_keys={keys[0]}) == 4
    assert table.info(keys[0]) is not None  # still shown: kept
    assert table.info(keys[1]) is None  # dead and unshown: gone
    assert table.info(keys[7]) is not None


async def test_memory_stays_flat_under_process_churn(root: Path) -> None:
    table = ProcessTable(root)
    sizes = []
    for gen in range(6):
        keys = [make_process(root, 100 + i, gen * 1000 + i, [gen * 1000 + i + 1])
                for i in range(30)]
        got = await table.owners({k.start + 1 for k in keys})
        assert len(got) == 30
        for k in keys:
            end_process(root, k.pid)
        table.expire()
        sizes.append((len(table._info), len(table._owner), len(table._pids)))
    assert sizes[-1] == sizes[1] and max(max(s) for s in sizes) <= 30


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["/usr/sbin/nginx", "-g", "daemon off;"], "nginx"),
        (["python3", "tests/helpers/traffic.py", "sink"], "traffic.py"),
        (["/usr/bin/python3.11", "-u", "-m", "http.server", "8000"], "http.server"),
        (["python3", "-c", "print(1)"], "python3"),
        (["java", "-Xmx1g", "-jar", "/opt/app.jar"], "app.jar"),
        (["sh", "-e", "/etc/init.d/foo"], "foo"),
        (["perl", "-e", "print 1"], "perl"),
        (["node", "/srv/app/server.js"], "server.js"),
        (["-bash"], "bash"),
    ],
)
def test_auto_group_names_the_script_an_interpreter_runs(argv: list[str], name: str) -> None:
    cmdline, exe_base = command_line("\0".join(argv).encode() + b"\0", "comm")
    assert cmdline == " ".join(argv)
    assert exe_base == name
