"""Terminal output of bwmon-tui beside nethogs, on the same screen with real traffic (root only).

    python3 bench/bench_tui_output.py [--procs 50] [--size 120x40] [--seconds 20] [--warmup 5]
                                      [--rounds 1] [--baseline DIR] [--no-plain]
                                      [--record FRAMES.jsonl]
    python3 bench/bench_tui_output.py --replay TICKS.jsonl [--offline] [--baseline DIR] ...
    python3 bench/bench_tui_output.py --offline --demo ROWS [--size 120x40] [--baseline DIR] ...

Two private network namespaces joined by a veth pair: a sink in one, and PROCS client
processes in the other, each with a distinctive command line (`--tag app-NN`) and its own
app group, opening connection after connection so every row's rates change every second.
Then, one after the other with the traffic still running, `bwmon-tui` (ticking once a
second; with its diff output layer, then with BWMON_TUI_DIFF=0, i.e. Textual's own output)
and `nethogs -d 1` on the veth run in a pseudo-terminal of the given size; after the warm-up
it counts the bytes each writes to the terminal and its CPU time over `--seconds`. The
pseudo-terminal answers what a terminal answers (tests/helpers/terminal.py). bench_tui.py
measures bwmon-tui against a naive Textual table on made-up data; this one measures it against
the reference tool on a real workload.

`--baseline DIR` also measures the bwmon-tui of another checkout (e.g. `git archive` of the
previous commit unpacked in DIR), in the same rounds, for a before/after ratio on one load.
`--record FILE` runs bwmon-tui through tests/tui/record_frames.py, which writes every frame
(what Textual wrote and what was sent) as JSON lines, to split the bytes by screen region.

`--replay TICKS.jsonl` needs no root and no traffic: it replays snapshots recorded with
`bwmon run --json` (one per second, times shifted to now; `--save-ticks TICKS.jsonl` records
them on this workload) into this checkout's bwmon-tui and, with `--baseline DIR`, into the
other's. Every run sees the same data, so the before/after ratio does not depend on how the
machine's load starved the traffic clients.

`--offline` needs no pseudo-terminal and no clock: each checkout's bwmon-tui runs in-process
with a driver that feeds what Textual writes through its output layer (a tty with ONLCR, as
for TERM=xterm-256color), the ticks of `--replay` or the made-up data of `bwmon-tui --demo
ROWS` (`--demo`, in the repository) pushed one after the other with times 1 s apart; it
reports the bytes per tick over --seconds ticks after --warmup ticks. The same input gives
the same bytes every time, so a change of the output shows in seconds, exactly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers.netns import NetNS, link  # noqa: E402
from tests.helpers.terminal import PtyApp  # noqa: E402

TRAFFIC = str(REPO / "tests" / "helpers" / "traffic.py")
RECORDER = REPO / "tests" / "tui" / "record_frames.py"
# bwmon-tui imported from the checkout named by argv[1] (before the current directory).
BASELINE = ("import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from bwmon.tui.main import main; sys.exit(main(sys.argv[1:]))")


def groups_file(path: Path, procs: int) -> Path:
    """A bwmon.toml with one app group per client, so each client is a row."""
    path.write_text("".join(
        f'[[groups]]\nname = "app-{i:02d}"\npatterns = ["--tag app-{i:02d} "]\n\n'
        for i in range(procs)))
    return path


def clients(ns: NetNS, host: str, procs: int) -> list[subprocess.Popen[bytes]]:
    """PROCS processes, each looping over short TCP connections of its own size (the sink
    sends nothing back, so no client waits for a reply)."""
    return [ns.popen([sys.executable, TRAFFIC, "client", "--tag", f"app-{i:02d}", "--host", host,
                      "--port", "7001", "--proto", "tcp", "--send", str(4000 + 1500 * i),
                      "--count", "1000000", "--hold", "0.4"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i in range(procs)]


def measure(command: list[str], ready: bytes, size: tuple[int, int], warmup: float,
            seconds: float, env: dict[str, str]) -> tuple[float, float]:
    """(bytes written to the terminal per second, CPU ms per second) of one program."""
    app = PtyApp([], size=size, env=env, command=command)
    try:
        if not app.wait_for(ready, timeout=60):
            raise SystemExit(f"no picture from {command}: {bytes(app.output[-300:])!r}")
        app.read_for(warmup)
        proc = psutil.Process(app.proc.pid)
        procs = [proc, *proc.children(recursive=True)]  # `ip netns exec` execs; be safe
        cpu0 = sum(sum(p.cpu_times()[:2]) for p in procs)
        t0 = time.monotonic()
        written = app.read_for(seconds)
        elapsed = time.monotonic() - t0
        cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - cpu0
        return written / elapsed, cpu * 1000 / elapsed
    finally:
        app.close()


def replay_child(tree: str, ticks: str) -> None:
    """Child process: bwmon-tui of checkout `tree`, fed the snapshots of `ticks` once a
    second, in a loop (`bwmon run --json` lines; other lines are skipped)."""
    sys.path.insert(0, tree)
    import asyncio

    from bwmon.core.config.settings import Settings
    from bwmon.core.feed import ManualFeed
    from bwmon.tui.app import BwmonApp
    from bwmon.tui.controller import RecordingController

    records = [d for d in map(json.loads, Path(ticks).read_text().splitlines()) if "apps" in d]
    if os.environ.get("BWMON_BENCH_RECORD"):  # --record: this checkout's frames
        sys.path.insert(1, str(REPO))
        from tests.tui.record_frames import install
        install(Path(os.environ["BWMON_BENCH_RECORD"]))
    snapshot = _snapshot_maker()

    feed = ManualFeed()
    stop = asyncio.Event()

    async def run() -> None:
        seq = 0
        while not stop.is_set():
            feed.push(snapshot(records[seq % len(records)], seq, time.time()))
            seq += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    BwmonApp(feed, RecordingController(Settings(), []), engine_runner=run,
             engine_stopper=stop.set).run()


def offline_child(tree: str, ticks: str, size: str, count: int, skip: int) -> None:
    """Child process: checkout `tree`'s bwmon-tui, headless but with its output layer, fed
    the recorded ticks 1 s apart (snapshot times, not the clock); prints bytes per tick."""
    os.environ["TERM"] = "xterm-256color"
    os.environ["TZ"] = "UTC"
    time.tzset()
    sys.path.insert(0, tree)
    import asyncio
    import inspect

    from textual.drivers.headless_driver import HeadlessDriver

    from bwmon.core.config.settings import Settings
    from bwmon.core.feed import ManualFeed
    from bwmon.tui.app import BwmonApp
    from bwmon.tui.controller import RecordingController
    try:  # the output layer's package, or the modules it was before (a --baseline checkout)
        from bwmon.tui.output import driver as diff_driver
        from bwmon.tui.output.screen import ScreenDiff
    except ImportError:
        from bwmon.tui.terminal_screen import ScreenDiff  # type: ignore[no-redef]

        from bwmon.tui import diff_driver  # type: ignore[no-redef]

    cols, lines = (int(x) for x in size.split("x"))
    params = inspect.signature(ScreenDiff).parameters
    # A line feed as the start of the next row: a tty with ONLCR (the default) sends it CR LF.
    caps: dict[str, Any] = {"newline": True} if "newline" in params else {}
    if hasattr(diff_driver, "terminal_caps"):  # an older checkout: REP and tabs from terminfo
        found = diff_driver.terminal_caps("xterm-256color")
        if hasattr(diff_driver, "own_tab_stops"):  # own stops as that driver decides (env)
            found = found._replace(set_tabs=found.set_tabs
                                   and diff_driver.own_tab_stops(os.environ))
        caps.update({k: getattr(found, k) for k in ("rep", "tabs", "set_tabs") if k in params})
    sent: list[int] = []
    ticks_pushed: list[int] = []
    path = os.environ.get("BWMON_BENCH_RECORD")  # --record: every frame, with its tick
    record = open(path, "w", encoding="utf-8") if path else None  # noqa: SIM115

    class CountingDriver(HeadlessDriver):
        """A headless driver that still draws: frames go through ScreenDiff, bytes counted."""

        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            self.diff = ScreenDiff(**caps)
            self.pending: list[str] = ["\x1b[?25l"]  # as LinuxDriver starts

        @property
        def is_headless(self) -> bool:
            return False

        def write(self, data: str) -> None:
            self.pending.append(data)

        def flush(self) -> None:
            frame = "".join(self.pending)
            self.pending.clear()
            if frame:
                out = self.diff.feed(frame, (cols, lines))
                sent.append(len(out.encode()) + out.count("\n"))  # ONLCR: LF goes as CR LF
                if record is not None:
                    record.write(json.dumps({"raw": frame, "out": out, "size": (cols, lines),
                                             "tick": len(ticks_pushed) - 1}) + "\n")

    if ticks.startswith("demo:"):  # the made-up data of `bwmon-tui --demo ROWS`
        from bwmon.tui.demo import demo_snapshot

        rows = int(ticks.removeprefix("demo:"))
        records: list[Any] = list(range(skip + count))

        def snapshot(tick: Any, seq: int, now: float) -> Any:
            return demo_snapshot(tick, rows)
    else:
        records = [d for d in map(json.loads, Path(ticks).read_text().splitlines())
                   if "apps" in d]
        snapshot = _snapshot_maker()

    async def run() -> tuple[float, float]:
        feed = ManualFeed()
        app = BwmonApp(feed, RecordingController(Settings(), []), is_root=False)
        app.driver_class = CountingDriver
        t0 = 1_800_000_000.0
        total = 0
        cpu = 0.0
        async with app.run_test(headless=False, size=(cols, lines)) as pilot:
            await pilot.pause()
            for seq in range(skip + count):
                before, c0 = sum(sent), time.process_time()
                ticks_pushed.append(seq)
                feed.push(snapshot(records[seq % len(records)], seq, t0 + seq))
                await pilot.pause()
                await pilot.pause(0.05)
                if seq >= skip:
                    total += sum(sent) - before
                    cpu += time.process_time() - c0
        return total / count, cpu * 1000 / count

    per_tick, cpu_ms = asyncio.run(run())
    if record is not None:
        record.close()
    print(json.dumps({"bytes_per_tick": per_tick, "cpu_ms_per_tick": cpu_ms}))


def _snapshot_maker() -> Any:
    """snapshot(record, seq, time): a Snapshot from one `bwmon run --json` line."""
    from bwmon.core.model import (
        AppRow,
        Connection,
        HostTotals,
        ProcessInfo,
        ProcessRow,
        ProcKey,
        RowKind,
        Snapshot,
        SourceStatus,
        Totals,
        Unit,
    )

    def snapshot(d: dict[str, Any], seq: int, now: float) -> Snapshot:
        infos = {p["pid"]: ProcessInfo(ProcKey(p["pid"], p["start"]), p["name"], p["cmdline"],
                                       p["user"], p["uid"]) for p in d["processes"]}

        def row(a: dict[str, Any]) -> AppRow:
            return AppRow(a["name"], RowKind(a["kind"]), Unit(a["unit"]), a["rate_in"],
                          a["rate_out"], a["total_in"], a["total_out"], a["flows"],
                          tuple(infos[p] for p in a.get("pids", ()) if p in infos),
                          tuple(Connection(**c) for c in a.get("connections", ())))

        apps = [row(a) for a in d["apps"]]
        apps += [row(d[k]) for k in ("unattributed", "forwarded") if isinstance(d.get(k), dict)]
        procs = tuple(ProcessRow(infos[p["pid"]], p["app"], p["rate_in"], p["rate_out"],
                                 p["total_in"], p["total_out"], p["flows"])
                      for p in d["processes"])
        return Snapshot(seq, now, d["elapsed"], tuple(apps), procs, HostTotals(**d["host"]),
                        Totals(**d["filtered"]),
                        tuple(SourceStatus(**x) for x in d.get("sources", ())))

    return snapshot


def offline(args: argparse.Namespace) -> None:
    """Bytes per tick of this checkout and the baseline on the same ticks, no pty, no clock."""
    trees = {"bwmon-tui": REPO, "bwmon-tui of --baseline": args.baseline}
    workload = f"demo:{args.demo}" if args.demo else str(args.replay.resolve())
    results = {}
    for label, tree in trees.items():
        if tree is None:
            continue
        env = dict(os.environ)
        if args.record:  # FILE for this checkout, FILE.base for the baseline
            env["BWMON_BENCH_RECORD"] = str(args.record.resolve()) + (
                "" if tree == REPO else ".base")
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--offline-child",
             str(Path(tree).resolve()), workload, args.size,
             str(int(args.seconds)), str(int(args.warmup))],
            capture_output=True, text=True, check=True, env=env)
        results[label] = json.loads(done.stdout.splitlines()[-1])
    print(f"offline replay of {workload} ({args.size}, {int(args.seconds)} ticks after "
          f"{int(args.warmup)})\n")
    print("| program | bytes per tick | CPU ms per tick |")
    print("|---|---:|---:|")
    for label, r in results.items():
        print(f"| {label} | {r['bytes_per_tick']:.0f} | {r['cpu_ms_per_tick']:.1f} |")
    if len(results) == 2:
        ours, base = results.values()
        print(f"| ratio | {ours['bytes_per_tick'] / base['bytes_per_tick']:.2f} | "
              f"{ours['cpu_ms_per_tick'] / base['cpu_ms_per_tick']:.2f} |")


def replay(args: argparse.Namespace, size: tuple[int, int]) -> None:
    """The same recorded ticks into this checkout's bwmon-tui and the baseline's."""
    runs: dict[str, list[tuple[float, float]]] = {"ours": [], "plain": [], "hogs": [],
                                                  "base": []}
    trees = {"ours": REPO, "base": args.baseline}
    for _ in range(args.rounds):
        for key, tree in trees.items():
            if tree is not None:
                command = [sys.executable, str(Path(__file__).resolve()), "--replay-child",
                           str(tree.resolve()), str(args.replay.resolve())]
                env = ({"BWMON_BENCH_RECORD": str(args.record.resolve())}
                       if args.record and key == "ours" else {})
                runs[key].append(measure(command, b"app-", size, args.warmup, args.seconds,
                                         env))
    print(f"replay of {args.replay} ({args.size}, window {args.seconds:g} s after "
          f"{args.warmup:g} s warm-up, {args.rounds} round(s), "
          f"load average {os.getloadavg()[0]:.1f})\n")
    report(runs)


def mean(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return (sum(b for b, _ in samples) / len(samples), sum(c for _, c in samples) / len(samples))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--procs", type=int, default=50)
    ap.add_argument("--size", default="120x40")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure each program this many times, interleaved; report the mean")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--baseline", type=Path, help="another checkout's bwmon-tui to measure too")
    ap.add_argument("--no-plain", action="store_true",
                    help="skip the BWMON_TUI_DIFF=0 measurement")
    ap.add_argument("--record", type=Path, help="record bwmon-tui's frames to this file")
    ap.add_argument("--replay", type=Path, help="replay `bwmon run --json` ticks instead")
    ap.add_argument("--save-ticks", type=Path,
                    help="only write --seconds ticks of `bwmon run --json` on the workload")
    ap.add_argument("--demo", type=int, metavar="ROWS",
                    help="with --offline: bwmon-tui --demo's made-up data instead of --replay")
    ap.add_argument("--offline", action="store_true",
                    help="with --replay: in-process, no pty or clock; bytes per tick")
    ap.add_argument("--replay-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--offline-child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.replay_child:
        replay_child(*args.replay_child)
        return
    if args.offline_child:
        tree, ticks, size, count, skip = args.offline_child
        offline_child(tree, ticks, size, int(count), int(skip))
        return
    if (args.replay or args.demo) and args.offline:
        offline(args)
        return
    cols, lines = (int(x) for x in args.size.split("x"))
    if args.replay:
        replay(args, (cols, lines))
        return
    with NetNS(prefix="bwtuo") as a, NetNS(prefix="bwtuo") as b, \
            tempfile.TemporaryDirectory() as tmp:
        _, host_b = link(a, b, index=7)
        veth = a.run("ip", "-o", "link", "show", "type", "veth").stdout.split(":")[1].strip()
        veth = veth.split("@")[0]
        sink = b.popen([sys.executable, TRAFFIC, "sink", "--port", "7001", "--reply", "0"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs = clients(a, host_b, args.procs)
        config = groups_file(Path(tmp) / "bwmon.toml", args.procs)
        # Ticks every second, as nethogs -d 1 refreshes: no spacing out by cpu_budget.
        env = {"BWMON_GENERAL__INTERVAL": "1", "BWMON_GENERAL__CPU_BUDGET": "0"}
        try:
            time.sleep(3)
            if args.save_ticks:  # input for --replay: the same workload, as data
                with args.save_ticks.open("w") as out:
                    subprocess.run(a.argv(sys.executable, "-m", "bwmon", "run", "--config",
                                          str(config), "--json", "--interval", "1",
                                          "--count", str(int(args.seconds))),
                                   stdout=out, stderr=subprocess.DEVNULL, cwd=REPO, check=True)
                return
            start = ([str(RECORDER), str(args.record.resolve())] if args.record
                     else ["-m", "bwmon.tui.main"])
            tui = a.argv(sys.executable, *start, "--config", str(config))
            runs: dict[str, list[tuple[float, float]]] = {
                "ours": [], "plain": [], "hogs": [], "base": []}
            for _ in range(args.rounds):  # interleaved, so load changes hit all alike
                runs["ours"].append(measure(tui, b"app-", (cols, lines), args.warmup,
                                            args.seconds, env))
                if args.baseline:
                    runs["base"].append(measure(
                        a.argv(sys.executable, "-c", BASELINE, str(args.baseline.resolve()),
                               "--config", str(config)),
                        b"app-", (cols, lines), args.warmup, args.seconds, env))
                if not args.no_plain:
                    runs["plain"].append(measure(tui, b"app-", (cols, lines), args.warmup,
                                                 args.seconds, {**env, "BWMON_TUI_DIFF": "0"}))
                runs["hogs"].append(measure(a.argv("nethogs", "-d", "1", veth), b"NetHogs",
                                            (cols, lines), args.warmup, args.seconds, env))
        finally:
            for p in [sink, *procs]:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()
    print(f"{args.procs} client processes moving traffic, {args.size}, window {args.seconds:g} s "
          f"after {args.warmup:g} s warm-up, {args.rounds} round(s), "
          f"load average {os.getloadavg()[0]:.1f}\n")
    report(runs)


def report(runs: dict[str, list[tuple[float, float]]]) -> None:
    """The means as a Markdown table, with each round's bytes/s, and the ratios."""
    names = {"ours": "bwmon-tui (1 s ticks)", "base": "bwmon-tui of --baseline",
             "plain": "bwmon-tui, BWMON_TUI_DIFF=0 (Textual's output)",
             "hogs": "nethogs -d 1"}
    print("| program | bytes/s to the terminal | (each round) | CPU ms per second |")
    print("|---|---:|---:|---:|")
    for key, name in names.items():
        if runs[key]:
            b, c = mean(runs[key])
            rounds = " / ".join(f"{x:.0f}" for x, _ in runs[key])
            print(f"| {name} | {b:.0f} | {rounds} | {c:.1f} |")
    ours = mean(runs["ours"])
    for key, name in (("hogs", "**ratio bwmon-tui / nethogs**"),
                      ("base", "ratio bwmon-tui / baseline"),
                      ("plain", "ratio bwmon-tui / BWMON_TUI_DIFF=0")):
        if runs[key]:
            other = mean(runs[key])
            each = " / ".join(f"{o[0] / t[0]:.2f}" for o, t in zip(runs["ours"], runs[key],
                                                                   strict=True))
            print(f"| {name} | {ours[0] / other[0]:.2f} | {each} | {ours[1] / other[1]:.2f} |")


if __name__ == "__main__":
    main()
