"""When the reader of bwmon's output goes away (`bwmon monitor --json | head -c 10`).

The reader chose to stop reading: bwmon ends quietly, status 0, with no traceback and no
"Exception ignored" line from Python's final flush at exit.
"""

from __future__ import annotations

import contextlib
import os
import sys


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that what is still buffered goes nowhere without an error."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def finish_output() -> bool:
    """Flush stdout now (not at exit, where an error can no longer be handled); False when its
    reader has gone."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdout()
        return False
    return True
