"""History.mean_rates: the mean of a row's rates over its last seconds (what rate sorts use)."""

from __future__ import annotations

from bwmon.core.history import History
from bwmon.core.model import AppRow
from tests.helpers.factories import app_row


def _row(name: str, rate_in: float, rate_out: float) -> AppRow:
    return app_row(name, rate_in, rate_out, flows=1)


def test_mean_of_the_points_of_the_last_seconds_only() -> None:
    h = History()
    for t in range(10):  # in = t, out = 10 t
        h.record(float(t), [_row("a", float(t), 10.0 * t)])
    assert h.mean_rates("a", 5.0) == (7.0, 70.0)  # t = 5 is not less than 5 s older than 9
    assert h.mean_rates("a", 0.5) == (9.0, 90.0)  # the newest point alone
    assert h.mean_rates("a", 100.0) == (4.5, 45.0)
    assert h.mean_rates("unknown", 5.0) is None


def test_a_row_that_paused_counts_only_its_recent_points() -> None:
    h = History()
    h.record(0.0, [_row("a", 1000.0, 0.0)])
    h.record(1.0, [_row("b", 1.0, 1.0)])  # a is not in this tick, nor the next ones
    h.record(20.0, [_row("a", 10.0, 0.0)])
    assert h.mean_rates("a", 5.0) == (10.0, 0.0)
