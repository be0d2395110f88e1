"""The shared settings flags: absent flags keep the file, given flags win, errors are clean."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bwmon.cli.options import add_settings_options, settings_from_args
from bwmon.core.errors import UserError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "legacy"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bwmon test")
    add_settings_options(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bwmon.toml"
    path.write_text(
        "[general]\ninterval = 2\nlookback = false\nbandwidth = false\nignore_local = true\n"
        'auto_group = false\ninclude = ["from-file"]\n[http]\nlisten = "9000"\n'
        '[[groups]]\nname = "toml group"\npatterns = ["x"]\n'
    )
    return path


def test_flags_not_given_leave_the_file_alone(config: Path) -> None:
    s = settings_from_args(parse("--config", str(config)))
    g = s.general
    assert (g.interval, g.lookback, g.bandwidth, g.ignore_local, g.auto_group) == (
        2,
        False,
        False,
        True,
        False,
    )
    assert g.include == ["from-file"]
    assert s.http.listen == "9000"


def test_given_flags_win_over_file_and_env(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BWMON_GENERAL__INTERVAL", "3")
    args = parse(
        "--config",
        str(config),
        "--interval",
        "0.5",
        "--bandwidth",
        "--auto-group",
        "--include",
        "a",
        "--include",
        "b",
        "--exclude",
        "c",
        "--http",
        "127.0.0.1:8080",
    )
    s = settings_from_args(args)
    assert s.general.interval == 0.5
    assert s.general.bandwidth is True and s.general.auto_group is True
    assert (s.general.include, s.general.exclude) == (["a", "b"], ["c"])
    assert s.http.listen == "127.0.0.1:8080"


def test_env_wins_over_file_when_no_flag(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BWMON_GENERAL__INTERVAL", "3")
    assert settings_from_args(parse("--config", str(config))).general.interval == 3


def test_turning_options_off_and_traffic_view() -> None:
    s = settings_from_args(parse("--no-lookback", "--traffic", "--no-auto-group", "--ignore-local"))
    g = s.general
    assert (g.lookback, g.bandwidth, g.auto_group, g.ignore_local) == (False, False, False, True)


def test_invalid_regex_flag_is_a_usage_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        parse("--include", "ok", "--exclude", "(oops")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --exclude: invalid regular expression '(oops'" in err
    assert "Traceback" not in err


def test_out_of_range_flag_names_the_flag() -> None:
    with pytest.raises(UserError) as info:
        settings_from_args(parse("--interval", "0"))
    assert str(info.value).startswith(
        "--interval: general.interval: expected a finite number greater")
    with pytest.raises(UserError, match=r"^--http: http.listen: expected \[ADDR:\]PORT"):
        settings_from_args(parse("--http", "nope"))


def test_bad_config_file_becomes_user_error_with_file_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[general]\n\ninterval = -1\n")
    with pytest.raises(UserError, match=rf"^{bad}:3: general.interval: expected"):
        settings_from_args(parse("--config", str(bad)))


def test_legacy_files_replace_the_matching_lists_and_warn_on_stderr(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = parse(
        "--config",
        str(config),
        "--app-config",
        str(FIXTURES / "group.sample.cfg"),
        "--monitor-config",
        str(FIXTURES / "monitors.sample.cfg"),
        "--notification-config",
        str(FIXTURES / "notifications.sample.cfg"),
    )
    s = settings_from_args(args)
    assert [g.name for g in s.groups] == ["Webserver", "Desktop", "Dev", "Test"]
    assert [m.name for m in s.monitors] == ["General", "SSH"]
    assert [a.name for a in s.alerts] == ["BitTorrent", "SSH", "wget"]
    assert s.general.interval == 2  # the rest of the file still applies
    err = capsys.readouterr().err
    assert "bwmon: warning: " in err and "stray backslash removed" in err


def test_only_the_named_legacy_list_is_replaced(config: Path) -> None:
    s = settings_from_args(
        parse(
            "--config",
            str(config),
            "--notification-config",
            str(FIXTURES / "notifications.sample.cfg"),
        )
    )
    assert [g.name for g in s.groups] == ["toml group"]
    assert len(s.alerts) == 3


def test_broken_legacy_file_is_user_error(tmp_path: Path) -> None:
    old = tmp_path / "apps.cfg"
    old.write_text("[Web]\nx=(\n")
    with pytest.raises(UserError, match=rf"^{old}:2: \[Web\] x: invalid regular expression"):
        settings_from_args(parse("--app-config", str(old)))
