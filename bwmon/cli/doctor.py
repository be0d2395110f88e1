"""`bwmon doctor [--fix] [--json]`: check what measuring needs, print (or apply) the fixes.

Exit statuses: EXIT_STATUS, shown by --help and the man page.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

from bwmon.cli.options import settings_from_args
from bwmon.core.doctor import (
    BLOCKING,
    CONNTRACK_ADDS,
    TRACKING,
    advice,
    apply_fixes,
    blocking,
    diagnose,
    fixable,
    measuring,
    upgrade,
)
from bwmon.core.errors import UserError
from bwmon.core.model import Finding

MAX_ROUNDS = 3  # a fix can reveal the next (modprobe, then the sysctls it created)
EXIT_STATUS = (
    (0, "something is measured (checks marked upgr or warn may still fail)"),
    (2, "a user error: a bad configuration, or --fix without root"),
    (3, "nothing can be measured until the checks marked FAIL are fixed"),
)


def exit_status_text(statuses: tuple[tuple[int, str], ...]) -> str:
    """The epilog of a command's --help that lists its exit statuses."""
    return "exit status: " + "; ".join(f"{code} {meaning}" for code, meaning in statuses) + "."


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check capabilities, conntrack, accounting, tracking, events and eBPF; "
        "print the fixes",
        description="Check the prerequisites of measuring in this network namespace and print "
        "the exact command that fixes each failing check.",
        epilog=exit_status_text(EXIT_STATUS),
    )
    p.add_argument("--fix", action="store_true",
                   help="apply the fixes (needs root) and say what was changed")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--config", metavar="FILE", type=Path, default=None,
                   help="bwmon.toml to read general.proc_root, general.conntrack_command and "
                   "general.ebpf from")
    p.set_defaults(func=run)


def _paths(args: argparse.Namespace) -> tuple[Path, str, str]:
    """general.proc_root, general.conntrack_command and general.ebpf from bwmon.toml /
    BWMON_* variables."""
    general = settings_from_args(args).general
    return general.proc_root, general.conntrack_command, general.ebpf


def _namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/net")
    except OSError:
        return "unknown"


async def _doctor(args: argparse.Namespace) -> tuple[list[Finding], list[str]]:
    fix: bool = args.fix
    proc_root, conntrack, ebpf = _paths(args)
    findings = await diagnose(proc_root, conntrack_command=conntrack, ebpf_setting=ebpf)
    applied: list[str] = []
    if not fix:
        return findings, applied
    for _ in range(MAX_ROUNDS):
        if not any(fixable(f) for f in findings):
            break
        try:
            applied += await apply_fixes(findings)
        except PermissionError as exc:
            raise UserError(f"{exc}; nothing was changed") from None
        findings = await diagnose(proc_root, conntrack_command=conntrack, ebpf_setting=ebpf)
    return findings, applied


def _label(finding: Finding, findings: list[Finding]) -> str:
    if finding.ok:
        return "ok"
    if upgrade(finding, findings):
        return "upgr"
    essential = finding.check in BLOCKING or (
        finding.check in TRACKING and blocking([f for f in findings if f.check in TRACKING]))
    return "FAIL" if essential else "warn"


def _print_text(findings: list[Finding], applied: list[str], fix: bool) -> None:
    out = sys.stdout
    print(f"bwmon doctor: network namespace {_namespace()}", file=out)
    if applied:
        print("changed:", file=out)
        for line in applied:
            print(f"  {line}", file=out)
        if any("nf_conntrack_acct=1: ok" in line for line in applied):
            print("  note: flows that existed before accounting was switched on stay uncounted "
                  "until they are reopened", file=out)
    width = max(60, shutil.get_terminal_size().columns - 1)
    names = max((len(f.check) for f in findings), default=0)
    indent = " " * (2 + 5 + 1 + names + 1)  # every message starts in one column
    for f in findings:
        head = f"  {_label(f, findings):<5} {f.check:<{names}} "
        print(textwrap.fill(f.message, width, initial_indent=head, subsequent_indent=indent),
              file=out)
        if not f.ok and f.fix and advice(f.fix):  # words: wrapped like the message
            print(textwrap.fill(f"fix: {f.fix}", width, initial_indent=indent,
                                subsequent_indent=indent), file=out)
        elif not f.ok and f.fix:  # one line, however long: a command to copy whole
            print(f"{indent}fix: {f.fix}", file=out)
    if not measuring(findings):
        print("Nothing can be measured until the checks marked FAIL are fixed.", file=out)
    elif any(upgrade(f, findings) for f in findings):
        print(textwrap.fill("Measuring TCP from socket counters. The upgrades (upgr) add "
                            f"{CONNTRACK_ADDS}.", width), file=out)
    if any(fixable(f) for f in findings) and not fix:
        print("Run `bwmon doctor --fix` as root to apply the fixes shown.", file=out)


def run(args: argparse.Namespace) -> int:
    if args.fix and os.geteuid() != 0:
        raise UserError("doctor --fix needs root; nothing was changed: run "
                        "`sudo bwmon doctor --fix`")
    findings, applied = asyncio.run(_doctor(args))
    if args.json:
        print(json.dumps({
            "namespace": _namespace(),
            "blocking": not measuring(findings),
            "conntrack_blocked": blocking(findings),
            "upgrades": [f.check for f in findings if upgrade(f, findings)],
            "findings": [dataclasses.asdict(f) for f in findings],
            "applied": applied,
        }, indent=2))
    else:
        _print_text(findings, applied, args.fix)
    return 0 if measuring(findings) else 3
