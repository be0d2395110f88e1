"""Alert rules that match containers and systemd units (`container:RE`, `unit:RE`)."""

from __future__ import annotations

import dataclasses

from bwmon.core.alerts.rules import matches, rule_pattern
from tests.helpers.factories import app_row, process_info

API = dataclasses.replace(process_info("python3", "python3 api.py"), container="shop/front/api")
NGINX = dataclasses.replace(process_info("nginx", pid=2), unit="nginx.service")
ROW = app_row("python3", processes=[API])
WEB = app_row("nginx.service", processes=[NGINX])


def test_container_and_unit_rules_look_only_at_those_names() -> None:
    field, pattern = rule_pattern("container:^shop/")
    assert matches(pattern, ROW, field) and not matches(pattern, WEB, field)
    field, pattern = rule_pattern("unit:^nginx")
    assert matches(pattern, WEB, field) and not matches(pattern, ROW, field)
    field, pattern = rule_pattern("container:python3")  # the app name is not a container
    assert not matches(pattern, ROW, field)
    field, pattern = rule_pattern("api.py")  # a plain rule: app name and command lines
    assert field == "" and matches(pattern, ROW, field)
