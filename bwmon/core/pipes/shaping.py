"""Token bucket that holds a pipe's relayed rate at a limit (bwmon 1.1's `shape_threshold`).

One bucket per pipe and direction, shared by all of that pipe's connections. The arithmetic
(`take`, `refund`, `set_rate`) is pure: time is an argument. `acquire` (threads) and
`acquire_async` (asyncio) wrap it with the right kind of sleep. Limits are bytes/s internally;
configs give kB/s with 1 kB = 1024 B.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable

from bwmon.core.config.limits import check_limit

KB = 1024

# Tokens never pile up beyond this many seconds of traffic: a burst after an idle spell stays
# small against the 5 % tolerance over 5 s the manual promises.
BURST_SECONDS = 0.1
# Grants below this many seconds of traffic are not worth a system call; wait for more.
MIN_GRANT_SECONDS = 0.01
# The longest single sleep, so a rate changed at run time applies quickly.
MAX_WAIT = 0.1
# The shortest, so rounding never turns a wait into a busy loop.
MIN_WAIT = 0.001


def kbps_to_rate(kbps: float | None) -> float | None:
    """A config's kB/s (1 kB = 1024 B) as bytes/s; None or 0 means unlimited, and anything
    `check_limit` refuses raises ValueError."""
    return float(check_limit(kbps)) * KB if kbps else None


class TokenBucket:
    """Grants bytes at `rate` bytes/s (None = unlimited); thread-safe."""

    def __init__(self, rate: float | None, now: float) -> None:
        self._lock = threading.Lock()
        self._rate: float | None = None
        self._tokens = 0.0
        self._stamp = now
        self.set_rate(rate, now)

    @property
    def rate(self) -> float | None:
        return self._rate

    def set_rate(self, rate: float | None, now: float) -> None:
        """Change the limit; takes effect for the next grant. None or 0 lifts it."""
        with self._lock:
            self._refill(now)
            if rate and not (math.isfinite(rate) and rate > 0):
                raise ValueError(f"a rate limit must be finite and above 0, not {rate:g} B/s")
            self._rate = float(rate) if rate else None
            if self._rate is not None:
                self._tokens = min(self._tokens, self._capacity())

    def _capacity(self) -> float:
        assert self._rate is not None
        return max(self._rate * BURST_SECONDS, 1.0)

    def _min_grant(self, want: int) -> float:
        assert self._rate is not None
        return min(float(want), max(self._rate * MIN_GRANT_SECONDS, 1.0), self._capacity())

    def _refill(self, now: float) -> None:
        if self._rate is not None and now > self._stamp:
            self._tokens = min(self._capacity(), self._tokens + (now - self._stamp) * self._rate)
        self._stamp = max(self._stamp, now)

    def take(self, want: int, now: float) -> tuple[int, float]:
        """Grant up to `want` bytes now: (granted, 0.0), or (0, seconds to wait before retrying).

        Unlimited buckets grant everything. Unused grant must be handed back with `refund`.
        """
        with self._lock:
            if self._rate is None:
                return want, 0.0
            self._refill(now)
            need = self._min_grant(want)
            if self._tokens >= need:
                grant = min(want, int(self._tokens))
                self._tokens -= grant
                return grant, 0.0
            return 0, min(MAX_WAIT, max(MIN_WAIT, (need - self._tokens) / self._rate))

    def refund(self, unused: int) -> None:
        """Give back bytes granted but not sent (the socket had less to read)."""
        if unused > 0:
            with self._lock:
                if self._rate is not None:
                    self._tokens = min(self._capacity(), self._tokens + unused)

    def acquire(
        self,
        want: int,
        stop: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> int:
        """Block the calling thread until some bytes are granted; 0 when `stop` is set."""
        while not stop.is_set():
            grant, wait = self.take(want, clock())
            if grant:
                return grant
            stop.wait(wait)
        return 0

    async def acquire_async(self, want: int, clock: Callable[[], float] = time.monotonic) -> int:
        """Like `acquire`, for coroutines: sleeps without blocking the event loop."""
        while True:
            grant, wait = self.take(want, clock())
            if grant:
                return grant
            await asyncio.sleep(wait)
