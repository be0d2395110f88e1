"""bwmon's HTTP view: JSON API, Prometheus `/metrics` and a self-contained chart page.

A consumer of the core's snapshot feed (never of Textual). Start it with `start_http`, or with
`start_http_from_settings` from a Settings' `[http]` section.
"""

from bwmon.http.listen import HttpConfigError, is_loopback, parse_listen
from bwmon.http.server import HttpServer, Limits, start_http, start_http_from_settings

__all__ = [
    "HttpConfigError",
    "HttpServer",
    "Limits",
    "is_loopback",
    "parse_listen",
    "start_http",
    "start_http_from_settings",
]
