"""Who holds a granted session: this process in the foreground, or the scheduled agent.

`record` writes the new grant to session.json. In the foreground (`foreground`), Ctrl-C
or SIGTERM revokes the session (`Interrupt`) and the support server is told. Handed to the
running agent (`hand_to_agent`), the grant and its tunnel key go into hold.json, which
the agent's session queue (agent.session.queue) takes within its next scan.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any, Callable, Dict, Optional

from agent.session import state as session_state
from agent.session.diagaccount import ALLOW_PRIVILEGED
from agent.session.grant import Grant
from agent.session.supportapi import revoke_notifier
from agent.session.tunnel import Holder, hold_path, key_pem


class Interrupt:
    """Ctrl-C or SIGTERM while a grant is made or held: remembered, acted on by the holder."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = "revoked by the customer (Ctrl-C)"
        self.holder: Any = None

    def handle(self, signum: int, _frame: Any) -> None:
        if signum != signal.SIGINT:
            self.reason = f"revoked by the customer ({signal.Signals(signum).name})"
        if self.holder is not None:
            self.holder.stop_reason = self.reason
        self.event.set()


def record(grant: Grant, via_agent: bool) -> Dict[str, Any]:
    """The new grant in session.json, as `mydiag session list` shows it."""
    state = {**grant.to_dict(), "state": "granted",
             "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time())),
             "via": "agent" if via_agent else "foreground", "parts": []}
    session_state.save(grant.id, state)
    return state


def foreground(grant: Grant, key: Any, spec: Any, client: Any, log: Callable[[str], None],
               interrupt: Interrupt) -> Holder:
    """A holder for this process: the interrupt stops it, the server is told through `client`."""
    holder = Holder(grant, key, spec, log, revoke_notifier(client, grant))
    holder.stop, holder.stop_reason, interrupt.holder = interrupt.event, interrupt.reason, holder
    return holder


def hand_to_agent(grant: Grant, key: Any, allow_privileged: bool, wait: float = 5.0) -> Optional[int]:
    """Leave the grant for the scheduled agent; the pid of the agent that took it within `wait`, or None."""
    request = {"grant": grant.to_dict(), "key": key_pem(key)}
    if allow_privileged:
        request[ALLOW_PRIVILEGED] = True
    session_state.write_json(hold_path(grant.id), request)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        data = session_state.load(grant.id) or {}
        if session_state.holder_alive(data) and data.get("holder_pid") != os.getpid():
            return data["holder_pid"]
        time.sleep(0.1)
    return None
