"""Configuration errors as clean `where: key: expected …, found …` lines, never a traceback.

`ConfigError` is the one exception every settings problem becomes. `describe_validation`
turns a pydantic `ValidationError` into such lines, asking a `where(loc)` callback for the
file:line, environment variable or flag each value came from (config.loading.Origins answers).
"""

from __future__ import annotations

import difflib
import json
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from bwmon.core.config.settings import Regex, check_regex
from bwmon.core.config.toml_lines import Loc


@dataclass(frozen=True)
class Problem:
    """One thing wrong: where it is (file:line, variable or flag; may be empty), and what."""

    where: str
    key: str
    message: str
    line: int = 0  # for sorting problems of one file

    def __str__(self) -> str:
        head = ": ".join(p for p in (self.where, self.key) if p)
        return f"{head}: {self.message}" if head else self.message


class ConfigError(Exception):
    """A settings problem the user can fix; str() is one line per problem."""

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("", "", problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def format_loc(loc: Loc) -> str:
    """("alerts", 1, "match") → "alerts[1].match"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def format_found(value: Any) -> str:
    """A found value the way the user typed it: strings quoted, booleans lower case."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, float) and not math.isfinite(value):
        text = str(value)  # inf, -inf, nan: as TOML writes them (JSON would say Infinity)
    elif isinstance(value, BaseModel):
        text = json.dumps(value.model_dump(mode="json"), ensure_ascii=False)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------------------------
# What a field expects, from its annotation and constraints


def _field_at(model: type[BaseModel], loc: Loc) -> tuple[FieldInfo | None, Loc]:
    """The field a loc points at (None if it leaves the model), and the loc cut to real keys."""
    current: Any = model
    field: FieldInfo | None = None
    kept: list[str | int] = []
    for part in loc:
        if isinstance(part, int):
            if field is None:
                break
            kept.append(part)
            args = typing.get_args(field.annotation)
            item = args[0] if args else None
            current = item if isinstance(item, type) and issubclass(item, BaseModel) else None
            field = None if current is not None else field
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            if part not in current.model_fields:
                break
            field = current.model_fields[part]
            kept.append(part)
            ann = field.annotation
            current = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        else:
            break
    return field, tuple(kept)


def _bounds(field: FieldInfo) -> str:
    lo = hi = ""
    for meta in field.metadata:
        if isinstance(meta, annotated_types.Gt):
            lo = f"greater than {meta.gt}"
        elif isinstance(meta, annotated_types.Ge):
            lo = f"at least {meta.ge}"
        elif isinstance(meta, annotated_types.Lt):
            hi = f"less than {meta.lt}"
        elif isinstance(meta, annotated_types.Le):
            hi = f"at most {meta.le}"
    if lo.startswith("at least") and hi.startswith("at most"):
        return f"from {lo[9:]} to {hi[8:]}"
    return " and ".join(p for p in (lo, hi) if p)


def _kind(annotation: Any) -> str:
    if annotation == Regex:
        return "a regular expression"
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        kinds = [_kind(a) for a in args]
        base = " or ".join(kinds)
        return base + (" (or leave it out)" if len(args) < len(typing.get_args(annotation)) else "")
    if origin is typing.Annotated:
        return _kind(args[0])
    if origin is typing.Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin is list:
        inner = _kind(args[0]) if args else "values"
        return "a list of " + {
            "a string": "strings",
            "a regular expression": "regular expressions",
            "a finite number": "finite numbers",
            "an integer": "integers",
        }.get(inner, inner)
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer"
    if annotation is float:
        return "a finite number"
    if annotation is str:
        return "a string"
    if annotation is Path:
        return "a path"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a table"
    return "a valid value"


def expected(model: type[BaseModel], loc: Loc) -> str:
    """What the setting at loc accepts, e.g. "a number greater than 0.05"."""
    field, kept = _field_at(model, loc)
    if field is None:
        return "a valid value"
    ann = field.annotation
    if len(kept) < len(loc) or (kept and isinstance(kept[-1], int)):
        args = typing.get_args(ann)
        ann = args[0] if args else ann  # an item of a list
    is_regex = any(getattr(m, "func", None) is check_regex for m in field.metadata)
    kind = "a regular expression" if is_regex and ann is str else _kind(ann)
    bounds = _bounds(field)
    if bounds:
        kind = kind.replace(" (or leave it out)", "")
        return f"{kind} {bounds}"
    return kind


def _suggest(model: type[BaseModel], loc: Loc) -> str:
    parent, _ = _field_at(model, loc[:-1])
    owner: Any = model
    if loc[:-1]:
        ann = parent.annotation if parent is not None else None
        args = typing.get_args(ann)
        owner = args[0] if args and isinstance(loc[-2], int) else ann
    if not (isinstance(owner, type) and issubclass(owner, BaseModel)) or not loc:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(owner.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe_error(model: type[BaseModel], err: Any) -> tuple[Loc, str]:
    """The loc to blame and a message for one pydantic error dict."""
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    field, kept = _field_at(model, loc)
    # drop pydantic's union/type tags such as ("port", "int") beyond the model's keys
    if field is not None and len(kept) < len(loc) and kind != "extra_forbidden":
        loc = kept
    found = format_found(err.get("input"))
    if kind == "extra_forbidden":
        return loc, "unknown setting" + _suggest(model, loc)
    if kind == "missing":
        return loc, f"required setting missing (expected {expected(model, loc)})"
    if kind in ("value_error", "assertion_error"):
        text = str(err.get("ctx", {}).get("error", err["msg"]))
        return loc, text
    if kind == "literal_error":
        return loc, f"expected {err['ctx']['expected']}, found {found}"
    return loc, f"expected {expected(model, loc)}, found {found}"


def describe_validation(
    model: type[BaseModel], exc: ValidationError, where: Callable[[Loc], tuple[str, int]]
) -> ConfigError:
    """One Problem per pydantic error, each told where its value came from."""
    problems = []
    for err in exc.errors():
        loc, message = describe_error(model, err)
        place, line = where(loc)
        problems.append(Problem(place, format_loc(loc), message, line))
    problems.sort(key=lambda p: (p.where.rsplit(":", 1)[0], p.line))
    return ConfigError(problems)
