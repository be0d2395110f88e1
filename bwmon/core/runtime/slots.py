"""Fast positional constructors for the frozen slots dataclasses built per changed flow.

A frozen dataclass's __init__ pays an `object.__setattr__` lookup per field; at thousands of
changed flows per tick (entries, deltas, end usages) that is a measurable share of a tick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")


def fast_constructor(cls: type[_T], fields: tuple[str, ...]) -> Callable[..., _T]:
    """A positional constructor for a frozen slots dataclass that sets the slots directly.

    It builds the same object as the class about 1.5-2 times faster. If the class's fields
    ever differ from `fields`, the class itself is returned (correct, only slower).
    """
    if getattr(cls, "__slots__", None) != fields:
        return cls
    setters = [getattr(cls, name).__set__ for name in fields]
    args = ", ".join(f"a{i}" for i in range(len(fields)))
    body = "".join(f"    s{i}(o, a{i})\n" for i in range(len(fields)))
    namespace: dict[str, Any] = {f"s{i}": f for i, f in enumerate(setters)}
    namespace.update(new=object.__new__, cls=cls)
    exec(f"def make({args}):\n    o = new(cls)\n{body}    return o\n", namespace)
    make: Callable[..., _T] = namespace["make"]
    return make
