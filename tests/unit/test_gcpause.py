"""The engine's tick holds automatic garbage collection back and gives it back afterwards."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from bwmon.core.runtime.gcpause import collection_deferred
from tests.unit.test_scale_tick import Tree, engine


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """Generations of the automatic collections that run while the test does."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    yield seen
    gc.callbacks.remove(record)


async def test_tick_runs_no_collection_until_it_ends(tmp_path: Path,
                                                       collections: list[int]) -> None:
    tree = Tree(tmp_path)
    for pid in range(101, 106):
        tree.process(pid, f"app{pid}")
    for sport in range(40000, 42000):  # thousands of flows: far over 700 allocations a tick
        tree.open(sport, 101 + sport % 5)
    tree.write()
    e = engine(tree)
    gc.collect()
    collections.clear()
    snap = await e.tick()
    # the tick allocated tens of thousands of objects (dozens of young collections at the
    # default threshold of 700); the one collection allowed is the deferred one, at its end
    assert collections in ([], [0])
    assert gc.isenabled()
    assert sum(a.flows for a in snap.apps) == 2000


def test_deferral_restores_a_disabled_collector_and_survives_errors() -> None:
    gc.disable()
    try:
        with collection_deferred():
            assert not gc.isenabled()
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), collection_deferred():
        assert not gc.isenabled()
        raise RuntimeError("tick failed")
    assert gc.isenabled()
