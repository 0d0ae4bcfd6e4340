"""Background uploads of the spool's bundles: oldest first, one at a time, with backoff.

The loop talks to one small interface, `Uploader.upload(path) -> Shipped`, which either
returns once the server confirmed what it stored or raises `Retry` (worth trying again
later: the server is away, the network broke) or `Blocked` (the server said no: token,
ticket, a changed recipient; the loop waits its longest pause and says why). Order is
kept: a bundle is never sent before an older one has been confirmed.

`TicketUploader` is the one implementation: the tus client of agent.remote.upload, sealing a
plain bundle to the ticket's pinned recipients first (beside it in its spool folder, with
the resume journal, so a restarted agent resumes instead of starting over).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from agent.daemon.config import ServerConfig
from agent.daemon.spool import Spool
from agent.remote import pins
from agent.remote.transport import Client, Transient
from agent.remote.upload import Backoff, Refused, TooLarge, UploadError, fetch_ticket, upload_file
from bundle import age


class Retry(Exception):
    """Try again later; the message says what went wrong, without secrets."""


class Blocked(Exception):
    """The server refused; retrying soon will not help."""


class SetAside(Exception):
    """The server will never take this bundle (over its size limit); the next ones still go."""


@dataclass
class Shipped:
    sha256: str
    bundle: str
    status: str
    reason: Optional[str] = None


class Uploader:
    def upload(self, path: Path) -> Shipped:
        raise NotImplementedError

    def recipients(self) -> Optional[List[str]]:
        """The ticket's pinned recipients if already known (no network), to seal at capture."""
        return None

    def forget(self, path: Path) -> None:
        """The spool recorded `path` as uploaded: drop what was kept only to resume its upload."""
        return None

    def close(self) -> None:
        return None


class TicketUploader(Uploader):
    def __init__(self, server: ServerConfig) -> None:
        self.server = server
        self.client = Client(server.url, server.token)
        self._recipients: Optional[List[str]] = None

    def __repr__(self) -> str:
        return f"TicketUploader({self.server.url!r}, ticket {self.server.ticket!r})"

    def recipients(self) -> Optional[List[str]]:
        if self._recipients is None:
            entry = _pinned_entry(self.client.server, self.server.ticket)
            if entry:
                self._recipients = list(entry)
        return self._recipients

    def _fetch_recipients(self) -> List[str]:
        found = fetch_ticket(self.client, self.server.ticket, Backoff(attempts=1, base=0.2, cap=0.5))
        offered = [r for r in found.get("recipients", []) if isinstance(r, str)]
        for recipient in offered:
            try:
                age.parse_recipient(recipient)
            except age.AgeError:
                raise Blocked(
                    f"the server offered an invalid recipient for ticket {self.server.ticket}") from None
        try:
            self._recipients = pins.pinned(self.client.server, self.server.ticket, offered)
        except pins.RecipientChanged as exc:
            raise Blocked(str(exc)) from None
        return self._recipients

    def upload(self, path: Path) -> Shipped:
        try:
            target = path
            if not age.is_age_file(path):
                recipients = self._fetch_recipients()
                target = path.with_name(path.name + ".age")
                if not target.exists():
                    age.seal_file(path, target, recipients)
            # Short retries here; the agent's loop does the long waits between attempts.
            # The sealed copy stays until the spool has recorded the upload (`forget`): killed in
            # between, the next attempt sends the same bytes, which the server recognizes.
            outcome = upload_file(target, self.client, self.server.ticket,
                                  backoff=Backoff(attempts=2, base=0.2, cap=1.0), remove=False)
        except TooLarge as exc:
            raise SetAside(str(exc)) from None
        except Refused as exc:
            raise Blocked(str(exc)) from None
        except (UploadError, Transient) as exc:
            raise Retry(str(exc)) from None
        except age.AgeError as exc:
            raise Blocked(f"cannot seal {path.name}: {exc}") from None
        except OSError as exc:
            raise Retry(f"{path.name}: {exc.strerror or exc}") from None
        return Shipped(outcome.sha256, outcome.bundle, outcome.status, outcome.reason)

    def forget(self, path: Path) -> None:
        if path.name.endswith(".age"):
            return
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + ".age").unlink()

    def close(self) -> None:
        self.client.close()


def _pinned_entry(server: str, ticket: str) -> Optional[List[str]]:
    import json

    try:
        data = json.loads(pins.pins_path().read_text())
    except (OSError, ValueError):
        return None
    entry = data.get(f"{server} {ticket}") if isinstance(data, dict) else None
    return list(entry["recipients"]) if isinstance(entry, dict) and entry.get("recipients") else None


Log = Callable[[str], None]


class Shipper(threading.Thread):
    """The background loop: `wake()` after a commit; `stop` ends it between attempts."""

    def __init__(self, spool: Spool, uploader: Uploader, backoff_max: float, stop: threading.Event,
                 log: Log, first_pause: float = 1.0) -> None:
        super().__init__(name="mydiag-upload", daemon=True)
        self.spool, self.uploader, self.backoff_max = spool, uploader, backoff_max
        self.stop, self.log = stop, log
        self.first_pause = first_pause
        self._wake = threading.Event()
        self.pause = 0.0
        self.next_attempt: Optional[float] = None
        self.last_error = ""
        self.last_ok: Optional[str] = None
        self.uploaded = 0

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        while not self.stop.is_set():
            self._wake.clear()
            if not self.pass_once():
                continue
            self._wake.wait(60.0)

    def pass_once(self, wait: bool = True) -> bool:
        """Send the backlog in order. True when it is empty; False after a failure (and its pause)."""
        while not self.stop.is_set():
            pending = self.spool.pending()
            if not pending:
                return True
            entry = pending[0]
            first = entry.attempts == 0
            try:
                shipped = self.uploader.upload(self.spool.path(entry))
            except SetAside as exc:
                # Kept in the spool (never evicted: it was not uploaded) and shown by status;
                # the queue goes on rather than waiting for what will never change.
                self.last_error = str(exc)
                try:
                    self.spool.mark(entry.seq, rejected=str(exc))
                except OSError as err:
                    self.log(f"upload of {entry.file} refused ({exc}) but cannot record it: "
                             f"{err.strerror}")
                    self.stop.wait(self.backoff_max)
                    return False
                self.log(f"upload of {entry.file} set aside: {exc}; it stays in the spool, "
                         "the next bundles go on")
                continue
            except (Retry, Blocked) as exc:
                blocked = isinstance(exc, Blocked)
                self.pause = self.backoff_max if blocked else min(
                    max(self.pause * 2, self.first_pause), self.backoff_max)
                self.last_error = str(exc)
                with contextlib.suppress(OSError):
                    self.spool.mark(entry.seq, error=str(exc))
                if first or blocked:
                    self.log(f"upload of {entry.file} failed: {exc}; "
                             f"retrying in {self.pause:.0f}s, in order, while the spool keeps it")
                if not wait:
                    return False
                self.next_attempt = time.time() + self.pause
                self.stop.wait(self.pause)
                self.next_attempt = None
                return False
            self.pause = 0.0
            self.last_error = ""
            self.last_ok = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.uploaded += 1
            note = f" ({shipped.status}: {shipped.reason})" if shipped.reason else ""
            self.log(f"uploaded {entry.file} to bundle {shipped.bundle or '?'}{note}")
            try:
                self.spool.mark(entry.seq, uploaded=True)
            except OSError as exc:
                # Sent but not recorded: the next pass sends it again, and the server knows it.
                self.log(f"uploaded {entry.file} but cannot record it: {exc.strerror}")
                self.stop.wait(self.backoff_max)
                return False
            self.uploader.forget(self.spool.path(entry))
        return False
