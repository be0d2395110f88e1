"""Apps by `group_by` order: regex groups (matching command lines, containers or units),
container, systemd unit, basename."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bwmon.core.config.errors import ConfigError
from bwmon.core.config.loading import load_settings
from bwmon.core.config.settings import GeneralSettings, GroupSettings
from bwmon.core.grouping import Grouper, ProcessFilter
from bwmon.core.model import ProcessInfo, ProcKey


def proc(cmdline: str, container: str = "", unit: str = "", pid: int = 7) -> ProcessInfo:
    exe = cmdline.split()[0].rsplit("/", 1)[-1]
    return ProcessInfo(ProcKey(pid, 1), exe, cmdline, "root", 0, exe, container, unit)


NGINX_IN_WEB = proc("/usr/sbin/nginx -g daemon off;", container="web")
NGINX_SERVICE = proc("/usr/sbin/nginx -g daemon on;", unit="nginx.service")
SHELL = proc("bash", unit="session-3.scope")
DESKTOP = proc("/usr/bin/firefox", unit="user@1000.service")


def test_default_order_groups_container_unit_basename() -> None:
    g = Grouper([GroupSettings(name="Web", patterns=["daemon off"])], own_unit="")
    assert g.app_of(NGINX_IN_WEB) == "Web"  # a regex group wins over the container
    g.set_groups([])
    assert g.app_of(NGINX_IN_WEB) == "web"
    assert g.app_of(NGINX_SERVICE) == "nginx.service"
    assert g.app_of(DESKTOP) == "user@1000.service"
    assert g.app_of(SHELL) == "bash"  # a login session's scope is no service


def test_the_unit_bwmon_runs_in_groups_nothing() -> None:
    g = Grouper(own_unit="user@1000.service")
    assert g.app_of(DESKTOP) == "firefox"
    assert g.app_of(NGINX_SERVICE) == "nginx.service"


def test_another_order() -> None:
    g = Grouper(group_by=["unit", "basename"])
    assert g.app_of(NGINX_IN_WEB) == "nginx"
    assert g.app_of(NGINX_SERVICE) == "nginx.service"
    g = Grouper(group_by=["basename", "container"])
    assert g.app_of(NGINX_IN_WEB) == "nginx"


def test_patterns_can_match_container_and_unit_names() -> None:
    g = Grouper([GroupSettings(name="Shop", patterns=["container:^shop/"]),
                 GroupSettings(name="Proxies", patterns=["unit:^(nginx|haproxy)\\.service$"])])
    assert g.app_of(proc("python app.py", container="shop/front-1/api")) == "Shop"
    assert g.app_of(proc("python app.py", container="other")) == "other"
    assert g.app_of(NGINX_SERVICE) == "Proxies"
    assert g.app_of(proc("echo container:shop/ in argv only")) == "echo"


def test_filters_by_container_and_unit() -> None:
    f = ProcessFilter(include=["container:^web$", "unit:nginx"], exclude=["container:db"])
    assert f.shows("anything", "web", "")
    assert f.shows("anything", "", "nginx.service")
    assert not f.shows("anything", "db", "nginx.service")
    assert not f.shows("web", "", "")


def test_group_by_names_each_way_once() -> None:
    with pytest.raises(ValidationError, match="repeated: unit"):
        GeneralSettings(group_by=["unit", "groups", "unit"])
    with pytest.raises(ValidationError):
        GeneralSettings(group_by=["pods"])


def test_group_by_without_groups_while_groups_are_defined_is_an_error(tmp_path: Path) -> None:
    """Found trying group_by as a new user: `group_by = ["container", "basename"]` beside
    the example's [[groups]] made every group silently do nothing (the group editor's too).
    Said at load, where the setting is, with both ways out."""
    config = tmp_path / "bwmon.toml"
    config.write_text('[general]\ninterval = 1\ngroup_by = ["container", "basename"]\n\n'
                      '[[groups]]\nname = "web"\npatterns = ["nginx"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})
    text = str(caught.value)
    assert f"{config}:3: general.group_by" in text, text
    assert '"groups"' in text and "[[groups]]" in text, text
    config.write_text('[general]\ngroup_by = ["container", "basename"]\n')  # no groups: fine
    assert load_settings(config, env={})[0].general.group_by == ["container", "basename"]
