"""Answers computed at most once per tick and off the event loop, shared by concurrent requests.

The expensive part of an answer (JSON encoding, the Prometheus exposition) runs in a worker
thread, one at a time, so a big answer delays the tick loop by a GIL switch, not by its whole
encoding time. Only the cheap copy of mutable state (`prepare`) runs in the loop itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

MAX_KEYS = 64

Work = Callable[[], bytes]


class TickCache:
    """Caches `bytes` answers by key until `marker()` says the state changed (a new tick)."""

    def __init__(self, changed: Callable[[], bool]) -> None:
        self._changed = changed
        self._answers: dict[Hashable, asyncio.Task[bytes]] = {}
        self._one_at_a_time = asyncio.Semaphore(1)

    async def get(self, key: Hashable, prepare: Callable[[], Work]) -> bytes:
        """The answer for `key`: cached, already being computed, or `prepare()`d and computed.

        `prepare` runs now, in the loop: it validates (raising to refuse the request) and copies
        what the work needs; the returned work runs in a thread.
        """
        if self._changed():
            self._answers.clear()
        task = self._answers.get(key)
        if task is None:
            work = prepare()
            if len(self._answers) >= MAX_KEYS:
                self._answers.clear()
            task = self._answers[key] = asyncio.ensure_future(self._run(work))
        return await asyncio.shield(task)

    async def _run(self, work: Work) -> bytes:
        async with self._one_at_a_time:
            return await asyncio.to_thread(work)
