"""Parsing `--http [ADDR:]PORT` and deciding whether an address stays on this host.

Binding off loopback is a deliberate choice: it needs a token, and the error says how to set one.
"""

from __future__ import annotations

import ipaddress
import socket

from bwmon.core.errors import UserError

DEFAULT_ADDR = "127.0.0.1"


class HttpConfigError(UserError, ValueError):
    """A bad `--http`/`http.listen` value or a missing token: one message naming the fix."""


def parse_listen(s: str) -> tuple[str, int]:
    """`"PORT"`, `"ADDR:PORT"` or `"[V6ADDR]:PORT"` → (address, port); default address 127.0.0.1."""
    text = s.strip()
    if not text:
        raise HttpConfigError("--http needs [ADDR:]PORT, e.g. 9100 or 127.0.0.1:9100")
    if text.startswith("["):
        addr, sep, port_text = text[1:].partition("]:")
        if not sep or not addr:
            raise HttpConfigError(
                f"--http {s!r}: write an IPv6 address in brackets with a port, e.g. [::1]:9100"
            )
    elif text.count(":") == 1:
        addr, _, port_text = text.partition(":")
        addr = addr or DEFAULT_ADDR
    elif ":" in text:
        raise HttpConfigError(
            f"--http {s!r}: write an IPv6 address in brackets with a port, e.g. [::1]:9100"
        )
    else:
        addr, port_text = DEFAULT_ADDR, text
    try:
        port = int(port_text)
    except ValueError:
        raise HttpConfigError(
            f"--http {s!r}: the port must be a number 0-65535, e.g. 9100"
        ) from None
    if not 0 <= port <= 65535:
        raise HttpConfigError(f"--http {s!r}: the port must be a number 0-65535, e.g. 9100")
    if not text.startswith("["):
        _check_host(s, addr)
    else:
        try:
            ipaddress.IPv6Address(addr)
        except ValueError:
            raise HttpConfigError(f"--http {s!r}: {addr!r} is not an IPv6 address") from None
    return addr, port


def _check_host(original: str, addr: str) -> None:
    try:
        ipaddress.ip_address(addr)
        return
    except ValueError:
        pass
    if not addr.replace("-", "").replace(".", "").isalnum():
        raise HttpConfigError(f"--http {original!r}: {addr!r} is not an address or host name")


def is_loopback(addr: str) -> bool:
    """True when every address `addr` resolves to is a loopback address (127/8, ::1)."""
    try:
        return ipaddress.ip_address(addr).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(addr, None, proto=socket.IPPROTO_TCP)
    except OSError:
        raise HttpConfigError(
            f"--http: cannot resolve host name {addr!r}; use an address such as 127.0.0.1"
        ) from None
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def require_token(addr: str, token: str | None) -> None:
    """Refuse to serve off loopback without a bearer token."""
    if token:
        return
    if not is_loopback(addr):
        raise HttpConfigError(
            f"--http on {addr} would expose bwmon beyond this host without a token: set "
            "http.token in bwmon.toml or the environment variable BWMON_HTTP__TOKEN, "
            "or bind to 127.0.0.1"
        )
