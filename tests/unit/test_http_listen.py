"""`--http [ADDR:]PORT` parsing and the off-loopback token rule."""

from __future__ import annotations

import re

import pytest

from bwmon.core.errors import UserError
from bwmon.http.listen import HttpConfigError, is_loopback, parse_listen, require_token


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9100", ("127.0.0.1", 9100)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("[::1]:9100", ("::1", 9100)),
        ("[::]:80", ("::", 80)),
        ("localhost:8080", ("localhost", 8080)),
        (" 9100 ", ("127.0.0.1", 9100)),
    ],
)
def test_parse_listen_accepts_the_documented_forms(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "[ADDR:]PORT"),
        ("::1:9100", "brackets"),
        ("[::1]9100", "brackets"),
        ("[nope]:9100", "not an IPv6 address"),
        ("http", "port must be a number"),
        ("127.0.0.1:70000", "0-65535"),
        ("bad host!:80", "not an address"),
    ],
)
def test_parse_listen_rejects_with_a_hint(text: str, hint: str) -> None:
    with pytest.raises(HttpConfigError, match=re.escape(hint)):
        parse_listen(text)


def test_loopback_addresses_are_recognised() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("127.3.4.5")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("::")
    assert not is_loopback("10.1.2.3")


def test_off_loopback_without_token_names_both_fixes() -> None:
    with pytest.raises(HttpConfigError) as info:
        require_token("0.0.0.0", None)
    message = str(info.value)
    assert "http.token" in message and "BWMON_HTTP__TOKEN" in message
    # the CLI turns UserError into one line; callers that expect ValueError still catch it
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)


def test_token_or_loopback_is_enough() -> None:
    require_token("0.0.0.0", "s3cret")
    require_token("127.0.0.1", None)
    require_token("::1", None)
    with pytest.raises(HttpConfigError):
        require_token("::", "")
