"""Token bucket arithmetic on a simulated clock (no sleeping)."""

from __future__ import annotations

import pytest

from bwmon.core.pipes.shaping import TokenBucket, kbps_to_rate

MiB = 1 << 20


def greedy_transfer(bucket: TokenBucket, start: float, seconds: float, want: int = MiB) -> int:
    """Bytes a sender that always has data gets through in `seconds`, waiting as told."""
    now, sent = start, 0
    while now < start + seconds:
        grant, wait = bucket.take(want, now)
        sent += grant
        now += wait if not grant else 0.001  # a system call's worth of time per grant
    return sent


def test_config_kilobytes_are_1024_bytes_and_zero_means_unlimited() -> None:
    assert kbps_to_rate(100) == 102400
    assert kbps_to_rate(None) is None
    assert kbps_to_rate(0) is None


def test_unlimited_bucket_grants_everything_at_once() -> None:
    bucket = TokenBucket(None, now=0.0)
    assert bucket.take(5 * MiB, 0.0) == (5 * MiB, 0.0)


@pytest.mark.parametrize("rate", [1024.0, 100 * 1024.0, MiB, 50.0 * MiB])
def test_greedy_sender_is_held_at_the_rate_over_five_seconds(rate: float) -> None:
    bucket = TokenBucket(rate, now=0.0)
    sent = greedy_transfer(bucket, 0.0, 5.0)
    assert sent == pytest.approx(rate * 5, rel=0.05)


def test_an_idle_spell_does_not_bank_a_big_burst() -> None:
    bucket = TokenBucket(MiB, now=0.0)
    grant, _ = bucket.take(10 * MiB, 60.0)  # after a minute of silence
    assert 0 < grant <= 0.1 * MiB + 1
    assert greedy_transfer(bucket, 60.0, 5.0) <= 1.05 * 5 * MiB


def test_unused_grant_is_refunded_not_lost() -> None:
    bucket = TokenBucket(MiB, now=0.0)
    grant, _ = bucket.take(MiB, 0.05)
    bucket.refund(grant)  # the socket had nothing to read
    assert bucket.take(MiB, 0.05)[0] == grant


def test_rate_change_at_run_time_applies_to_following_grants() -> None:
    bucket = TokenBucket(MiB, now=0.0)
    first = greedy_transfer(bucket, 0.0, 2.0)
    bucket.set_rate(4 * MiB, now=2.0)
    second = greedy_transfer(bucket, 2.0, 2.0)
    bucket.set_rate(None, now=4.0)
    assert first == pytest.approx(2 * MiB, rel=0.05)
    assert second == pytest.approx(8 * MiB, rel=0.05)
    assert bucket.take(100 * MiB, 4.0) == (100 * MiB, 0.0)


def test_waits_are_short_so_limits_follow_settings_quickly() -> None:
    bucket = TokenBucket(10.0, now=0.0)  # 10 bytes/s: the next byte is far away
    grant, wait = bucket.take(1000, 0.0)
    assert grant == 0 and 0 < wait <= 0.1
