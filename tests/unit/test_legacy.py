"""bwmon 1.1's INI files load unchanged: the three published samples and the odd corners."""

from __future__ import annotations

from pathlib import Path

import pytest

from bwmon.core.config.errors import ConfigError
from bwmon.core.config.legacy_ini import (
    load_app_config,
    load_monitor_config,
    load_notification_config,
)
from bwmon.core.config.settings import AlertSettings, GroupSettings, MonitorSettings

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "legacy"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "old.cfg"
    path.write_text(text)
    return path


def test_sample_app_groups() -> None:
    warnings: list[str] = []
    groups = load_app_config(FIXTURES / "group.sample.cfg", warnings=warnings)
    assert groups == [
        GroupSettings(name="Webserver", patterns=["apache", "httpd", "lighttpd"]),
        GroupSettings(name="Desktop", patterns=["firefox|chrom(e|ium)", "gaim|pidgin"]),
        GroupSettings(name="Dev", patterns=["ssh"]),
        GroupSettings(name="Test", patterns=["wget|curl"]),
    ]
    assert warnings == []


def test_sample_monitors_with_stray_backslash_warning() -> None:
    warnings: list[str] = []
    monitors = load_monitor_config(FIXTURES / "monitors.sample.cfg", warnings=warnings)
    assert monitors == [
        MonitorSettings(
            name="General",
            type="conntrack",
            exclude=[r"ssh.+khan\.thpinfo\.com"],
            ignore_local=True,
        ),
        MonitorSettings(
            name="SSH",
            type="pipe",
            port=2222,
            target_host="khan.thpinfo.com",
            target_port=22,
            shape_in=100,
            shape_out=100,
        ),
    ]
    sample = str(FIXTURES / "monitors.sample.cfg")
    backslash = [w for w in warnings if "backslash" in w]
    assert len(backslash) == 1
    assert backslash[0].startswith(f"{sample}:47: [SSH] newhost: stray backslash removed")
    assert any(w.startswith(f"{sample}:49: [SSH] shape_threshold") for w in warnings)


def test_sample_notifications() -> None:
    alerts = load_notification_config(FIXTURES / "notifications.sample.cfg")
    assert alerts == [
        AlertSettings(name="BitTorrent", match="transmission", in_threshold=50),
        AlertSettings(
            name="SSH",
            match="ssh",
            in_threshold=100,
            out_threshold=100,
            command=["mail", "-s", "SSH exceeding bandwidth limit", "root"],
        ),
        AlertSettings(name="wget", match="wget", in_threshold=50, window=5, command=["true"]),
    ]


def test_percent_case_and_order_survive(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[Zeta App]\nZ=%(foo)s|100%\nA=second\n[alpha]\nMixedCase = x:y\n",
    )
    groups = load_app_config(path)
    assert [(g.name, g.patterns) for g in groups] == [
        ("Zeta App", ["%(foo)s|100%", "second"]),
        ("alpha", ["x:y"]),
    ]


def test_colon_delimiter_and_inline_semicolon_comment_like_1_1(tmp_path: Path) -> None:
    path = write(tmp_path, "[Web]\nnginx: nginx ; the proxy\n")
    assert load_app_config(path)[0].patterns == ["nginx"]


def test_invalid_regex_names_file_line_and_option(tmp_path: Path) -> None:
    path = write(tmp_path, "# groups\n[Web]\nok=nginx\nbad=(apache\n")
    with pytest.raises(ConfigError) as info:
        load_app_config(path)
    assert str(info.value).startswith(f"{path}:4: [Web] bad: invalid regular expression")


def test_invalid_regex_in_monitor_and_notification(tmp_path: Path) -> None:
    path = write(tmp_path, "[M]\ntype=monitor\ninclude=[a-\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: \[M\] include: invalid regular"):
        load_monitor_config(path)
    path = write(tmp_path, "[N]\nprocess_filter=*x\nin_threshold=1\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: \[N\] process_filter: invalid regular"):
        load_notification_config(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[P]\ntype=pipe\nport=ssh\nnewhost=h\n", ':3: [P] port: expected an integer, found "ssh"'),
        ("[P]\ntype=pipe\nport=70000\nnewhost=h\n", ":3: [P] port: expected an integer from 0"),
        ("[P]\ntype=pipe\nnewhost=h\n", ":1: [P] port: required for a pipe, missing"),
        ("[P]\ntype=pump\n", ':2: [P] type: expected monitor or pipe, found "pump"'),
        ("[P]\ninclude=x\n", ":1: [P]: type: required (monitor or pipe), missing"),
        ("[M]\ntype=monitor\nignorelocal=maybe\n", ":3: [M] ignorelocal: expected true or false"),
        ("\n\nport=1\n", ":3: option outside any [section]"),
    ],
)
def test_monitor_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_monitor_config(path)
    assert str(info.value).startswith(f"{path}{expected}")


def test_pipe_remote_port_defaults_to_local_port_and_zero_shape_is_unlimited(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "[Web]\ntype=pipe\nport=8080\nnewhost=example.org\nshape_threshold=0\n")
    (pipe,) = load_monitor_config(path)
    assert (pipe.target_port, pipe.shape_in, pipe.shape_out) == (8080, None, None)


def test_notification_errors_and_zero_thresholds(tmp_path: Path) -> None:
    path = write(tmp_path, "[A]\nprocess_filter=x\nin_threshold=0\nout_threshold=0\n")
    warnings: list[str] = []
    (alert,) = load_notification_config(path, warnings=warnings)
    assert (alert.in_threshold, alert.out_threshold, alert.window) == (None, None, 1)
    assert warnings == [f"{path}:1: [A]: no in_threshold or out_threshold; never fires"]

    path = write(tmp_path, "[A]\nprocess_filter=x\nin_threshold=lots\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: \[A\] in_threshold: expected a number"):
        load_notification_config(path)
    path = write(tmp_path, "[A]\nprocess_filter=x\ninterval=0\nin_threshold=1\n")
    with pytest.raises(ConfigError,
                       match=rf"^{path}:3: \[A\] interval: expected a finite number"):
        load_notification_config(path)
    path = write(tmp_path, "[A]\nin_threshold=1\n")
    with pytest.raises(ConfigError, match=rf"^{path}:1: \[A\]: process_filter: required"):
        load_notification_config(path)
    path = write(tmp_path, '[A]\nprocess_filter=x\nin_threshold=1\nnotification_command=mail "x\n')
    with pytest.raises(ConfigError, match=rf"^{path}:4: \[A\] notification_command: cannot split"):
        load_notification_config(path)


def test_unknown_option_is_a_warning_not_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "[A]\nprocess_filter=x\nnotification_threshold=5\nin_threshold=1\n")
    warnings: list[str] = []
    load_notification_config(path, warnings=warnings)
    assert warnings == [
        f"{path}:3: [A] notification_threshold: unknown option ignored "
        "(use in_threshold/out_threshold)"
    ]


def test_missing_file_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file \\(named by --app-config\\)"):
        load_app_config(tmp_path / "nope.cfg")
