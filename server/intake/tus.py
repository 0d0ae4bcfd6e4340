"""Uploads: the tus 1.0 state machine over the database and the blob store.

An upload is `receiving` until its last byte is committed, then `completing` (hashed,
stored once by content hash, turned into a bundle) and `complete`; or `terminated`
(DELETE) or `expired` (untouched too long). Bytes only count once their PATCH commits
the new offset while holding the upload's lease; anything written past the committed
offset is cut off by the next PATCH, so a PATCH at the wrong offset changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from server.auth import Principal
from server.config import Limits
from server.intake import bundles
from server.storage import audit
from server.storage.state import State

log = logging.getLogger("mydiag.server")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
#: Upload-Metadata as tus 1.0 defines it: printable ASCII (keys, base64 values, spaces, commas).
_METADATA_TEXT = re.compile(r"[ -~]*")


@dataclass
class TusError(Exception):
    status: int
    message: str
    headers: Dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def _not_found() -> TusError:
    return TusError(404, "no such upload")


def _load(tx: Any, ticket_id: str, upload_id: str) -> Dict[str, Any]:
    if not _UPLOAD_ID.match(upload_id):
        raise _not_found()
    row = tx.one("SELECT * FROM uploads WHERE id = ? AND ticket_id = ?", (upload_id, ticket_id))
    if row is None:
        raise _not_found()
    if row["state"] in ("terminated", "expired") or (
        row["state"] == "receiving" and row["expires"] < time.time()
    ):
        raise TusError(410, "this upload expired or was terminated; start a new one")
    return row


def safe_filename(name: Optional[str]) -> str:
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _FILENAME.sub("_", base).strip("._")[:120]
    return base or "bundle.tar.zst.age"


def create(state: State, who: Principal, ticket_id: str, length: int,
           metadata: Dict[str, str], raw_metadata: str) -> Dict[str, Any]:
    limits = state.config.limits
    if length <= 0:
        raise TusError(400, "an empty upload cannot be a bundle")
    if length > limits.max_upload_bytes:
        # Tus-Max-Size (tus 1.0) tells a client that this upload, not the ticket, is too big.
        raise TusError(413, f"the upload is {length} bytes; the limit per upload is "
                            f"{limits.max_upload_bytes} bytes",
                       {"Tus-Max-Size": str(limits.max_upload_bytes)})
    declared = metadata.get("sha256")
    if declared is not None and not _SHA256.match(declared):
        raise TusError(400, "Upload-Metadata sha256 must be 64 lowercase hex digits")
    now = time.time()
    # First without the ticket's lock: under load most refusals are a cap already reached
    # (429, 413), and a refusal then costs one read instead of queueing on the lock that
    # every creation and registration of the ticket takes. The verdict that admits an
    # upload is the one under the lock.
    with state.db.tx(write=False) as tx:
        _admissible(tx, ticket_id, declared, length, now, limits)
    with state.db.tx() as tx:
        tx.lock("tickets", ticket_id)
        seen = _admissible(tx, ticket_id, declared, length, now, limits)
        upload_id = secrets.token_hex(16)
        expires = now + limits.upload_expiry_hours * 3600
        if seen["same"] is not None:
            tx.run(
                "INSERT INTO uploads (id, ticket_id, length, received, metadata, declared_sha256,"
                " state, created, updated, expires, sha256, bundle_id)"
                " VALUES (?, ?, ?, ?, ?, ?, 'complete', ?, ?, ?, ?, ?)",
                (upload_id, ticket_id, length, length, raw_metadata, declared, now, now, expires,
                 declared, seen["same"]),
            )
            audit.record(tx, who.actor, "upload.duplicate", ticket_id, upload_id, bundle=seen["same"])
            return _row(upload_id, ticket_id, length, length, raw_metadata, declared, "complete", now,
                        expires, declared, seen["same"])
        if seen["resumable"] is not None:
            return _load(tx, ticket_id, seen["resumable"])
        tx.put(
            "INSERT INTO uploads (id, ticket_id, length, received, metadata, declared_sha256, state,"
            " created, updated, expires) VALUES (?, ?, ?, 0, ?, ?, 'receiving', ?, ?, ?)",
            (upload_id, ticket_id, length, raw_metadata, declared, now, now, expires),
        )
        audit.record(tx, who.actor, "upload.create", ticket_id, upload_id, length=length,
                     filename=safe_filename(metadata.get("filename")))
        return _row(upload_id, ticket_id, length, 0, raw_metadata, declared, "receiving", now, expires)


def _admissible(tx: Any, ticket_id: str, declared: Optional[str], length: int, now: float,
                limits: Limits) -> Dict[str, Any]:
    """What a new upload of the ticket depends on, in one statement (one round trip): the
    bundle these bytes already are, an unfinished upload of them to resume, and the caps.
    Raises the cap's TusError (429 before 413) unless a bundle or upload is reused."""
    seen = tx.one(
        "SELECT (SELECT id FROM bundles WHERE ticket_id = ? AND sha256 = ? AND size = ? LIMIT 1) AS same,"
        " (SELECT id FROM uploads WHERE ticket_id = ? AND declared_sha256 = ? AND length = ?"
        " AND state = 'receiving' AND expires > ? ORDER BY created DESC LIMIT 1) AS resumable,"
        " (SELECT COALESCE(SUM(size), 0) FROM bundles WHERE ticket_id = ?)"
        " + (SELECT COALESCE(SUM(length), 0) FROM uploads WHERE ticket_id = ?"
        " AND state IN ('receiving', 'completing') AND expires > ?) AS used,"
        " (SELECT COUNT(*) FROM uploads WHERE ticket_id = ? AND state = 'receiving' AND expires > ?)"
        " AS open_uploads",
        (ticket_id, declared, length, ticket_id, declared, length, now, ticket_id, ticket_id, now,
         ticket_id, now),
    ) or {}
    if seen.get("same") is not None or seen.get("resumable") is not None:
        return seen
    open_uploads = int(seen.get("open_uploads") or 0)
    if open_uploads >= limits.max_open_uploads:
        # Each unfinished upload holds a staging file and a row until it expires: they are capped.
        raise TusError(429, f"this ticket already has {open_uploads} unfinished uploads (the limit is "
                            f"{limits.max_open_uploads}): finish or DELETE one, or let it expire")
    used_bytes = int(seen.get("used") or 0)
    if used_bytes + length > limits.max_ticket_bytes:
        raise TusError(413, f"this ticket holds {used_bytes} bytes; {length} more would pass its "
                            f"limit of {limits.max_ticket_bytes} bytes")
    return seen


def _row(upload_id: str, ticket_id: str, length: int, received: int, metadata: str,
         declared: Optional[str], upload_state: str, now: float, expires: float,
         sha256: Optional[str] = None, bundle_id: Optional[str] = None) -> Dict[str, Any]:
    """The row just inserted, as `SELECT *` would read it (without that round trip)."""
    return {"id": upload_id, "ticket_id": ticket_id, "length": length, "received": received,
            "metadata": metadata, "declared_sha256": declared, "state": upload_state, "created": now,
            "updated": now, "expires": expires, "lease_owner": None, "lease_until": None,
            "sha256": sha256, "bundle_id": bundle_id}


def get(state: State, ticket_id: str, upload_id: str) -> Dict[str, Any]:
    with state.db.tx(write=False) as tx:
        return _load(tx, ticket_id, upload_id)


def begin_patch(state: State, ticket_id: str, upload_id: str, offset: int,
                body_length: Optional[int]) -> Dict[str, Any]:
    """Check the offset and take the upload's lease; the caller streams, then `end_patch`."""
    row = get(state, ticket_id, upload_id)
    if row["state"] != "receiving" or row["received"] != offset:
        raise TusError(409, f"the upload is at offset {row['received']}, not {offset}",
                       {"Upload-Offset": str(row["received"])})
    if body_length is not None and offset + body_length > row["length"]:
        raise TusError(400, f"{body_length} bytes at offset {offset} run past Upload-Length {row['length']}")
    if not state.claim("uploads", upload_id, "state = 'receiving' AND received = ?", (offset,)):
        again = get(state, ticket_id, upload_id)
        if again["received"] != offset or again["state"] != "receiving":
            raise TusError(409, f"the upload is at offset {again['received']}, not {offset}",
                           {"Upload-Offset": str(again["received"])})
        raise TusError(423, "another request is writing this upload; retry shortly")
    try:
        kept = state.store.staging_size(upload_id)
    except OSError:
        state.release("uploads", upload_id)  # the store is down (503): the retry need not wait for the lease
        raise
    if kept < offset:
        # The disk lost bytes the database had counted (a machine crash): resume from what is there.
        with state.db.tx() as tx:
            tx.run("UPDATE uploads SET received = ?, lease_owner = NULL, lease_until = NULL"
                   " WHERE id = ? AND lease_owner = ?", (kept, upload_id, state.owner))
        raise TusError(409, f"the upload is at offset {kept}, not {offset}", {"Upload-Offset": str(kept)})
    return row


def end_patch(state: State, row: Dict[str, Any], offset: int, written: int,
              sha256: Optional[str] = None) -> Dict[str, Any]:
    """Commit `written` bytes after `offset`; keep the lease when that was the last byte.

    `sha256` is the whole upload's digest when the caller hashed every byte as it came.
    """
    new = offset + written
    done = new == row["length"]
    now = time.time()
    expires = now + state.config.limits.upload_expiry_hours * 3600
    # One statement (one round trip on PostgreSQL); the whole upload's hash goes with the
    # last byte when this process saw every byte.
    changed = state.db.once(
        "UPDATE uploads SET received = ?, updated = ?, expires = ?, state = ?,"
        " sha256 = CASE WHEN ? = 1 THEN COALESCE(sha256, ?) ELSE sha256 END,"
        " lease_owner = CASE WHEN ? = 1 THEN lease_owner END,"
        " lease_until = CASE WHEN ? = 1 THEN lease_until END"
        " WHERE id = ? AND lease_owner = ? AND received = ?",
        (new, now, expires, "completing" if done else "receiving", int(done), sha256, int(done),
         int(done), row["id"], state.owner, offset),
    )
    if changed != 1:
        raise TusError(409, "the upload was taken over by another request; check its offset")
    row = dict(row, received=new, state="completing" if done else "receiving", updated=now, expires=expires)
    if done:
        if row["sha256"] is None:
            row["sha256"] = sha256
        row["lease_owner"] = state.owner
        finished = finish(state, row["id"], sha256, row)
        row = finished or get(state, row["ticket_id"], row["id"])
    return row


def abandon_patch(state: State, upload_id: str) -> None:
    """A PATCH that commits nothing: its bytes past the offset are cut off by the next one."""
    state.release("uploads", upload_id)


def finish(state: State, upload_id: str, known_sha256: Optional[str] = None,
           row: Optional[Dict[str, Any]] = None) -> Optional[Dict[str, Any]]:
    """Hash the finished upload, keep it once by hash, and make it a `received` bundle.

    Verification is not done here: it runs in the background (the sweeper, woken now),
    so the last PATCH answers at once however big or hostile the bundle; the client
    learns the verdict from the upload's HEAD or the bundle's GET. Runs under the
    upload's lease; safe to run again after a crash at any step.
    """
    if row is None:
        with state.db.tx(write=False) as tx:
            row = tx.one("SELECT * FROM uploads WHERE id = ?", (upload_id,))
    if row is None or row["state"] != "completing" or row["lease_owner"] != state.owner:
        return None
    with state.keep_renewed("uploads", upload_id):
        sha256 = row["sha256"] or known_sha256 or state.store.staging_digest(upload_id)
        if row["sha256"] is None:
            with state.db.tx() as tx:
                tx.run("UPDATE uploads SET sha256 = ? WHERE id = ?", (sha256, upload_id))
        if not state.store.exists(sha256) or state.store.staging_size(upload_id):
            state.store.promote(upload_id, sha256)
        metadata = parse_metadata(row["metadata"])
        reason = None
        if row["declared_sha256"] and row["declared_sha256"] != sha256:
            reason = ("the received bytes do not match the sha256 the client declared "
                      "(altered or cut in transit)")
        with state.db.tx() as tx:
            # The bundle and the finished upload in one commit.
            bundle = bundles.register_in(
                tx, row["ticket_id"], sha256, row["length"], safe_filename(metadata.get("filename")),
                f"upload:{upload_id}", reason,
            )
            bundle_id = bundle["id"]
            tx.put("UPDATE uploads SET state = 'complete', bundle_id = ?, lease_owner = NULL,"
                   " lease_until = NULL WHERE id = ?", (bundle_id, upload_id))
            audit.record(tx, "server", "upload.complete", row["ticket_id"], upload_id,
                         sha256=sha256, bundle=bundle_id)
    state.wake()
    # The bundle's status as committed here goes along: the answer needs no read of it.
    return dict(row, state="complete", sha256=sha256, bundle_id=bundle_id, lease_owner=None, lease_until=None,
                bundle_status=bundle["status"], bundle_reason=bundle["reason"])


def terminate(state: State, who: Principal, ticket_id: str, upload_id: str) -> None:
    row = get(state, ticket_id, upload_id)
    if row["state"] == "receiving" and not state.claim("uploads", upload_id):
        raise TusError(423, "another request is writing this upload; retry shortly")
    with state.db.tx() as tx:
        tx.run("UPDATE uploads SET state = 'terminated', lease_owner = NULL, lease_until = NULL"
               " WHERE id = ? AND state IN ('receiving', 'complete')", (upload_id,))
        audit.record(tx, who.actor, "upload.terminate", ticket_id, upload_id)
    if row["state"] == "receiving":
        state.store.discard_staging(upload_id)


def sweep(state: State) -> None:
    """Finish what a dead process left (completions, expired uploads), then verify what
    was received (bundles.sweep). Each upload's failure is its own: the others go on."""
    now = time.time()
    with state.db.tx(write=False) as tx:
        completing = [r["id"] for r in tx.all("SELECT id FROM uploads WHERE state = 'completing'")]
        expired = [r["id"] for r in tx.all(
            "SELECT id FROM uploads WHERE state = 'receiving' AND expires < ?", (now,))]
    for upload_id in completing:
        try:
            if state.claim("uploads", upload_id, "state = 'completing'"):
                finish(state, upload_id)
        except Exception as exc:  # noqa: BLE001 - one upload's fault (a lost staging file) is its own
            log.warning("completing upload %s: %s: %s", upload_id, type(exc).__name__, exc)
    for upload_id in expired:
        if state.claim("uploads", upload_id, "state = 'receiving' AND expires < ?", (now,)):
            with state.db.tx() as tx:
                tx.run("UPDATE uploads SET state = 'expired', lease_owner = NULL, lease_until = NULL"
                       " WHERE id = ?", (upload_id,))
                audit.record(tx, "server", "upload.expire", None, upload_id)
            state.store.discard_staging(upload_id)
    bundles.sweep(state)


def parse_metadata(header: str, limits: Optional[Limits] = None) -> Dict[str, str]:
    """tus Upload-Metadata: comma-separated `key base64value` pairs (value optional).

    Bounded before anything is decoded: the header's length, the number of keys, each
    key's and each decoded value's length (`limits`, the defaults when not given).
    """
    limits = limits or Limits()
    if len(header) > limits.max_metadata_bytes:
        raise TusError(400, f"Upload-Metadata is {len(header)} characters; the limit is "
                            f"{limits.max_metadata_bytes}")
    if not _METADATA_TEXT.fullmatch(header):
        raise TusError(400, "Upload-Metadata must be printable ASCII: `key base64value` pairs")
    pairs = [p.strip() for p in header.split(",") if p.strip()]
    if len(pairs) > limits.max_metadata_keys:
        raise TusError(400, f"Upload-Metadata has {len(pairs)} keys; the limit is {limits.max_metadata_keys}")
    result: Dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition(" ")
        if not key or " " in value.strip():
            raise TusError(400, "Upload-Metadata must be comma-separated `key base64value` pairs")
        if len(key) > limits.max_metadata_key_bytes:
            raise TusError(400, f"an Upload-Metadata key is longer than {limits.max_metadata_key_bytes} "
                                "characters")
        if key in result:
            raise TusError(400, f"Upload-Metadata names {key!r} twice")
        too_long = TusError(400, f"the Upload-Metadata value of {key!r} is longer than "
                                 f"{limits.max_metadata_value_bytes} bytes")
        if len(value.strip()) > (limits.max_metadata_value_bytes + 2) // 3 * 4:
            raise too_long
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
            if len(decoded) > limits.max_metadata_value_bytes:
                raise too_long
            result[key] = decoded.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise TusError(400, f"Upload-Metadata value of {key!r} is not base64 UTF-8") from None
    return result
