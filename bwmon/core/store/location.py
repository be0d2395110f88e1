"""Where the history store lives unless `history.path` says otherwise."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

FILE_NAME = "history.sqlite"
SYSTEM_DIR = Path("/var/lib/bwmon")


def default_path(env: Mapping[str, str] | None = None, euid: int | None = None) -> Path:
    """The first of: $STATE_DIRECTORY (systemd's StateDirectory=, as in contrib/bwmon.service),
    $XDG_STATE_HOME/bwmon, /var/lib/bwmon as root, ~/.local/state/bwmon; plus history.sqlite."""
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if os.path.isabs(systemd):
        return Path(systemd) / FILE_NAME
    state = env.get("XDG_STATE_HOME", "")
    if os.path.isabs(state):  # the XDG spec: a relative value is to be ignored
        return Path(state) / "bwmon" / FILE_NAME
    if euid == 0:
        return SYSTEM_DIR / FILE_NAME
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".local" / "state" / "bwmon" / FILE_NAME


def store_path(configured: Path | None) -> Path:
    """The configured path (with ~ expanded), else the default."""
    return configured.expanduser() if configured is not None else default_path()
