"""`bwmon config`: convert round-trips, show tells origins, path and check answer correctly."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest

from bwmon.cli import main
from bwmon.cli.options import legacy_overrides
from bwmon.core.config.loading import load_settings
from bwmon.core.config.settings import Settings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "legacy"
LEGACY = [
    "--app-config", str(FIXTURES / "group.sample.cfg"),
    "--monitor-config", str(FIXTURES / "monitors.sample.cfg"),
    "--notification-config", str(FIXTURES / "notifications.sample.cfg"),
]  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["config", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_convert_round_trips_to_the_same_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "convert", *LEGACY)
    assert code == 0
    assert "stray backslash removed" in err
    converted = tmp_path / "bwmon.toml"
    converted.write_text(out)
    loaded, _ = load_settings(converted, env={})
    args = argparse.Namespace(
        app_config=FIXTURES / "group.sample.cfg",
        monitor_config=FIXTURES / "monitors.sample.cfg",
        notification_config=FIXTURES / "notifications.sample.cfg",
    )
    expected, _ = load_settings(env={"HOME": str(tmp_path)}, overrides=legacy_overrides(args, []))
    assert loaded == expected
    assert loaded != Settings()  # the lists really came through
    assert "# from group.sample.cfg [Webserver]" in out  # commented with its origin


def test_convert_writes_output_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "sub" / "bwmon.toml"
    assert run(capsys, "convert", "--app-config", LEGACY[1], "-o", str(target))[0] == 0
    assert [g["name"] for g in tomllib.loads(target.read_text())["groups"]][:2] == [
        "Webserver",
        "Desktop",
    ]
    code, _, err = run(capsys, "convert", "--app-config", LEGACY[1], "-o", str(target))
    assert code == 2 and "exists; pass --force" in err
    assert run(capsys, "convert", "--app-config", LEGACY[1], "-o", str(target), "--force")[0] == 0


def test_convert_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "convert")
    assert code == 2 and "name at least one of --app-config" in err


def test_show_prints_loadable_toml_with_origins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "bwmon.toml"
    config.write_text("[general]\n\ninterval = 2\n")
    monkeypatch.setenv("BWMON_TUI__MOUSE", "false")
    code, out, _ = run(capsys, "show", "--config", str(config), "--traffic")
    assert code == 0
    lines = {line.split(" = ")[0]: line for line in out.splitlines() if " = " in line}
    assert lines["interval"].endswith(f"# {config}:3")
    assert lines["mouse"].endswith("# BWMON_TUI__MOUSE")
    assert lines["bandwidth"].endswith("# --bandwidth/--traffic")
    assert "#" not in lines["lookback"]  # a default says nothing
    shown = tmp_path / "shown.toml"
    shown.write_text(out)
    again, _ = load_settings(shown, env={})
    assert (again.general.interval, again.general.bandwidth, again.tui.mouse) == (2, False, False)


def test_path_prints_the_file_in_use_or_says_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bwmon.core.config.loading.SYSTEM_CONFIG", tmp_path / "no-system.toml")
    code, out, err = run(capsys, "path")
    assert (code, out) == (1, "") and "no bwmon.toml in use" in err
    user = Path.home() / ".config" / "bwmon" / "bwmon.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert run(capsys, "path")[:2] == (0, f"{user}\n")


def test_check_accepts_good_and_reports_bad_with_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[[groups]]\nname = "web"\npatterns = ["nginx"]\n')
    code, out, _ = run(capsys, "check", str(good))
    assert code == 0 and out == f"{good}: OK (0 monitors, 1 groups, 0 alerts)\n"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[groups]]\nname = "web"\npatterns = ["(nginx"]\n')
    code, out, err = run(capsys, "check", str(bad))
    assert code == 2 and out == ""
    assert err.startswith(f"bwmon: {bad}:3: groups[0].patterns[0]: invalid regular expression")
    assert "Traceback" not in err


def test_show_never_prints_the_token(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`bwmon config show` printed `token = "…"` in clear (issue 25, item 10)."""
    path = tmp_path / "bwmon.toml"
    path.write_text('[http]\nlisten = "0.0.0.0:9100"\ntoken = "file-s3cret"\n')
    assert main(["config", "show", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "file-s3cret" not in out and "token = (set; not shown)" in out
    monkeypatch.setenv("BWMON_HTTP__TOKEN", "env-s3cret")
    assert main(["config", "show", "--config", str(path)]) == 0
    assert "env-s3cret" not in capsys.readouterr().out
