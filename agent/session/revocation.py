"""Revoking a session on this host, whether or not the support server can be reached.

The revocation mark (agent.session.state) is what the holder polls: it cuts every channel
and the tunnel within a poll, then says whether it could tell the server. A session that
nobody holds is ended here at once, and its handed-over tunnel key removed.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Optional

from agent.session import state as session_state

UNKNOWN = "unknown"        # no such session on this host
ENDED_BEFORE = "ended before"
UNHELD = "unheld"          # nobody held it: ended here
CONFIRMED = "confirmed"    # the holder cut it and tried the server (server_told)
CUT = "cut"                # the holder cut it; the server has not answered yet
UNCONFIRMED = "unconfirmed"  # the holder was told and has not confirmed within the wait


@dataclass
class Revoked:
    outcome: str
    end_reason: Optional[str] = None
    server_told: bool = False
    holder_pid: Any = None


def revoke(session_id: str, by: str, wait: float = 5.0) -> Revoked:
    """Revoke the session and wait up to `wait` for its holder; ValueError for a bad id."""
    data = session_state.load(session_id)
    if data is None:
        return Revoked(UNKNOWN)
    if data.get("state") == "ended":
        return Revoked(ENDED_BEFORE, end_reason=data.get("end_reason"))
    session_state.revoke(session_id, by)
    if not session_state.holder_alive(data):
        session_state.update(session_id, state="ended", end_reason="revoked by the customer",
                             ended=time.time(), server_told=False)
        with contextlib.suppress(OSError):
            # A grant never taken by the agent: its tunnel key goes too.
            (session_state.folder(session_id) / session_state.HOLD).unlink()
        return Revoked(UNHELD)
    deadline = time.monotonic() + wait
    cut = False
    while time.monotonic() < deadline:
        now = session_state.load(session_id) or {}
        cut = cut or now.get("state") == "ended"
        if cut and now.get("server_told") is not None:
            return Revoked(CONFIRMED, server_told=bool(now["server_told"]))
        time.sleep(0.05)
    return Revoked(CUT) if cut else Revoked(UNCONFIRMED, holder_pid=data.get("holder_pid"))
