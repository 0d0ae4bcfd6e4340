"""The SMTP (or LMTP) endpoint, meant to sit behind the organization's MTA.

aiosmtpd on its own thread and event loop. DATA is refused past `max_message_bytes`
(552, by aiosmtpd's data_size_limit, before the body is kept); an accepted message is
stored (inbound.receive: blob and inbox row) off the event loop, and only then answered
250; the background worker processes it after. A storage failure answers 451 (try
again later), never 250. LMTP answers once per recipient, all alike.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from server.mail import inbound
from server.storage.state import State

log = logging.getLogger("mydiag.mail")


class Handler:
    def __init__(self, state: State, stored: Callable[[], None]) -> None:
        self.state = state
        self.stored = stored

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:
        """Only our own domain's addresses: anything else is no mail of ours to keep."""
        domain = self.state.config.mail.domain.lower()
        if not address.lower().rstrip(">").endswith("@" + domain):
            return f"550 5.1.1 not a mailbox here (only @{domain})"
        if len(envelope.rcpt_tos) >= 100:
            return "452 4.5.3 too many recipients"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="replace")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, inbound.receive, self.state, raw, envelope.mail_from or "<>",
                                       list(envelope.rcpt_tos), "smtp")
        except Exception as exc:  # noqa: BLE001 - the sender keeps the mail and tries again
            log.warning("storing an inbound mail failed: %s: %s", type(exc).__name__, exc)
            return "451 4.3.0 cannot store the message now; try again later"
        self.stored()
        if isinstance(server, LMTP):
            return "\r\n".join("250 2.0.0 stored" for _ in envelope.rcpt_tos) or "250 2.0.0 stored"
        return "250 2.0.0 stored"


class _Controller(Controller):
    def __init__(self, handler: Handler, lmtp: bool, size: int, **kwargs: Any) -> None:
        self.lmtp = lmtp
        self.size = size
        super().__init__(handler, **kwargs)

    def factory(self) -> SMTP:
        kind = LMTP if self.lmtp else SMTP
        return kind(self.handler, data_size_limit=self.size, enable_SMTPUTF8=True,
                    hostname=self.hostname, ident="mydiag", timeout=60)


class Endpoint:
    def __init__(self, state: State, host: str, port: int, lmtp: bool = False,
                 stored: Optional[Callable[[], None]] = None) -> None:
        self.controller = _Controller(Handler(state, stored or (lambda: None)), lmtp,
                                      state.config.mail.max_message_bytes, hostname=host, port=port,
                                      ready_timeout=10)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
