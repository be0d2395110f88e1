"""The manual tells the truth: current, complete, and naming only settings that exist."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from bwmon.cli import build_parser
from bwmon.core.config.settings import Settings
from bwmon.tui.main import build_parser as tui_parser
from docs.build_manual import BENCH_FORMAT, benchmark_problems, key_display, tui_bindings

REPO = Path(__file__).resolve().parents[2]
MANUAL = REPO / "docs" / "manual.html"
SECTIONS = ("general", "monitors", "groups", "alerts", "notify", "http", "tui")


def _text() -> str:
    return MANUAL.read_text()


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    flags: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                flags |= _flags(sub)
        else:
            flags.update(o for o in action.option_strings if o.startswith("--"))
    return flags


def _setting_keys() -> set[str]:
    keys = set()
    for section, field in Settings.model_fields.items():
        model = field.annotation
        model = getattr(model, "__args__", (model,))[0]
        assert isinstance(model, type) and issubclass(model, BaseModel)
        keys |= {f"{section}.{k}" for k in model.model_fields}
    return keys


def test_manual_is_generated_from_the_current_code() -> None:
    done = subprocess.run([sys.executable, str(REPO / "docs" / "build_manual.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_benchmark_section_follows_the_format() -> None:
    assert benchmark_problems() == []


def test_a_benchmark_section_that_tells_a_story_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bench-good.md").write_text(BENCH_FORMAT + "Clients: tests/helpers/traffic.py.\n")
    assert benchmark_problems(tmp_path) == []
    story = BENCH_FORMAT.replace("Commit 1a2b3c4", "In session 3 we ran it") + (
        "\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    (tmp_path / "bench-story.md").write_text(story)
    (tmp_path / "bench-huge.md").write_text(BENCH_FORMAT + "x" * 30_000)
    problems = "\n".join(benchmark_problems(tmp_path))
    assert "bench-story.md: needs a 'Commit <hash>, <YYYY-MM-DD>' line" in problems
    assert "bench-story.md: has 2 tables, one expected" in problems
    assert "bench-story.md:11: 'session' tells a story" in problems
    assert "docs/benchmarks.md: 3" in problems and "bytes, at most 30,000" in problems
    assert "bench-good.md" not in problems


def test_every_flag_of_every_command_is_documented() -> None:
    text = _text()
    flags = _flags(build_parser()) | _flags(tui_parser())
    assert "--no-mouse" in flags and "--notification-config" in flags
    flags -= {"--help"}
    missing = sorted(f for f in flags if f"<code>{f}" not in text and f not in text)
    assert not missing


def test_every_setting_is_documented_and_every_documented_setting_exists() -> None:
    text = _text()
    keys = _setting_keys()
    assert not sorted(k for k in keys if f"<code>{k}</code>" not in text)
    # a dotted name not followed by another dot-part (file names like monitors.sample.cfg)
    mentioned = set(re.findall(rf"(?<![\w./-])((?:{'|'.join(SECTIONS)})\.[a-z_]+)\b(?!\.\w)", text))
    # the deliberate typo of the "did you mean" example; Python's module in an auto-group example
    mentioned -= {"general.intervall", "http.server"}
    files = ("cfg", "toml", "sample", "html", "md", "py", "service", "yml")
    unknown = sorted(m for m in mentioned if m not in keys and m.split(".")[1] not in files)
    assert not unknown, f"the manual names settings that do not exist: {unknown}"


def test_every_tui_key_is_documented() -> None:
    text = _text()
    bindings = [keys for _, rows in tui_bindings() for keys, _ in rows]
    assert len(bindings) > 15
    for keys in bindings:
        assert f"<kbd>{keys}</kbd>".replace("<", "&lt;") in text or f"<kbd>{keys}" in text \
            or f"<kbd>{keys.replace('<', '&lt;').replace('>', '&gt;')}</kbd>" in text, keys
    assert key_display("ctrl+s") == "Ctrl+S" and key_display("question_mark") == "?"


def test_internal_links_resolve_and_nothing_is_fetched_from_outside() -> None:
    text = _text()
    ids = set(re.findall(r'id="([^"]+)"', text))
    targets = set(re.findall(r'href="#([^"]+)"', text))
    assert targets and not sorted(targets - ids)
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert not re.search(r"@import|url\(\s*['\"]?https?:", text)
    for src in re.findall(r'(?:src|data)="([^"#][^"]*)"', text):
        picture = MANUAL.parent / src
        assert picture.exists(), src
        if picture.suffix == ".svg":  # Textual's SVGs name a web font: it must be stripped
            assert not re.search(r"url\(\s*['\"]?https?:", picture.read_text()), src
