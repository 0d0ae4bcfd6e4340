"""Grants handed to the scheduled agent (`mydiag session grant --via-agent`).

The grant command writes `<home>/sessions/<id>/hold.json` (the grant and its tunnel
key, mode 0600); the running agent finds it within half a second and holds the session
on a thread of its own, with its configured MySQL connection for diag mode, until it
expires or is revoked. Stopping the agent ends its sessions (revoked: "the agent
stopped") rather than leaving a grant that nobody enforces.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any, Callable, Dict, Optional

from agent.session import state as session_state

SCAN_EVERY = 0.5


class SessionQueue:
    def __init__(self, spec: Any, log: Callable[[str], None]) -> None:
        self.spec: Optional[Dict[str, Any]] = dataclasses.asdict(spec) if spec is not None else None
        self.log = log
        self._stop = threading.Event()
        self._holders: Dict[str, Any] = {}
        self._thread = threading.Thread(target=self._scan, name="mydiag-sessions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, wait: float = 3.0) -> None:
        self._stop.set()
        for holder in list(self._holders.values()):
            holder.stop_reason = "the agent stopped"
            holder.stop.set()
        self._thread.join(wait)

    def _scan(self) -> None:
        while not self._stop.wait(SCAN_EVERY):
            base = session_state.root()
            if not base.is_dir():
                continue
            for hold in base.glob(f"ss-*/{session_state.HOLD}"):
                session_id = hold.parent.name
                if session_id in self._holders:
                    continue
                try:
                    self._take(session_id, json.loads(hold.read_text()))
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    self.log(f"session {session_id}: cannot take the grant: {exc}")
                    self._holders[session_id] = None

    def _take(self, session_id: str, request: Dict[str, Any]) -> None:
        from agent.session.diagaccount import ALLOW_PRIVILEGED
        from agent.session.grant import Grant
        from agent.session.tunnel import Holder, key_from_pem

        state = session_state.load(session_id) or {}
        if state.get("state") == "ended" or session_state.revoked(session_id):
            self._holders[session_id] = None
            return
        grant = Grant.from_dict(request["grant"])
        spec = self.spec
        if spec is not None and request.get(ALLOW_PRIVILEGED) is True:
            spec = {**spec, ALLOW_PRIVILEGED: True}  # the grant's --allow-privileged-account
        holder = Holder(grant, key_from_pem(request["key"]), spec,
                        lambda message: self.log(f"session {session_id}: {message}"))
        self._holders[session_id] = holder
        self.log(f"session {session_id}: holding it for {grant.engineer} ({grant.mode} mode) until "
                 f"the grant expires: {grant.purpose}")
        threading.Thread(target=self._hold, args=(session_id, holder), daemon=True,
                         name=f"session-{session_id}").start()

    def _hold(self, session_id: str, holder: Any) -> None:
        try:
            reason = holder.run()
            self.log(f"session {session_id}: ended ({reason})")
        except Exception as exc:  # noqa: BLE001 - one session's failure never stops the agent
            self.log(f"session {session_id}: failed: {type(exc).__name__}: {exc}")
