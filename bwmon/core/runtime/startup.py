"""What every bwmon process does first, before asyncio is imported: memory it need not hold.

asyncio imports `ssl` (OpenSSL: ~4 MiB of RSS) for TLS that bwmon never uses unless a
library asks for it (prometheus_client's exposition, for the HTTP server). `defer_ssl` makes
`ssl` and `asyncio.sslproto` load on first use instead; `prepare` also applies the C heap
settings of bwmon.core.runtime.heap. Neither imports asyncio.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import threading
import types

# Loaded on first attribute access: asyncio binds these names at import and only uses them
# when a TLS connection is made; `asyncio.sslproto` reads `ssl` at its own import.
DEFERRED = ("ssl", "asyncio.sslproto")


def defer_ssl() -> list[str]:
    """Install lazy modules for DEFERRED not yet imported; returns the names deferred."""
    done: list[str] = []
    for name in DEFERRED:
        if name in sys.modules:
            continue
        if name.startswith("asyncio.") and "asyncio" not in sys.modules:
            # finding a submodule imports its package: that would load ssl right away
            spec = _submodule_spec(name)
        else:
            spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        module.__class__ = _Deferred
        sys.modules[name] = module
        done.append(name)
    return done


class _Deferred(types.ModuleType):
    """A module whose code runs when a name it lacks is first read.

    importlib's LazyLoader loads on *any* attribute, and `import ssl` itself reads
    `ssl.__spec__` when the module is already in sys.modules, so it would load at once.
    """

    _lock = threading.Lock()

    def __getattr__(self, attr: str) -> object:
        with _Deferred._lock:
            if type(self) is _Deferred:
                object.__setattr__(self, "__class__", types.ModuleType)
                spec = self.__spec__
                assert spec is not None and spec.loader is not None
                spec.loader.exec_module(self)
        return getattr(self, attr)


def _submodule_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    """The spec of `package.sub` found on the package's path without importing the package."""
    package, _, _sub = name.rpartition(".")
    parent = importlib.util.find_spec(package)
    if parent is None or parent.submodule_search_locations is None:
        return None
    return importlib.machinery.PathFinder.find_spec(name, parent.submodule_search_locations)


def prepare() -> None:
    """Start-up of a bwmon process (CLI, TUI, workers): defer ssl, tune the C heap."""
    from bwmon.core.runtime import heap

    defer_ssl()
    heap.tune()
