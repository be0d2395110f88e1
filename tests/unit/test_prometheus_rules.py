"""`bwmon config export-rules`: the two traps (search vs anchored regex, kB = 1024 B), what
RE2 cannot express, and promtool's verdict on what is generated."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bwmon.cli.prometheus_rules import export_rules, promql_regex, promql_string
from bwmon.core.config.settings import AlertSettings, Settings
from bwmon.core.errors import UserError
from tests.conftest import REPO


def settings(*alerts: AlertSettings) -> Settings:
    return Settings(alerts=list(alerts))


def test_the_regex_is_searched_as_bwmon_does() -> None:
    anchored = re.compile(promql_regex("curl|wget", "r"))  # RE2 and Python agree here
    for name in ("curl", "my-curl-job", "wget2"):
        assert anchored.fullmatch(name)
    assert not anchored.fullmatch("ssh")
    assert promql_string(r"a\.b") == r"`a\.b`"  # raw: no escape doubling
    assert promql_string("a`b") == '"a`b"'


@pytest.mark.parametrize("match", [r"foo(?=bar)", r"(?<!x)y", r"(a)\1", r"(?P<n>a)(?P=n)",
                                   r"end\Z"])
def test_python_only_syntax_is_refused_with_the_rule(match: str) -> None:
    with pytest.raises(UserError, match=r"rule 'web'.*RE2"):
        promql_regex(match, "web")


def test_thresholds_are_kib_per_second_and_hysteresis_is_kept() -> None:
    text = export_rules(settings(AlertSettings(name="web", match="nginx", in_threshold=100,
                                               hysteresis=0.2)), scrape_interval=15)
    assert "> 102400\n" in text  # 100 kB/s = 100 × 1024 B/s
    assert "> 81920\n" in text  # clears below 80 %
    assert 'direction="out"' not in text  # no out threshold: no out rules
    assert "[60s]" in text  # a 1 s window cannot be averaged from 15 s scrapes: 4 of them


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    rules = settings(
        AlertSettings(name="web", match=r"nginx|apache\d", in_threshold=100, out_threshold=5),
        AlertSettings(name="web", match="back`tick", out_threshold=1.5, window=120),
        AlertSettings(name="quote \"me\"", match="x", in_threshold=1))
    for n, s in enumerate((rules, settings())):
        path = tmp_path / f"rules{n}.yml"
        path.write_text(export_rules(s, scrape_interval=15))
        done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_command_reads_bwmon_toml(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bwmon", "config", "export-rules", "--config",
                           str(REPO / "bwmon.toml.example")], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "- alert: BwmonBandwidth" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "bwmon", "config", "export-rules",
                          "--scrape-interval", "0"], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
