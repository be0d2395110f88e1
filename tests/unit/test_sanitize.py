"""The one sanitiser: what a process names itself reaches no terminal, log line or label raw."""

from __future__ import annotations

from pathlib import Path

import pytest

from bwmon.cli import main
from bwmon.core.config.settings import AlertSettings, GroupSettings, Settings
from bwmon.core.model import Finding, Level, LogEvent, ProcessInfo, ProcKey, SourceStatus
from bwmon.core.sanitize import MAX_TEXT, clean, decode, decode_comm


@pytest.mark.parametrize(("raw", "shown"), [
    ("\x1b]0;PWNED\x07\x1b[2Jx", "\\x1b]0;PWNED\\x07\\x1b[2Jx"),  # title + clear screen
    ("\x1b]52;c;cHduZWQ=\x07", "\\x1b]52;c;cHduZWQ=\\x07"),  # OSC 52: the clipboard
    ("a\nbwmon: error: FAKE", "a\\x0abwmon: error: FAKE"),  # a forged log line
    ("tab\there\rcr", "tab\\x09here\\x0dcr"),
    ("del\x7f", "del\\x7f"),
    ("c1\x9b2J", "c1\\x9b2J"),  # CSI as one C1 character
    ("bidi\u202eevil", "bidi\\u202eevil"),  # right-to-left override
    ("line\u2028sep", "line\\u2028sep"),
    ("firefox", "firefox"),
    ("загрузчик-файлов", "загрузчик-файлов"),
    ("naïve\u00a0space 日本", "naïve\u00a0space 日本"),
])
def test_controls_become_visible_escapes(raw: str, shown: str) -> None:
    assert clean(raw) == shown


def test_clean_text_is_passed_through_as_is() -> None:
    text = "python3 -m http.server 8000"
    assert clean(text) is text


def test_invalid_utf8_becomes_visible_bytes() -> None:
    # the kernel cut "загрузчик-файлов" at 15 bytes, in the middle of a character
    comm = "загрузчик-файлов".encode()[:15] + b"\n"
    assert decode_comm(comm) == "загрузч\\xd0"
    assert decode(b"\xff\xfeok") == "\\xff\\xfeok"


def test_huge_text_is_cut_without_splitting_an_escape() -> None:
    assert clean("x" * 10**6) == "x" * (MAX_TEXT - 1) + "…"
    cut = clean("\x1b" * 10**5, limit=10)
    assert cut == "\\x1b\\x1b…" and len(cut) <= 10


def test_cleaning_twice_changes_nothing() -> None:
    for raw in ("\x1b[31mred", "a" * 5000, "\udcff\u202e", "ok"):
        once = clean(raw)
        assert clean(once) == once


def test_models_hold_only_clean_text_whoever_builds_them() -> None:
    info = ProcessInfo(ProcKey(1, 2), "\x1b[2J", "evil\n--x", "us\ter", 0, "\x9bx")
    assert (info.name, info.cmdline, info.user, info.exe_base) == (
        "\\x1b[2J", "evil\\x0a--x", "us\\x09er", "\\x9bx")
    event = LogEvent(0.0, Level.INFO, "alert", "app a\nbwmon: error: X",
                     (("stderr", "line1\nline2"),))
    assert event.message == "app a\\x0abwmon: error: X"
    assert event.data == (("stderr", "line1\\x0aline2"),)
    assert Finding("procfs", False, "no /tmp/\x1b[2J/net/tcp").message == "no /tmp/\\x1b[2J/net/tcp"
    assert SourceStatus("pipe:x", False, "host \x9b?").detail == "host \\x9b?"


def test_config_errors_and_names_reach_no_terminal_raw(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config error quotes the value found: a C1 CSI in it was printed raw on stderr. Names
    set in the config (groups, rules, pipes) are shown, logged and labelled like process names."""
    bad = tmp_path / "bwmon.toml"
    bad.write_bytes('[general]\ninterval = "\u009b2J\\u001b]0;T"\n'.encode())
    assert main(["config", "check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "\x9b" not in err and "\x1b" not in err and '"\\x9b2J' in err, err
    settings = Settings(groups=[GroupSettings(name="tab\there", patterns=["x"])],
                        alerts=[AlertSettings(name="cr\rhere", match="x")])
    assert settings.groups[0].name == "tab\\x09here"
    assert settings.alerts[0].name == "cr\\x0dhere"
