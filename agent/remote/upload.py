"""Uploads a sealed bundle to a ticket over tus 1.0, resumably, exactly once.

- Each chunk is a PATCH; after a cut the server keeps what it received and the next
  PATCH starts there. With `chunk_checksum`, each PATCH carries a SHA-1
  `Upload-Checksum` instead and a chunk cut short is dropped whole (at most one chunk is
  sent twice). Off by default: it costs CPU on both sides and adds no proof, since the
  age envelope authenticates every 64 KiB and the server confirms the whole file's
  SHA-256 before anything local is deleted (TLS covers the transit on https).
- A journal next to the file (`<file>.upload.json`: upload URL, size, sha256) lets a
  restarted agent ask the server for the offset (HEAD) and send only the rest.
- The whole file's sha256 goes with the creation request: the same bytes sent twice
  are recognized by the server and not sent or stored again. Past EARLY_HASH bytes the
  hash runs in a thread alongside the first chunks instead of delaying them; when it is
  ready, bytes the ticket already holds stop the upload (and the server never keeps the
  same bytes twice in any case). No chunk past EARLY_HASH bytes is sent before the hash is
  known, so a duplicate never costs more than EARLY_HASH bytes of sending, however slow
  the disk or busy the host.
- Network errors, 5xx and 423 are retried with exponential backoff and jitter.
- The local file is removed only when the server reports the same sha256 as ours.
- The server verifies in the background: the upload asks (HEAD) until the verdict is in.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import random
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional

from agent.remote.transport import API, Client, Reply, Transient

CHUNK = 16 << 20
#: Files up to this size are hashed before the upload starts.
EARLY_HASH = 64 << 20
JOURNAL_SUFFIX = ".upload.json"
#: How long an upload waits for the server's verdict once the last byte is in.
VERDICT_WAIT = 120.0
#: The longest a single HEAD asks the server to hold it for the verdict (`Prefer: wait=N`).
HELD_WAIT = 15
TUS = {"Tus-Resumable": "1.0.0"}
_SLICE = 1 << 20


class UploadError(Exception):
    """The upload stopped; the message is one line. Running the same command again resumes."""


class Refused(UploadError):
    """The server said no (token, ticket, size): retrying will not help."""


class TooLarge(Refused):
    """This one file is over the server's limit per upload; smaller ones still go."""


@dataclass
class Outcome:
    bundle: str
    status: str
    reason: Optional[str]
    sha256: str
    size: int
    sent: int
    duplicate: bool


Progress = Callable[[int, int], None]


def _quiet(_done: int, _total: int) -> None:
    return None


class Backoff:
    """Exponential backoff with jitter; the streak resets whenever progress is made."""

    def __init__(self, attempts: int = 10, base: float = 0.5, cap: float = 30.0) -> None:
        self.attempts, self.base, self.cap = attempts, base, cap
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def wait(self, why: str) -> None:
        self.failures += 1
        if self.failures > self.attempts:
            raise UploadError(f"{why}; gave up after {self.attempts} retries "
                              "(run the same command again to resume where it stopped)")
        delay = min(self.cap, self.base * 2 ** (self.failures - 1))
        time.sleep(delay / 2 + random.uniform(0, delay / 2))


def refusal(reply: Reply, ticket: str) -> Refused:
    if reply.status == 401:
        return Refused(f"the server refused the token for ticket {ticket} (wrong or expired): "
                       "ask support for a new upload token")
    if reply.status == 404:
        return Refused(f"no ticket {ticket} on this server for this token")
    if reply.status == 413 and reply.headers.get("tus-max-size"):
        return TooLarge(f"the server refused this bundle: {reply.error()}")
    return Refused(f"the server refused: {reply.error()}")


def fetch_ticket(client: Client, ticket: str, backoff: Optional[Backoff] = None) -> Dict:
    backoff = backoff or Backoff()
    while True:
        try:
            reply = client.get_json(f"{API}/tickets/{urllib.parse.quote(ticket, safe='')}")
        except Transient as exc:
            backoff.wait(str(exc))
            continue
        if reply.status == 200 and isinstance(reply.json(), dict):
            return reply.json()
        if reply.status >= 500:
            backoff.wait(f"the server failed ({reply.error()})")
            continue
        raise refusal(reply, ticket)


def enroll(client: Client, ticket: str, public_key: str, hostname: str) -> Dict:
    backoff = Backoff()
    while True:
        try:
            reply = client.post_json(f"{API}/tickets/{urllib.parse.quote(ticket, safe='')}/hosts",
                                     {"public_key": public_key, "hostname": hostname})
        except Transient as exc:
            backoff.wait(str(exc))
            continue
        if reply.status == 201:
            return reply.json()
        if reply.status >= 500:
            backoff.wait(f"the server failed ({reply.error()})")
            continue
        raise refusal(reply, ticket)


class Journal:
    """`<file>.upload.json`: where this file's upload lives, so a restart can resume it."""

    def __init__(self, target: Path) -> None:
        self.path = target.with_name(target.name + JOURNAL_SUFFIX)

    def load(self, server: str, ticket: str, size: int, mtime_ns: int) -> Dict:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        same = (data.get("server"), data.get("ticket"), data.get("size"), data.get("mtime_ns")) == (
            server, ticket, size, mtime_ns)
        return data if same else {}

    def save(self, data: Dict) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _metadata(**values: Optional[str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items()
                    if v is not None)


class _BackgroundDigest:
    """A file's SHA-256 computed in a thread (hashlib releases the GIL on large blocks)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._value: Optional[str] = None
        self._error: Optional[OSError] = None
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = sha256_file(self._path)
        except OSError as exc:
            self._error = exc

    def ready(self) -> bool:
        return not self._thread.is_alive()

    def value(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def _offset_of(reply: Reply, size: int) -> Optional[int]:
    """The Upload-Offset a reply states, when it is a usable one (else None: ask with HEAD)."""
    text = reply.headers.get("upload-offset", "")
    return int(text) if text.isdigit() and int(text) < size else None


def _held_by_ticket(client: Client, ticket: str, sha256: str) -> Optional[Dict]:
    """The ticket's bundle with these bytes, if it has one (None when unsure)."""
    try:
        reply = client.get_json(f"{API}/tickets/{urllib.parse.quote(ticket, safe='')}/bundles")
    except Transient:
        return None
    listed = reply.json() if reply.status == 200 else None
    if not isinstance(listed, list):
        return None
    return next((b for b in listed if isinstance(b, dict) and b.get("sha256") == sha256), None)


def upload_file(path: Path, client: Client, ticket: str, *, chunk_size: int = CHUNK,
                progress: Progress = _quiet, backoff: Optional[Backoff] = None,
                remove: bool = True, chunk_checksum: bool = False,
                verdict_wait: float = VERDICT_WAIT) -> Outcome:
    """Send `path` to the ticket, resuming any earlier attempt; see the module docstring.

    Waits up to `verdict_wait` seconds for the server's verdict (accepted or quarantined);
    past that the outcome says `received`, still being verified.

    The journal is dropped when the server's SHA-256 differs, so a new run starts afresh.
    """
    backoff = backoff or Backoff()
    stat = path.stat()
    size = stat.st_size
    journal = Journal(path)
    state = journal.load(client.server, ticket, size, stat.st_mtime_ns)
    if not state:
        state = {"server": client.server, "ticket": ticket, "size": size, "mtime_ns": stat.st_mtime_ns,
                 "sha256": None, "location": None}
    digest = _BackgroundDigest(path) if state["sha256"] is None else None
    if digest is not None and size <= EARLY_HASH:
        state["sha256"], digest = digest.value(), None
    held: Optional[Dict] = None
    collection = f"{API}/tickets/{urllib.parse.quote(ticket, safe='')}/uploads"
    offset: Optional[int] = None
    sent = 0
    duplicate = False
    final: Optional[Reply] = None
    with open(path, "rb") as source:
        while final is None:
            if digest is not None and (digest.ready() or (offset or 0) + chunk_size > EARLY_HASH):
                state["sha256"], digest = digest.value(), None
                if state["location"] is not None:
                    journal.save(state)
                held = _held_by_ticket(client, ticket, state["sha256"])
                if held is not None:
                    _terminate(client, state["location"])
                    break
            try:
                if state["location"] is None:
                    reply = client.request("POST", collection, {
                        **TUS, "Upload-Length": str(size),
                        "Upload-Metadata": _metadata(filename=path.name, sha256=state["sha256"])})
                    if reply.status != 201 or "location" not in reply.headers:
                        _fail(reply, ticket, backoff)
                        continue
                    state["location"] = urllib.parse.urlsplit(reply.headers["location"]).path
                    journal.save(state)
                    # The creation's answer says where to start (0, or further for an upload
                    # of the same bytes handed back to resume): no HEAD needed before the PATCH.
                    offset = _offset_of(reply, size)
                    if "mydiag-sha256" in reply.headers:
                        duplicate = True
                        final = reply
                        continue
                if offset is None:
                    reply = client.request("HEAD", state["location"], dict(TUS))
                    if reply.status in (404, 410):
                        state["location"] = None
                        continue
                    if reply.status != 200:
                        _fail(reply, ticket, backoff)
                        continue
                    offset = int(reply.headers.get("upload-offset", "0"))
                    progress(offset, size)
                    if offset >= size:
                        final = reply
                        continue
                if digest is not None and offset + chunk_size > EARLY_HASH:
                    continue  # the loop's head waits for the hash before this chunk
                source.seek(offset)
                chunk = source.read(min(chunk_size, size - offset))
                headers = {**TUS, "Upload-Offset": str(offset), "Content-Length": str(len(chunk)),
                           "Content-Type": "application/offset+octet-stream"}
                if chunk_checksum:
                    digest_b64 = base64.b64encode(hashlib.sha1(chunk).digest()).decode()
                    headers["Upload-Checksum"] = f"sha1 {digest_b64}"
                reply = client.request(
                    "PATCH", state["location"], headers,
                    _slices(chunk, offset, size, progress),
                    timeout=max(client.timeout, 600.0) if offset + len(chunk) == size else None,
                )
                sent += len(chunk)
                if reply.status == 204:
                    offset = int(reply.headers.get("upload-offset", offset + len(chunk)))
                    backoff.reset()
                    if offset >= size:
                        final = reply
                elif reply.status in (409, 460):
                    offset = None
                    backoff.wait(f"the server did not take the chunk ({reply.error()})")
                else:
                    offset = None
                    _fail(reply, ticket, backoff)
            except Transient as exc:
                offset = None
                backoff.wait(str(exc))
        while final is not None and "mydiag-sha256" not in final.headers:
            # Another server process finishes the upload after a crash: wait for its verdict.
            backoff.wait("the server has not confirmed the upload yet")
            final = client.request("HEAD", state["location"], dict(TUS))
        if final is not None:
            final = _await_verdict(client, state["location"], final, verdict_wait)
    sha256 = state["sha256"] or digest.value()
    if held is not None:
        journal.remove()
        if remove:
            path.unlink()
        return Outcome(bundle=held.get("id", ""), status=held.get("status", ""), reason=held.get("reason"),
                       sha256=sha256, size=size, sent=sent, duplicate=True)
    assert final is not None
    confirmed = final.headers["mydiag-sha256"]
    if confirmed != sha256:
        journal.remove()
        raise UploadError(f"the server stored bytes with sha256 {confirmed[:16]}…, ours are "
                          f"{sha256[:16]}…; {path} was kept (the file changed while uploading?)")
    journal.remove()
    if remove:
        path.unlink()
    status = final.headers.get("mydiag-bundle-status", "")
    reason = final.headers.get("mydiag-reason")
    if status == "received":
        reason = "the server is still verifying it (its verdict shows in the ticket's bundle list)"
    return Outcome(
        bundle=final.headers.get("mydiag-bundle", ""), status=status, reason=reason, sha256=sha256,
        size=size, sent=sent, duplicate=duplicate,
    )


def _await_verdict(client: Client, location: str, final: Reply, wait: float) -> Reply:
    """The reply that carries the server's verdict: the server verifies a finished upload
    in the background, so the last PATCH says `received`; ask again (HEAD) for up to
    `wait` seconds. Each HEAD asks the server to answer only once the verdict is in
    (`Prefer: wait=N`, RFC 7240; at most HELD_WAIT s): one request instead of a poll every
    few hundred milliseconds. A server that does not hold the request answers at once, and
    the pauses between asks grow as before. Network trouble here costs only the verdict."""
    deadline = time.monotonic() + wait
    pause = 0.05
    while final.headers.get("mydiag-bundle-status") == "received" and time.monotonic() < deadline:
        held = min(HELD_WAIT, max(1, int(deadline - time.monotonic())))
        started = time.monotonic()
        try:
            reply = client.request("HEAD", location, {**TUS, "Prefer": f"wait={held}"},
                                   timeout=max(client.timeout, held + 30.0))
        except Transient:
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, 2.0)
            continue
        if reply.status == 200 and "mydiag-sha256" in reply.headers:
            final = reply
        still = final.headers.get("mydiag-bundle-status") == "received"
        if still and ("preference-applied" not in reply.headers or time.monotonic() - started < 0.5):
            # Not held (an older server) or answered at once: pause before asking again.
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, 2.0)
    return final


def _terminate(client: Client, location: Optional[str]) -> None:
    """Drop an upload whose bytes the ticket turned out to hold already (best effort)."""
    if location is None:
        return
    with contextlib.suppress(Transient):
        client.request("DELETE", location, dict(TUS))


def _fail(reply: Reply, ticket: str, backoff: Backoff) -> None:
    """Wait and let the caller retry when that can help; raise when it cannot."""
    if reply.status >= 500 or reply.status in (423, 429):
        backoff.wait(f"the server answered {reply.status} ({reply.error()})")
        return
    raise refusal(reply, ticket)


def _slices(chunk: bytes, offset: int, size: int, progress: Progress) -> Iterator[bytes]:
    view = memoryview(chunk)
    for start in range(0, len(view), _SLICE):
        part = view[start:start + _SLICE]
        yield part
        progress(offset + start + len(part), size)
