"""The man pages and shell completions are generated from the argument parsers (every
subcommand, every flag), are current, render cleanly, and complete in a real bash."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from bwmon.cli import build_parser
from tests.conftest import REPO

MAN = REPO / "docs" / "man"
BASH = REPO / "contrib" / "completions" / "bwmon.bash"


def subcommands(parser: argparse.ArgumentParser, prefix: str = "bwmon") -> list[str]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [f"{prefix} {name}", *subcommands(sub, f"{prefix} {name}")]
    return out


def test_generated_files_are_current() -> None:
    done = subprocess.run([sys.executable, str(REPO / "docs" / "build_man.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("page", ["bwmon.1", "bwmon-tui.1"])
def test_man_pages_render_without_warnings(page: str) -> None:
    done = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", "-ww", str(MAN / page)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert "EXIT STATUS" in done.stdout and "SEE ALSO" in done.stdout


def test_every_subcommand_and_the_doctor_statuses_are_in_the_man_page() -> None:
    text = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", str(MAN / "bwmon.1")],
                          capture_output=True, text=True, timeout=60).stdout
    plain = text.replace("\u2010", "-")  # groff hyphenates at line ends
    for name in subcommands(build_parser()):
        assert name in plain, name
    assert "3 nothing can be measured" in " ".join(plain.split())


def complete(*words: str) -> list[str]:
    """What the generated bash completion offers for the last word."""
    script = (f"source {BASH}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
              f"COMP_CWORD={len(words) - 1}; _bwmon; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_bash_completes_subcommands_flags_and_files() -> None:
    top = {name.split()[1] for name in subcommands(build_parser()) if name.count(" ") == 1}
    assert set(complete("bwmon", "")) == top
    assert complete("bwmon", "do") == ["doctor"]
    assert set(complete("bwmon", "doctor", "--")) == {"--help", "--fix", "--json", "--config"}
    assert "export-rules" in complete("bwmon", "config", "")
    assert complete("bwmon", "monitor", "--config", "docs/man/bwmon.") == ["docs/man/bwmon.1"]
    assert complete("bwmon", "monitor", "--include", "config", "--js") == ["--json"]
    assert complete("bwmon-tui", "--no-m") == ["--no-mouse"]
