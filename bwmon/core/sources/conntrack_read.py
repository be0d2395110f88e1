"""Where the conntrack table is read from: `ConntrackSource`, once per tick.

The table file `/proc/net/nf_conntrack` (one aiofiles read) or, where the kernel has no such
file, `conntrack -L -o extended,id` run as an asyncio subprocess. Failures become a
`SourceError` that names the fix. Parsing is bwmon.core.sources.conntrack_parse's.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence
from pathlib import Path

from bwmon.core.model import ConntrackEntry, TableChange
from bwmon.core.sources.conntrack_parse import ConntrackParser
from bwmon.core.sources.tools import resolved


class SourceError(Exception):
    """The conntrack table cannot be read: what is wrong, and the command that fixes it."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message if fix is None else f"{message} (fix: {fix})")
        self.message = message
        self.fix = fix


ROOT_FIX = "run as root (sudo bwmon …), or grant bwmon the capability named"
TOOL_FIX = "apt-get install conntrack"


def tool_argv(command: str | Sequence[str], argv_prefix: Sequence[str] = ()) -> list[str]:
    """The argv that runs the conntrack tool: prefix (e.g. `ip netns exec NS`) + command, found
    in the sbin directories too."""
    cmd = shlex.split(command) if isinstance(command, str) else list(command)
    return [*argv_prefix, *resolved(cmd)]


def tool_problem(command: str | Sequence[str], stderr: str) -> SourceError:
    """Turn the conntrack tool's complaint into one message that names the fix."""
    text = " ".join(stderr.split()) or "no error message"
    low = text.lower()
    if "root" in low or "not permitted" in low or "can't open netlink" in low:
        return SourceError(f"the conntrack tool was refused (it needs CAP_NET_ADMIN): {text}",
                           ROOT_FIX)
    if "protocol not supported" in low or "not implemented" in low:
        return SourceError(f"the kernel does not offer conntrack over netlink: {text}",
                           "modprobe nf_conntrack_netlink")
    name = command if isinstance(command, str) else " ".join(command)
    return SourceError(f"`{name}` failed: {text}")


class ConntrackSource:
    """Reads the whole conntrack table once per tick, as parsed entries.

    `<proc_root>/net/nf_conntrack` (or the old `ip_conntrack`) is read with one aiofiles read;
    where neither exists, `conntrack -L -o extended,id` runs (it lists IPv4 and IPv6 flows).
    `kind` is "file" or "tool", `detail` the path or command line. Entries come from a
    `ConntrackParser`, so unchanged flows keep their entry object and carry no timeout.
    """

    def __init__(
        self,
        proc_root: Path = Path("/proc"),
        command: str | Sequence[str] = "conntrack",
        *,
        argv_prefix: Sequence[str] = (),
        timeout: float = 10.0,
        inline_max: int = 0,
    ) -> None:
        self.proc_root = Path(proc_root)
        # a table whose last read was shorter than this is read on the event loop itself: an
        # idle namespace's empty table costs a few microseconds, not three thread hand-offs
        self.inline_max = inline_max
        self._last_chars = 0
        self.command = command
        self.argv_prefix = tuple(argv_prefix)
        self.timeout = timeout
        self._parser = ConntrackParser()
        self.kind, self.detail = self._probe()

    def _probe(self) -> tuple[str, str]:
        for name in ("nf_conntrack", "ip_conntrack"):
            path = self.proc_root / "net" / name
            if path.exists():
                return "file", str(path)
        return "tool", shlex.join([*tool_argv(self.command, self.argv_prefix), *_LIST_ARGS])

    def retarget(self, proc_root: Path, argv_prefix: Sequence[str] = ()) -> None:
        """Read another procfs view of the same table from now on (a namespace's way in
        changed: the process it was read through exited)."""
        self.proc_root = Path(proc_root)
        self.argv_prefix = tuple(argv_prefix)
        self.kind, self.detail = self._probe()

    @property
    def change(self) -> TableChange:
        """How the last read differs from the one before (for FlowTracker.read)."""
        return self._parser.change

    async def read(self) -> list[ConntrackEntry]:
        """All entries now; raises SourceError (message + fix) when the table is unreadable."""
        if self.kind == "file":
            try:
                text = await self._read_file(Path(self.detail))
            except FileNotFoundError:
                self.kind, self.detail = self._probe()  # module unloaded? try the other way
                if self.kind == "file":
                    raise SourceError(f"{self.detail} vanished", "modprobe nf_conntrack") from None
                text = await self._run_tool()
        else:
            text = await self._run_tool()
        if len(text) < THREAD_PARSE_CHARS:
            return self._parser.parse(text)
        # A big table's parse takes a second or more (the first one, with nothing to reuse,
        # several): in a worker thread, bwmon-tui's screen sharing this loop still gets turns.
        return await asyncio.to_thread(self._parser.parse, text)

    async def _read_file(self, path: Path) -> str:
        try:
            if self._last_chars < self.inline_max:
                with open(path, encoding="ascii", errors="replace") as fi:
                    text = fi.read()
            else:
                import aiofiles  # here: the discovery worker imports this module, never reads

                async with aiofiles.open(path, encoding="ascii", errors="replace") as f:
                    text = await f.read()
            self._last_chars = len(text)
            return text
        except PermissionError:
            raise SourceError(f"cannot read {path}: permission denied (root only: needs "
                              "CAP_DAC_READ_SEARCH)", ROOT_FIX) from None
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise SourceError(f"cannot read {path}: {exc.strerror}") from None

    async def _run_tool(self) -> str:
        argv = [*tool_argv(self.command, self.argv_prefix), *_LIST_ARGS]
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            raise SourceError(
                f"no {self.proc_root}/net/nf_conntrack and no conntrack tool ({argv[0]})",
                f"{TOOL_FIX} (or modprobe nf_conntrack)",
            ) from None
        except PermissionError:
            raise SourceError(f"cannot run {argv[0]}: permission denied", ROOT_FIX) from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            raise SourceError(f"`{shlex.join(argv)}` took over {self.timeout:g} s") from None
        finally:
            if proc.returncode is None:  # timed out or cancelled: never leave it running
                proc.kill()
                await proc.wait()
        if proc.returncode != 0:
            raise tool_problem(self.command, err.decode(errors="replace"))
        return out.decode("ascii", errors="replace")


_LIST_ARGS = ("-L", "-o", "extended,id")
# Tables longer than this (about 1,000 lines) are parsed in a worker thread.
THREAD_PARSE_CHARS = 256 * 1024
