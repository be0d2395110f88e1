"""Process start-up: OpenSSL is loaded only when something uses TLS, and threads share one
malloc arena — each a few MiB of a monitor's resident size."""

from __future__ import annotations

import subprocess
import sys

import pytest

ON_GLIBC = sys.platform.startswith("linux") and "glibc" in " ".join(
    __import__("platform").libc_ver())


def _child(code: str) -> list[str]:
    """Run `code` in a fresh interpreter; its stdout, as words."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return out.stdout.split()


def _rss_mib() -> str:
    return "int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20"


def test_bwmon_tui_starts_without_openssl_and_is_smaller_for_it() -> None:
    lazy = _child(f"import sys, bwmon.tui.main\nprint('_ssl' in sys.modules, {_rss_mib()})")
    eager = _child(f"import ssl, bwmon.tui.main\nprint({_rss_mib()})")
    assert lazy[0] == "False"
    # ~4 MiB where nothing else loads OpenSSL; ~1 MiB (the ssl module alone) where libcrypto
    # is loaded anyway: pydantic 2.14 imports `secrets`, hence hashlib and _hashlib
    assert float(eager[0]) - float(lazy[1]) > 0.5  # MiB


def test_bwmon_command_starts_without_openssl() -> None:
    out = _child("import atexit, sys\n"
                 "atexit.register(lambda: print('_ssl' in sys.modules, 'asyncio' in sys.modules))\n"
                 "from bwmon.cli import main\n"
                 "main(['--version'])")  # every subcommand's module is imported first
    assert out[-2:] == ["False", "True"]


def test_tls_still_works_once_something_uses_it() -> None:
    out = _child("from bwmon.core.runtime.startup import prepare\nprepare()\n"
                 "import asyncio, sys\n"
                 "assert '_ssl' not in sys.modules\n"
                 "import ssl\n"
                 "ctx = ssl.create_default_context()\n"
                 "from asyncio import base_events\n"
                 "print(type(ctx).__name__, base_events.sslproto.SSLProtocol.__name__,\n"
                 "      '_ssl' in sys.modules, type(ssl) is type(sys))\n"
                 "import bwmon.http.server\n")  # prometheus_client uses ssl at import
    assert out == ["SSLContext", "SSLProtocol", "True", "True"]


_ARENAS = """
import ctypes, sys, threading
from bwmon.core.runtime import heap
if sys.argv[1] == "tuned":
    assert heap.tune()
def work():
    blocks = [bytearray(500) for _ in range(10_000)]
    del blocks
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" paragraph per malloc arena, on stderr
"""


@pytest.mark.skipif(not ON_GLIBC, reason="glibc's mallopt")
def test_tuned_threads_allocate_in_the_one_main_arena() -> None:
    def arenas(mode: str) -> int:
        err = subprocess.run([sys.executable, "-c", _ARENAS, mode], capture_output=True,
                             text=True, check=True).stderr
        return err.count("Arena ")

    assert arenas("tuned") == 1
    assert arenas("default") > 1  # each thread got an arena of its own (64 MiB reserved)


def test_tune_is_a_no_op_without_mallopt(monkeypatch: pytest.MonkeyPatch) -> None:
    from bwmon.core.runtime import heap

    monkeypatch.setattr(heap, "_MALLOPT", None)
    assert heap.tune() is False


def test_discovery_worker_loads_neither_psutil_nor_aiofiles() -> None:
    # what the worker's main imports: it reads sockets through sock_diag and never measures
    # or kills a process tree (psutil ~1.7 MiB, aiofiles ~0.4 MiB of its PSS)
    out = _child("import sys\n"
                 "import bwmon.core.attribution.discovery_worker\n"
                 "import bwmon.core.sources.processes, bwmon.core.sources.socket_source\n"
                 "import bwmon.core.namespaces.placement, bwmon.core.sources.conntrack_events\n"
                 "import bwmon.core.sources.ebpf, bwmon.core.sources.sock_diag\n"
                 "print('psutil' in sys.modules, 'aiofiles' in sys.modules)")
    assert out == ["False", "False"]


def test_a_subcommand_loads_only_its_own_module() -> None:
    out = _child("import atexit, sys\n"
                 "atexit.register(lambda: print(*(m in sys.modules for m in (\n"
                 "    'bwmon.cli.run', 'bwmon.cli.report', 'bwmon.cli.config_cmd', 'psutil'))))\n"
                 "from bwmon.cli import main\n"
                 "main(['run', '--help'])")
    assert out[-4:] == ["True", "False", "False", "False"]
