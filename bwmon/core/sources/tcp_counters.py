"""TCP's own byte counters as a byte source: tcp_info through sock_diag, plus closing sockets.

Each read is a sock_diag dump of every TCP socket with its tcp_info (`bytes_received`,
`bytes_acked`: payload bytes since the socket was created) and the final counters of the
sockets destroyed since the previous read, from the sock_diag destroy broadcasts (read as they
arrive, so a burst of short connections does not overrun the receive buffer). No firewall rule,
no sysctl and no privilege is needed: the dump lists every user's sockets. The namespace
measured is the one the source was opened in (the broadcasts) and the reading thread's (the
dump): bwmon's own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from bwmon.core.model import SocketBytes, SourceStatus

NAME = "tcp_info"


class TcpCounters:
    """A SocketByteSource (bwmon.core.sources.byte_source) for TCP."""

    def __init__(self) -> None:
        from bwmon.core.sources.sock_diag import DestroyFeed, SockDiagError

        self._closed: list[SocketBytes] = []
        self._error: str | None = None
        self._lost_seen = 0
        self._sockets = 0
        self._previous: dict[int, SocketBytes] = {}  # the last dump's records, by cookie
        self._feed: DestroyFeed | None = None
        self._watching = False
        try:
            self._feed = DestroyFeed()
        except SockDiagError as exc:  # the dump still measures; closing sockets lose their tail
            self._feed_error: str | None = str(exc)
        else:
            self._feed_error = None

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

        self._watch()
        try:
            found = await asyncio.to_thread(dump_tcp_bytes, self._previous)
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

    async def close(self) -> None:
        self._unwatch()
        if self._feed is not None:
            self._feed.close()
            self._feed = None
