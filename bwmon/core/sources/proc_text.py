"""What a process's /proc files say: its start time, real uid and command line, and the program
name auto-grouping gives it (the script, for an interpreter running one).

The files are parsed as bytes: a process names itself (comm, argv) and the kernel cuts a comm at
15 bytes, often mid-character, so strict UTF-8 text would fail on them and hide the process.
Text that is shown goes through `bwmon.core.sanitize`."""

from __future__ import annotations

import os
import re
import sys

from bwmon.core.sanitize import decode

__all__ = ["command_line", "parse_start", "parse_uid"]


def parse_start(stat: bytes) -> int:
    """Field 22 of /proc/PID/stat (start time in clock ticks); comm may hold spaces, ')' or
    bytes that are not UTF-8."""
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def parse_uid(status: bytes) -> int | None:
    """The real uid from /proc/PID/status ("Uid:\treal\teffective\tsaved\tfs")."""
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            return int(line.split()[1])
    return None


_MAX_ARGS = 1024  # arguments decoded at most (the line is cut at sanitize.MAX_TEXT anyway)
# Interpreters whose own name says little: auto-grouping names the script or module they run.
_INTERPRETER = re.compile(r"^(python|pypy|perl|ruby|node|nodejs|php|bash|sh|dash|zsh|java)"
                          r"[0-9.]*$")
# Interpreter options that take a value (the next argument is not the script).
_VALUE_OPTS = {"-W", "-X", "-I", "-r", "-cp", "-classpath", "--require"}


def _program_name(argv: list[str]) -> str:
    """The name auto-grouping uses: argv[0]'s basename, or for an interpreter running a script
    or module (`python3 -m http.server`, `perl x.pl`, `java -jar app.jar`) that script's."""
    # a process title ("sshd: root@pts/0", "nginx: worker process") names its program before
    # the colon: one app with the program's listener ("sshd"), not a second one ("sshd:")
    base = os.path.basename(argv[0].split(" ")[0]).lstrip("-")
    base = base.rstrip(":") or base
    if not _INTERPRETER.match(base):
        return base
    args = iter(argv[1:])
    for arg in args:
        if arg in ("-m", "-jar"):
            return os.path.basename(next(args, base))
        if arg == "-c" or (arg in ("-e", "-E") and not base.endswith("sh")):
            return base  # inline code: the interpreter is all we know
        if arg in _VALUE_OPTS:
            next(args, None)
            continue
        if not arg.startswith("-"):
            return os.path.basename(arg) or base
    return base


def command_line(raw: bytes, comm: str) -> tuple[str, str]:
    """(cmdline, exe_base): argv joined by spaces, "[comm]" when empty (kernel thread, zombie);
    exe_base is the program's name for auto-grouping (see `_program_name`). Each argument is
    cleaned (`bwmon.core.sanitize.decode`): no byte of argv reaches a terminal raw."""
    args = raw.rstrip(b"\0").split(b"\0") if raw.strip(b"\0") else []
    if not args:
        return f"[{comm}]", comm
    argv = [decode(a) for a in args[:_MAX_ARGS]]
    line = " ".join(argv)
    return sys.intern(line), sys.intern(_program_name(argv) or comm)
