"""Control lines a running pipe child takes on stdin (applied to a relay that is not started)."""

from __future__ import annotations

from bwmon.core.pipes.child import apply_control
from bwmon.core.pipes.relay import Relay


def relay(**kw: object) -> Relay:
    return Relay("127.0.0.1", 0, "example.org", 80, use_splice=False, **kw)  # type: ignore[arg-type]


def test_limits_change_in_kilobytes_and_absent_keys_stay() -> None:
    r = relay(shape_in=10 * 1024.0, shape_out=20 * 1024.0)
    apply_control(r, b'{"shape_in": 100}\n')
    assert (r.bucket_in.rate, r.bucket_out.rate) == (100 * 1024, 20 * 1024)
    apply_control(r, b'{"max_connections": 3}\n')
    assert (r.bucket_in.rate, r.bucket_out.rate, r.max_connections) == (100 * 1024, 20 * 1024, 3)


def test_null_lifts_a_limit() -> None:
    r = relay(shape_out=1024.0)
    apply_control(r, b'{"shape_out": null}\n')
    assert r.bucket_out.rate is None


def test_a_malformed_line_is_reported_and_changes_nothing() -> None:
    r = relay(shape_in=2048.0)
    for line in (b"not json\n", b"[1, 2]\n", b'{"shape_in": "fast"}\n'):
        apply_control(r, line)
    assert r.bucket_in.rate == 2048
    events = r.report()["events"]
    assert len(events) == 3 and all(e.startswith("ignored control line") for e in events)
