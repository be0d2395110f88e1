"""The socket table as one source: netlink sock_diag when it works, /proc/net/* otherwise,
plus this namespace's own addresses (refreshed now and then)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bwmon.core.attribution.attributor import SocketLookup
from bwmon.core.model import SocketEntry

# Re-read the namespace's addresses every this many table reads.
ADDRESS_REFRESH = 30


class SocketSource:
    """`netns` (a path that opens another network namespace) makes the sock_diag dump run
    inside that namespace (bwmon.core.namespaces.enter); `proc_root` is then /proc/PID of a
    process in it, for the /proc/net fallback and the addresses."""

    def __init__(self, proc_root: Path = Path("/proc"), netns: str | None = None) -> None:
        self.proc_root = proc_root
        self.netns = netns
        # sock_diag answers for the namespace bwmon runs in; only use it for the real /proc
        self.kind = "sock_diag" if proc_root == Path("/proc") or netns else "procfs"
        self.local_addresses: frozenset[str] = frozenset()
        self._reads = 0

    async def entries(self) -> list[SocketEntry]:
        """The table's rows. The netlink dump and the parse run in a worker thread: on a busy
        host they take seconds, and bwmon-tui's screen shares this event loop."""
        from bwmon.core.sources.socket_table import read_proc_sockets

        if self.kind == "sock_diag":
            from bwmon.core.sources.sock_diag import dump_sockets

            try:
                if self.netns is not None:
                    from bwmon.core.namespaces.enter import enter

                    return await enter(self.netns, dump_sockets)
                return await asyncio.to_thread(dump_sockets)
            except OSError:
                self.kind = "procfs"
        return await read_proc_sockets(self.proc_root)

    async def index(self) -> SocketLookup:
        """A SocketIndex of the current table (and fresh local addresses when due)."""
        from bwmon.core.sources.addresses import read_local_addresses
        from bwmon.core.sources.socket_table import SocketIndex

        if self._reads % ADDRESS_REFRESH == 0:
            self.local_addresses = await asyncio.to_thread(read_local_addresses, self.proc_root)
        self._reads += 1
        return await asyncio.to_thread(SocketIndex, await self.entries())
