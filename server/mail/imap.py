"""The IMAP poller: `--imap imap://user@host:port/FOLDER` (or imaps://), the password from a file.

It takes every unseen message (bounded by RFC822.SIZE), stores it (inbound.receive),
then marks it `\\Seen` (or moves it to `move_to`), and waits with IDLE (a NOOP first, so
mail that came before IDLE is seen too) or, where the server has no IDLE, polls. Any
error (the server restarting, the network) closes the connection and reconnects with a
growing pause; a message stored but not yet marked is stored again as the same inbox row
(by its bytes), so nothing is taken twice.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from imapclient import IMAPClient

from server.mail import inbound
from server.storage.state import State

log = logging.getLogger("mydiag.mail")
IDLE_SECONDS = 30.0
POLL_SECONDS = 10.0
BATCH = 50
BATCH_BYTES = 64 << 20


class BadURL(ValueError):
    pass


@dataclass
class Mailbox:
    host: str
    port: int
    user: str
    folder: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> Mailbox:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname or not parts.username:
            raise BadURL(f"--imap must be imap://USER@HOST[:PORT]/FOLDER or imaps://…, not {url!r}")
        if parts.password is not None:
            raise BadURL("--imap must not carry a password: put it in --imap-password-file")
        tls = parts.scheme == "imaps"
        folder = urllib.parse.unquote(parts.path.lstrip("/")) or "INBOX"
        return cls(parts.hostname, parts.port or (993 if tls else 143), urllib.parse.unquote(parts.username),
                   folder, tls)


class Poller:
    def __init__(self, state: State, url: str, password_file: str, move_to: str = "",
                 stored: Optional[Callable[[], None]] = None) -> None:
        self.state = state
        self.box = Mailbox.parse(url)
        self.password_file = Path(password_file)
        self.move_to = move_to
        self.stored = stored or (lambda: None)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="imap")
        self.client: Optional[IMAPClient] = None

    def start(self) -> None:
        self.password_file.read_text()  # fail at start-up, not in the background
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=IDLE_SECONDS + 5)

    def _run(self) -> None:
        pause = 0.5
        while not self.stop_event.is_set():
            try:
                self._session()
                pause = 0.5
            except Exception as exc:  # noqa: BLE001 - reconnect: the server may be restarting
                log.warning("IMAP %s:%s: %s: %s; reconnecting in %.1fs", self.box.host, self.box.port,
                            type(exc).__name__, exc, pause)
                self.stop_event.wait(pause)
                pause = min(pause * 2, 30.0)

    def _connect(self) -> IMAPClient:
        context = ssl.create_default_context() if self.box.tls else None
        client = IMAPClient(self.box.host, port=self.box.port, ssl=self.box.tls, ssl_context=context,
                            timeout=IDLE_SECONDS + 30)
        client.login(self.box.user, self.password_file.read_text().rstrip("\r\n"))
        client.select_folder(self.box.folder)
        return client

    def _session(self) -> None:
        client = self.client = self._connect()
        try:
            idle = b"IDLE" in client.capabilities()
            while not self.stop_event.is_set():
                if self.fetch_once(client):
                    continue
                if idle:
                    self.wait_idle(client)
                else:
                    self.stop_event.wait(POLL_SECONDS)
        finally:
            self.client = None
            with contextlib.suppress(Exception):  # the connection may be gone already
                client.logout()

    def wait_idle(self, client: IMAPClient) -> None:
        """Until the folder changes (or IDLE_SECONDS pass, or stop).

        A NOOP first: mail that came after the last search is announced in its answer, and
        the IDLE that follows would not announce it again, so an announcement there ends
        the wait at once (else such mail waited the whole IDLE_SECONDS).
        """
        _, updates = client.noop()
        if any(isinstance(u, tuple) and len(u) > 1 and u[1] in (b"EXISTS", b"RECENT") for u in updates):
            return
        client.idle()
        try:
            for _ in range(int(IDLE_SECONDS)):
                if self.stop_event.is_set() or client.idle_check(timeout=1.0):
                    break
        finally:
            client.idle_done()

    def fetch_once(self, client: IMAPClient) -> int:
        """Store and mark up to BATCH unseen messages; returns how many were taken."""
        uids = client.search(["UNSEEN"])[:BATCH]
        if not uids:
            return 0
        limit = self.state.config.mail.max_message_bytes
        sizes = client.fetch(uids, ["RFC822.SIZE"])
        wanted: List[int] = []
        total = 0
        for uid in uids:
            size = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
            if wanted and total + size > BATCH_BYTES:
                break  # the rest comes in the next round: one fetch holds at most BATCH_BYTES
            if size > limit:
                log.warning("IMAP message %s is %s bytes, over the limit: left unread", uid, size)
                client.add_flags([uid], [b"\\Seen", b"$MydiagTooLarge"])
            else:
                wanted.append(uid)
                total += size
        bodies = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
        taken = []
        for uid in wanted:
            raw = bodies.get(uid, {}).get(b"BODY[]")
            if raw is not None:
                inbound.receive(self.state, bytes(raw), "", [], "imap")  # durable before it is marked
                taken.append(uid)
        if taken and self.move_to:
            client.move(taken, self.move_to)
        elif taken:
            client.add_flags(taken, [b"\\Seen"])
        if taken:
            self.stored()
        return len(taken)
