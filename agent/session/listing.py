"""The sessions granted on this host, as `mydiag session list` shows them, with their status.

A session is live while a process holds it and its time is not up; waiting while it is
handed to an agent that has not taken it yet; not held when nobody holds it; expired or
ended otherwise.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List

from agent.session import state as session_state


def status(data: Dict[str, Any]) -> str:
    if data.get("state") == "ended":
        return "ended"
    if session_state.holder_alive(data):
        return "expired" if float(data.get("expires") or 0) <= time.time() else "live"
    if float(data.get("expires") or 0) <= time.time():
        return "expired"
    return "waiting" if data.get("via") == "agent" else "not held"


def sessions() -> List[Dict[str, Any]]:
    """One row per session (times in UTC), as `mydiag session list --json` prints them."""
    return [{"id": d.get("id"), "status": status(d), "engineer": d.get("engineer"), "mode": d.get("mode"),
             "purpose": d.get("purpose"), "ticket": d.get("ticket"), "server": d.get("server"),
             "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(d.get("expires") or 0))),
             "holder_pid": d.get("holder_pid"), "end_reason": d.get("end_reason"),
             "parts": len(d.get("parts") or [])} for d in session_state.all_sessions()]
