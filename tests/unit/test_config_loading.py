"""Loading bwmon.toml: where it is found, precedence file < env < flags, and clean errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bwmon.core.config import loading as settings_io
from bwmon.core.config.errors import ConfigError
from bwmon.core.config.loading import default_config_path, find_config, load_settings
from bwmon.core.config.settings import Settings
from bwmon.core.config.toml_lines import TomlLines


def write(tmp_path: Path, text: str, name: str = "bwmon.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path | None, *, env: dict[str, str] | None = None, **kw: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env or {}, **kw)  # type: ignore[arg-type]
    return str(info.value)


# -- locating ----------------------------------------------------------------------------------


def test_no_file_anywhere_gives_defaults(tmp_path: Path) -> None:
    settings, path = load_settings(env={"HOME": str(tmp_path)})
    assert path is None
    assert settings == Settings()


def test_user_file_under_xdg_config_home_is_found(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    user = default_config_path(env)
    assert user == tmp_path / "xdg" / "bwmon" / "bwmon.toml"
    user.parent.mkdir(parents=True)
    user.write_text("[general]\ninterval = 3\n")
    settings, path = load_settings(env=env)
    assert path == user
    assert settings.general.interval == 3


def test_user_file_without_xdg_is_under_home_dot_config(tmp_path: Path) -> None:
    assert default_config_path({"HOME": str(tmp_path)}) == tmp_path / ".config/bwmon/bwmon.toml"


def test_bwmon_config_variable_names_the_file_and_must_exist(tmp_path: Path) -> None:
    named = write(tmp_path, "[general]\ninterval = 4\n", "elsewhere.toml")
    settings, path = load_settings(env={"BWMON_CONFIG": str(named), "HOME": str(tmp_path)})
    assert (path, settings.general.interval) == (named, 4)
    message = error_of(None, env={"BWMON_CONFIG": str(tmp_path / "gone.toml")})
    assert "gone.toml: no such file (named by BWMON_CONFIG)" in message


def test_explicit_config_wins_over_variable_and_missing_one_is_an_error(tmp_path: Path) -> None:
    explicit = write(tmp_path, "[general]\ninterval = 5\n", "a.toml")
    other = write(tmp_path, "[general]\ninterval = 6\n", "b.toml")
    settings, _ = load_settings(explicit, env={"BWMON_CONFIG": str(other)})
    assert settings.general.interval == 5
    assert "missing.toml: no such file" in error_of(tmp_path / "missing.toml")


def test_system_file_is_the_last_resort_and_the_user_file_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = write(tmp_path, "[general]\ninterval = 7\n", "system.toml")
    monkeypatch.setattr(settings_io, "SYSTEM_CONFIG", system)
    env = {"HOME": str(tmp_path / "home")}
    assert find_config(None, env) == (system, False)
    assert load_settings(env=env)[0].general.interval == 7
    user = default_config_path(env)
    user.parent.mkdir(parents=True)
    user.write_text("[general]\ninterval = 8\n")
    assert load_settings(env=env)[0].general.interval == 8


# -- precedence --------------------------------------------------------------------------------


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[general]\ninterval = 2\nlookback = false\nbandwidth = false\n"
        '[[groups]]\nname = "web"\npatterns = ["nginx"]\n',
    )
    env = {"BWMON_GENERAL__INTERVAL": "3", "BWMON_GENERAL__BANDWIDTH": "true"}
    settings, _ = load_settings(path, env=env, overrides={"general": {"interval": 4}})
    assert settings.general.interval == 4  # flag over env over file
    assert settings.general.bandwidth is True  # env over file
    assert settings.general.lookback is False  # file over default
    assert settings.general.history_seconds == 600  # default
    assert [g.name for g in settings.groups] == ["web"]  # untouched section kept


def test_env_variables_are_case_insensitive_and_take_json_for_lists(tmp_path: Path) -> None:
    env = {"bwmon_general__include": '["ssh", "scp"]', "BWMON_TUI__MOUSE": "0"}
    settings, _ = load_settings(env=env)
    assert settings.general.include == ["ssh", "scp"]
    assert settings.tui.mouse is False


def test_overrides_replace_lists_not_merge(tmp_path: Path) -> None:
    path = write(tmp_path, '[general]\ninclude = ["a", "b"]\n')
    settings, _ = load_settings(path, env={}, overrides={"general": {"include": ["c"]}})
    assert settings.general.include == ["c"]


# -- error shapes ------------------------------------------------------------------------------


def test_bad_value_names_file_line_key_expectation_and_found(tmp_path: Path) -> None:
    path = write(tmp_path, '# comment\n\n[general]\nlookback = true\ninterval = "fast"\n')
    assert error_of(path) == (
        f"{path}:5: general.interval: expected a finite number greater than 0.05 and at most 3600, "
        'found "fast"'
    )


def test_out_of_range_number(tmp_path: Path) -> None:
    path = write(tmp_path, "[tui]\nmax_rows = 5\n")
    assert error_of(path) == f"{path}:2: tui.max_rows: expected an integer at least 10, found 5"


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "[general]\ninterval = 1\nlookback = \n")
    message = error_of(path)
    assert message.startswith(f"{path}:3:12: TOML syntax error:")
    assert "\n" not in message


def test_unknown_key_says_unknown_setting_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "[general]\ninterval = 1\nintervall = 2\n")
    assert error_of(path) == (
        f"{path}:3: general.intervall: unknown setting (did you mean 'interval'?)"
    )
    path = write(tmp_path, "colour = 1\n")
    assert error_of(path) == f"{path}:1: colour: unknown setting"


def test_error_in_second_array_table_points_at_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[alerts]]\nname = "a"\nmatch = "x"\n\n[[alerts]]\nname = "b"\nmatch = "y"\nwindow = 0\n',
    )
    assert error_of(path) == (
        f"{path}:8: alerts[1].window: expected a finite number greater than 0, found 0"
    )


def test_missing_required_key_points_at_its_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[[alerts]]\nname = "a"\nmatch = "x"\n[[alerts]]\nname = "b"\n')
    assert error_of(path).startswith(f"{path}:4: alerts[1].match: required setting missing")


def test_pipe_without_target_names_what_is_missing(tmp_path: Path) -> None:
    path = write(tmp_path, '[[monitors]]\nname = "p"\ntype = "pipe"\nport = 2222\n')
    assert error_of(path) == f"{path}:1: monitors[0]: a pipe monitor needs target_host"


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ('[general]\ninclude = ["ok", "(unclosed"]\n', 2, "general.include[1]"),
        ('[general]\nexclude = [\n  "ok",\n  "[z-a]",\n]\n', 4, "general.exclude[1]"),
        (
            '[[groups]]\nname = "g"\npatterns = ["a", "b"]\n[[groups]]\nname = "h"\n'
            'patterns = [\n "x",\n "*bad",\n]\n',
            8,
            "groups[1].patterns[1]",
        ),
        ('[[alerts]]\nname = "a"\nmatch = "+x"\n', 3, "alerts[0].match"),
        ('[[monitors]]\nname = "m"\ninclude = ["(?P<x"]\n', 3, "monitors[0].include[0]"),
    ],
)
def test_invalid_regex_anywhere_is_reported_at_its_item(
    tmp_path: Path, text: str, line: int, key: str
) -> None:
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}:{line}: {key}: invalid regular expression ")


def test_several_problems_are_listed_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, "[tui]\nmax_rows = 1\n[general]\ninterval = 0\nbogus = 1\n")
    lines = error_of(path).splitlines()
    assert [line.split(":")[1] for line in lines] == ["2", "4", "5"]


def test_env_error_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[general]\ninterval = 2\n")
    message = error_of(path, env={"BWMON_GENERAL__INTERVAL": "fast"})
    assert message.startswith("BWMON_GENERAL__INTERVAL: general.interval: expected a finite number")
    assert message.endswith('found "fast"')


def test_env_bad_json_and_unknown_section_and_unknown_key(tmp_path: Path) -> None:
    assert error_of(None, env={"BWMON_GENERAL__INCLUDE": "ssh"}).startswith(
        "BWMON_GENERAL__INCLUDE: expected a JSON value"
    )
    assert error_of(None, env={"BWMON_GENRAL__INTERVAL": "2"}).startswith(
        "BWMON_GENRAL__INTERVAL: unknown setting"
    )
    assert error_of(None, env={"BWMON_GENERAL__INTERVALL": "2"}) == (
        "BWMON_GENERAL__INTERVALL: general.intervall: unknown setting (did you mean 'interval'?)"
    )


def test_variables_given_to_notification_commands_are_not_settings(tmp_path: Path) -> None:
    settings, _ = load_settings(env={"BWMON_APP": "firefox", "BWMON_TIME": "now"})
    assert settings == Settings()


def test_flag_error_names_the_flag(tmp_path: Path) -> None:
    message = error_of(
        None, overrides={"general": {"interval": 0}}, flag_names={"general.interval": "--interval"}
    )
    assert message.startswith(
        "--interval: general.interval: expected a finite number greater than 0.05")


@pytest.mark.parametrize("listen", ['"localhost:http"', '"::1:80"', '"[::1]"', "70000", '""'])
def test_bad_http_listen_is_reported_at_its_line(tmp_path: Path, listen: str) -> None:
    path = write(tmp_path, f"[http]\n\nlisten = {listen}\n")
    assert error_of(path).startswith(f"{path}:3: http.listen: ")


@pytest.mark.parametrize(
    ("listen", "stored"),
    [
        ("8000", "8000"),
        ('"0.0.0.0:9100"', "0.0.0.0:9100"),
        ('"[::1]:9100"', "[::1]:9100"),
        ('":9100"', ":9100"),
    ],
)
def test_good_http_listen_forms(tmp_path: Path, listen: str, stored: str) -> None:
    path = write(tmp_path, f"[http]\nlisten = {listen}\n")
    assert load_settings(path, env={})[0].http.listen == stored


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"[general]\n\xff\xfe = 1\n")
    assert error_of(binary) == f"{binary}:2: not UTF-8 text; save the file as UTF-8"
    assert error_of(tmp_path).endswith("is a directory, not a TOML file")


# -- the line finder ---------------------------------------------------------------------------


def test_toml_lines_follow_strings_inline_tables_and_dotted_keys() -> None:
    text = (
        'title = """\n[not.a.table]\nx = 1\n"""\n'  # 1-4: a multi-line string
        "general.interval = 2\n"  # 5
        "http = { listen = '80', token = \"a]b\" }\n"  # 6
        "[[groups]]\n"  # 7
        "name = 'x' # [comment]\n"  # 8
        'patterns = [ # open\n  \'a\',\n\n  "b\\"",\n]\n'  # 9-13
        '[[groups]]\n"name" = "y"\n'  # 14-15
    )
    lines = TomlLines(text)
    assert lines.find(("general", "interval")) == 5
    assert lines.find(("http", "token")) == 6
    assert lines.find(("not", "a", "table")) is None
    assert lines.find(("groups", 0, "patterns", 1)) == 12
    assert lines.find(("groups", 1, "name")) == 15
    assert lines.find(("groups", 1, "patterns")) == 14  # falls back to the table header
