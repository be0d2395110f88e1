"""Finding the system tools bwmon runs (conntrack, iptables-save, nft).

They live in /usr/sbin, which an ordinary user's PATH often lacks, although with the right
capabilities (see bwmon.core.capabilities) they work for that user too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def find_tool(name: str) -> str | None:
    """The path of a command: from PATH, else from the sbin directories."""
    found = shutil.which(name)
    if found is None and os.sep not in name:
        found = shutil.which(name, path=os.pathsep.join(SBIN_DIRS))
    return found


def resolved(argv: Sequence[str]) -> list[str]:
    """`argv` with its command replaced by the path `find_tool` gives (kept when not found)."""
    if not argv:
        return []
    return [find_tool(argv[0]) or argv[0], *argv[1:]]
