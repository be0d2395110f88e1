"""bwmon.toml.example loads as is and documents every setting of the model."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from bwmon.core.config.loading import load_settings
from bwmon.core.config.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "bwmon.toml.example"


def model_of(annotation: object) -> type[BaseModel] | None:
    """The model a field holds, directly or as list items."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(section, key) for every leaf field, recursing into section and list-item models."""
    for name, info in model.model_fields.items():
        sub = model_of(info.annotation)
        if sub is not None:
            yield from fields(sub, name)
        else:
            yield prefix, name


def sections(text: str) -> dict[str, str]:
    """Text under each [section] / [[section]] header (commented headers count too)."""
    out: dict[str, str] = {}
    current = ""
    for line in text.splitlines():
        head = re.match(r"^#?\s*\[\[?([a-z_]+)\]\]?\s*(#.*)?$", line)
        if head:
            current = head.group(1)
            continue
        out[current] = out.get(current, "") + line + "\n"
    return out


def test_example_loads_as_is() -> None:
    settings, path = load_settings(EXAMPLE, env={})
    assert path == EXAMPLE
    assert settings.general == Settings().general  # [general] shows the defaults
    assert settings.notify == Settings().notify and settings.tui == Settings().tui
    assert settings.monitors and settings.groups and settings.alerts


def test_every_field_appears_in_its_section() -> None:
    text = sections(EXAMPLE.read_text())
    missing = [
        f"{section}.{key}"
        for section, key in fields(Settings)
        if not re.search(rf"^#?\s*(#\s*)?{key} = ", text.get(section, ""), re.M)
    ]
    assert missing == []


def test_section_walk_finds_list_item_fields() -> None:
    assert ("alerts", "hysteresis") in set(fields(Settings))
    assert ("monitors", "shape_out") in set(fields(Settings))
