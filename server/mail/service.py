"""Mail beside `mydiag-server run`: the endpoints that take mail in, and one worker thread.

The worker processes stored inbound mail (inbound.sweep), turns pending engineer
messages into outbox rows (outbox.pickup) and sends what is due (outbox.send_due) when a
smart host is configured. It wakes when a mail was stored, and at least every
`TICK_SECONDS`; any number of server processes may run it on one database.
"""

from __future__ import annotations

import logging
import threading
from typing import List, Optional

from server.mail import inbound, outbox, sender
from server.storage.state import State

log = logging.getLogger("mydiag.mail")
TICK_SECONDS = 1.0


class MailService:
    def __init__(self, state: State, smtp_listen: Optional[str] = None, lmtp: bool = False,
                 imap_url: Optional[str] = None, imap_password_file: Optional[str] = None,
                 imap_move_to: str = "") -> None:
        self.state = state
        self.signer = inbound.signer_of(state)
        self.wakeup = threading.Event()
        self.stop_event = threading.Event()
        self.parts: List[object] = []
        if smtp_listen:
            from server.mail.smtp import Endpoint

            host, _, port = smtp_listen.rpartition(":")
            self.parts.append(Endpoint(state, host.strip("[]"), int(port), lmtp, self.wakeup.set))
        if imap_url:
            from server.mail.imap import Poller

            self.parts.append(Poller(state, imap_url, imap_password_file or "", imap_move_to,
                                     self.wakeup.set))
        self.deliver = sender.smarthost(state.config.mail) if state.config.mail.smarthost else None
        self.worker = threading.Thread(target=self._work, daemon=True, name="mail-worker")

    def start(self) -> None:
        for part in self.parts:
            part.start()  # type: ignore[attr-defined]
        self.worker.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.wakeup.set()
        for part in reversed(self.parts):
            try:
                part.stop()  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                log.warning("stopping %s: %s", type(part).__name__, exc)
        self.worker.join(timeout=10)

    def round(self) -> None:
        inbound.sweep(self.state)
        outbox.pickup(self.state.db.tx, self.signer, public_url=self.state.config.mail.public_url)
        if self.deliver is not None:
            outbox.send_due(self.state.db.tx, self.state.config.mail, self.signer, self.deliver)

    def _work(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.round()
            except Exception as exc:  # noqa: BLE001 - keep working; the next round retries
                log.warning("mail round failed: %s: %s", type(exc).__name__, exc)
            self.wakeup.wait(TICK_SECONDS)
            self.wakeup.clear()
