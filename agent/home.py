"""The agent's state directory: host key, and whatever else the agent keeps between runs.

`MYDIAG_HOME` overrides it; otherwise `/var/lib/mydiag` for root (the systemd service)
and `~/.local/share/mydiag` for anyone else. Nothing here creates the directory: the
module that first writes into it does (with mode 0700).
"""

from __future__ import annotations

import os
from pathlib import Path

HOST_KEY_NAME = "host_ed25519.key"


def home() -> Path:
    override = os.environ.get("MYDIAG_HOME")
    if override:
        return Path(override).expanduser()
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/mydiag")
    return Path.home() / ".local" / "share" / "mydiag"


def host_key_path() -> Path:
    return home() / HOST_KEY_NAME
