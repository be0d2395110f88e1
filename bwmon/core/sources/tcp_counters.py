"""TCP's own byte counters as a byte source: tcp_info through sock_diag, plus closing sockets.

Each read is a sock_diag dump of every TCP socket with its tcp_info (`bytes_received`,
`bytes_acked`: payload bytes since the socket was created) and the final counters of the
sockets destroyed since the previous read, from the sock_diag destroy broadcasts (read as they
arrive, so a burst of short connections does not overrun the receive buffer). No firewall rule,
no sysctl and no privilege is needed: the dump lists every user's sockets. The namespace
measured is bwmon's own, or with `netns` (a path opening another network namespace) that one:
its dump socket and broadcast subscription are created on the namespace thread
(namespaces.enter) at the first read, then used from any thread; `close` releases both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bwmon.core.model import SocketBytes, SourceStatus

if TYPE_CHECKING:
    from bwmon.core.sources.sock_diag import DestroyFeed, DumpSocket

NAME = "tcp_info"


class TcpCounters:
    """A SocketByteSource (bwmon.core.sources.byte_source) for TCP."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._closed: list[SocketBytes] = []
        self._error: str | None = None
        self._sockets = 0
        self._previous: dict[int, SocketBytes] = {}  # the last dump's records, by cookie
        self._feed: DestroyFeed | None = None
        self._feed_error: str | None = None
        self.dumper: DumpSocket | None = None  # the namespace's dump socket (None: bwmon's own)
        self._watching = False
        self._opened = netns is None
        self.denied = False
        if netns is None:
            self._subscribe()

    def _subscribe(self) -> None:
        """Join the destroy broadcasts of the calling thread's namespace."""
        from bwmon.core.sources.sock_diag import DestroyFeed, SockDiagError

        try:
            self._feed = DestroyFeed()
        except SockDiagError as exc:  # the dump still measures; closing sockets lose their tail
            self._feed_error = str(exc)

    def _open_here(self) -> None:
        """On the namespace thread, inside `netns`: the dump socket and the broadcasts."""
        from bwmon.core.sources.sock_diag import DumpSocket

        self.dumper = DumpSocket()
        self._subscribe()

    async def open(self) -> None:
        """Create the netlink sockets inside `netns` (once; raises OSError if it cannot)."""
        if self._opened:
            return
        from bwmon.core.namespaces.enter import enter

        try:
            await enter(self.netns or "", self._open_here)
        except PermissionError:
            self.denied = True  # no CAP_SYS_ADMIN: no way into the namespace
            raise
        self._opened = True

    @property
    def protos(self) -> frozenset[str]:
        return frozenset({"tcp"})

    def _watch(self) -> None:
        """Drain the broadcasts as they arrive (on the running loop), not once a tick."""
        if self._feed is None or self._watching:
            return
        try:
            asyncio.get_running_loop().add_reader(self._feed.fileno(), self._drain)
        except (RuntimeError, NotImplementedError, ValueError):
            return
        self._watching = True

    def _drain(self) -> None:
        from bwmon.core.sources.sock_diag import SockDiagError

        if self._feed is None:
            return
        try:
            self._closed.extend(self._feed.drain())
        except SockDiagError as exc:
            self._feed_error = str(exc)
            self._unwatch()
            self._feed.close()
            self._feed = None

    def _unwatch(self) -> None:
        if self._watching and self._feed is not None:
            with contextlib.suppress(RuntimeError, ValueError):
                asyncio.get_running_loop().remove_reader(self._feed.fileno())
        self._watching = False

    async def read(self) -> Sequence[SocketBytes] | None:
        """Every TCP socket's counters now, then the final counters of those destroyed since
        the last read (a socket destroyed during the dump may be in both: the closed one wins)."""
        from bwmon.core.sources.sock_diag import dump_tcp_bytes

        try:
            await self.open()
            self._watch()
            found = await asyncio.to_thread(dump_tcp_bytes, self._previous, self.dumper)
        except OSError as exc:
            self._error = f"sock_diag dump failed: {exc}"
            return None
        self._error = None
        self._sockets = len(found)
        self._drain()
        closed, self._closed = self._closed, []
        found.extend(closed)
        return found

    @property
    def lost(self) -> int:
        """Overruns of the destroy broadcasts' buffer so far (closing sockets' tails lost)."""
        return self._feed.lost if self._feed is not None else 0

    def status(self) -> SourceStatus:
        if self._error is not None:
            return SourceStatus(NAME, False, self._error, counts_bytes=True)
        detail = f"TCP payload bytes from tcp_info, {self._sockets} sockets"
        if self._feed_error is not None:
            detail += f"; closing sockets' last bytes not seen ({self._feed_error})"
        elif self.lost:
            detail += f"; {self.lost} overruns of the destroy broadcasts"
        return SourceStatus(NAME, True, detail, counts_bytes=True)

    def inodes(self) -> dict[int, tuple[int, bytes]]:
        """The cheap dump of its namespace's connected sockets (sock_diag.dump_tcp_inodes);
        blocking. Empty until the first read opened the namespace's socket."""
        from bwmon.core.sources.sock_diag import dump_tcp_inodes

        dumper = self.dumper  # (None after `close`: never dump the calling thread's instead)
        if self.netns is not None and dumper is None:
            return {}
        return dump_tcp_inodes(dumper)

    async def close(self) -> None:
        self._unwatch()
        if self._feed is not None:
            self._feed.close()
            self._feed = None
        if self.dumper is not None:
            self.dumper.close()
            self.dumper = None
        self._opened = self.netns is None
