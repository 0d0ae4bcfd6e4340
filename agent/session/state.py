"""What the customer's host keeps about remote sessions, in the agent's state directory.

```
<home>/sessions/<id>/session.json   the grant (who, until when, mode, purpose, server,
                                    ticket), its state, who holds the tunnel, its parts
<home>/sessions/<id>/revoked        written by `mydiag session revoke`: the holder cuts
                                    the session within a poll (0.05 s), server or not
<home>/sessions/<id>/hold.json      a grant handed to the scheduled agent (--via-agent):
                                    what it needs to dial the gateway, mode 0600, removed
                                    when the session ends
<home>/sessions/<id>/N.cast, N.chain  the recording of the session's N-th channel
```

No token is written here. The tunnel key in hold.json is made for that one session and
is worthless once it ends (the gateway admits it only while the grant is live).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from agent.home import home

SESSION = "session.json"
REVOKED = "revoked"
HOLD = "hold.json"


def root() -> Path:
    return home() / "sessions"


def folder(session_id: str) -> Path:
    if not session_id.startswith("ss-") or not session_id[3:].isalnum() or len(session_id) > 32:
        raise ValueError(f"{session_id!r} is not a session id (ss-…)")
    return root() / session_id


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """Replace `path` whole (readers never see half a file), mode 0600."""
    # The state directory may not exist yet; sessions/ and sessions/<id>/ are for us alone.
    path.parent.parent.parent.mkdir(parents=True, exist_ok=True)
    for folder_ in (path.parent.parent, path.parent):
        folder_.mkdir(mode=0o700, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def load(session_id: str) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads((folder(session_id) / SESSION).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def save(session_id: str, data: Dict[str, Any]) -> None:
    write_json(folder(session_id) / SESSION, data)


def update(session_id: str, **changes: Any) -> Dict[str, Any]:
    data = load(session_id) or {"id": session_id}
    data.update(changes)
    save(session_id, data)
    return data


def all_sessions() -> List[Dict[str, Any]]:
    found = []
    base = root()
    if not base.is_dir():
        return []
    for entry in sorted(base.iterdir()):
        data = load(entry.name) if entry.name.startswith("ss-") else None
        if data is not None:
            found.append(data)
    return sorted(found, key=lambda d: d.get("created", ""))


def revoke(session_id: str, by: str) -> None:
    write_json(folder(session_id) / REVOKED, {"at": time.time(), "by": by})


def revoked(session_id: str) -> bool:
    return (folder(session_id) / REVOKED).exists()


def holder_alive(data: Dict[str, Any]) -> bool:
    pid = data.get("holder_pid")
    if not isinstance(pid, int) or pid <= 0 or data.get("state") != "live":
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
