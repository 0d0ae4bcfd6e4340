"""Remote sessions as records: grants, who may join them, and how they end.

A grant is made by the customer (a ticket's upload token) for one engineer, a mode
(`diag` or `shell`), a purpose and a time limit, with the public half of the key the
customer's host will dial the gateway with. A session is `live` until it expires, is
revoked (by the customer, or ended by an engineer) or ends with the grant process;
only a live session that has not passed its deadline admits its engineer. Every step
goes to the audit log under the ticket, which makes the ticket's timeline.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any, Dict, List, Optional, Tuple

from server.storage import audit
from server.storage.db import Tx
from server.support.tickets import Invalid, clean_name, clean_text, iso

MODES = ("diag", "shell")
MAX_SECONDS = 24 * 3600
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "ssh-rsa")
_ID_CHARS = "abcdefghijkmnpqrstuvwxyz23456789"


def session_id_ok(value: str) -> bool:
    return len(value) == 13 and value.startswith("ss-") and all(c in _ID_CHARS for c in value[3:])


def parse_public_key(text: str) -> Tuple[str, str]:
    """(type, base64 blob) of an OpenSSH public key line; the comment is dropped."""
    words = text.strip().split()
    if len(words) < 2 or words[0] not in KEY_TYPES:
        raise Invalid(f"a public key must be an OpenSSH line starting with one of {', '.join(KEY_TYPES)}")
    try:
        blob = base64.b64decode(words[1], validate=True)
    except ValueError:
        raise Invalid("the public key's base64 is damaged") from None
    name_length = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else 0
    if blob[4:4 + name_length].decode("ascii", "replace") != words[0]:
        raise Invalid("the public key's type and its contents disagree")
    return words[0], words[1]


def fingerprint(blob_b64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(blob_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def add_engineer_key(tx: Tx, name: str, public_key: str, actor: str) -> str:
    kind, blob = parse_public_key(public_key)
    print_ = fingerprint(blob)
    if tx.one("SELECT name FROM engineers WHERE name = ?", (name,)) is None:
        raise Invalid(f"no engineer {name!r}")
    if tx.one("SELECT name FROM engineer_keys WHERE fingerprint = ?", (print_,)):
        raise Invalid(f"the key {print_} is already registered")
    tx.run("INSERT INTO engineer_keys (fingerprint, name, public_key, added) VALUES (?, ?, ?, ?)",
           (print_, name, f"{kind} {blob}", time.time()))
    audit.record(tx, actor, "engineer.ssh_key", subject=name, fingerprint=print_)
    return print_


def engineer_for_key(tx: Tx, name: str, kind: str, blob_b64: str) -> bool:
    row = tx.one("SELECT name, public_key FROM engineer_keys WHERE fingerprint = ?",
                 (fingerprint(blob_b64),))
    return row is not None and row["name"] == name and row["public_key"] == f"{kind} {blob_b64}"


def grant(tx: Tx, ticket_id: str, granted_by: str, engineer: str, seconds: float, purpose: str,
          mode: str, tunnel_key: str, host: str) -> Dict[str, Any]:
    engineer = clean_name(engineer, "an engineer name")
    purpose = clean_text(purpose, "a purpose", 300)
    host = clean_text(host, "a host name", 255)
    if mode not in MODES:
        raise Invalid(f"mode must be one of {', '.join(MODES)}")
    if not 1 <= seconds <= MAX_SECONDS:
        raise Invalid(f"a session lasts from 1 second to {MAX_SECONDS // 3600} hours")
    kind, blob = parse_public_key(tunnel_key)
    row = tx.one("SELECT role FROM engineers WHERE name = ?", (engineer,))
    if row is None:
        raise Invalid(f"no engineer {engineer!r} on this server")
    if tx.one("SELECT fingerprint FROM engineer_keys WHERE name = ?", (engineer,)) is None:
        raise Invalid(f"engineer {engineer!r} has no SSH key registered, so could not join "
                      "(`mydiag-server engineer add … --ssh-key FILE`)")
    session_id = "ss-" + "".join(secrets.choice(_ID_CHARS) for _ in range(10))
    now = time.time()
    tx.run("INSERT INTO sessions (id, ticket_id, engineer, mode, purpose, host, tunnel_key, granted_by, "
           "created, expires, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'live')",
           (session_id, ticket_id, engineer, mode, purpose, host, f"{kind} {blob}", granted_by, now,
            now + seconds))
    audit.record(tx, granted_by, "session.grant", ticket_id, session_id, engineer=engineer, mode=mode,
                 purpose=purpose, host=host, expires=iso(now + seconds))
    found = get(tx, session_id)
    assert found is not None
    return found


def get(tx: Tx, session_id: str) -> Optional[Dict[str, Any]]:
    if not session_id_ok(session_id):
        return None
    row = tx.one("SELECT * FROM sessions WHERE id = ?", (session_id,))
    return None if row is None else _public(row)


def raw(tx: Tx, session_id: str) -> Optional[Dict[str, Any]]:
    if not session_id_ok(session_id):
        return None
    return tx.one("SELECT * FROM sessions WHERE id = ?", (session_id,))


def _public(row: Dict[str, Any]) -> Dict[str, Any]:
    state = row["state"]
    if state == "live" and row["expires"] <= time.time():
        state = "expired"
    return {"id": row["id"], "ticket": row["ticket_id"], "engineer": row["engineer"], "mode": row["mode"],
            "purpose": row["purpose"], "host": row["host"], "granted_by": row["granted_by"],
            "created": iso(row["created"]), "expires": iso(row["expires"]),
            "expires_in": max(0.0, round(row["expires"] - time.time(), 3)), "state": state,
            "ended": iso(row["ended"]) if row["ended"] else None, "end_reason": row["end_reason"],
            "parts": row["parts"]}


def list_for_ticket(tx: Tx, ticket_id: Optional[str]) -> List[Dict[str, Any]]:
    if ticket_id:
        rows = tx.all("SELECT * FROM sessions WHERE ticket_id = ? ORDER BY created", (ticket_id,))
    else:
        rows = tx.all("SELECT * FROM sessions ORDER BY created")
    return [_public(r) for r in rows]


def live(row: Optional[Dict[str, Any]]) -> bool:
    return row is not None and row["state"] == "live" and row["expires"] > time.time()


def why_not(row: Optional[Dict[str, Any]], engineer: str, session_id: str) -> Optional[str]:
    """None when `engineer` may join; else the one line they are told (and the audit keeps)."""
    if row is None or row["engineer"] != engineer:
        return f"no session {session_id} is open to {engineer}"
    if row["state"] == "live" and row["expires"] <= time.time():
        return f"session {session_id} expired at {iso(row['expires'])}"
    if row["state"] != "live":
        return f"session {session_id} has ended ({row['end_reason'] or row['state']})"
    return None


def end(tx: Tx, session_id: str, state: str, reason: str, actor: str) -> bool:
    """Close a live session for good; False when it had already ended."""
    tx.lock("sessions", session_id)
    row = tx.one("SELECT ticket_id, state, expires FROM sessions WHERE id = ?", (session_id,))
    if row is None or row["state"] != "live":
        return False
    tx.run("UPDATE sessions SET state = ?, ended = ?, end_reason = ? WHERE id = ? AND state = 'live'",
           (state, time.time(), reason, session_id))
    action = {"revoked": "session.revoke", "expired": "session.expire"}.get(state, "session.end")
    audit.record(tx, actor, action, row["ticket_id"], session_id, reason=reason)
    return True


def next_part(tx: Tx, session_id: str) -> int:
    tx.lock("sessions", session_id)
    tx.run("UPDATE sessions SET parts = parts + 1 WHERE id = ?", (session_id,))
    row = tx.one("SELECT parts FROM sessions WHERE id = ?", (session_id,))
    return int(row["parts"]) if row else 0


def event(tx: Tx, session_id: str, actor: str, action: str, **detail: Any) -> None:
    """An audit entry under the session's ticket (join, refuse, tunnel up/down, recording)."""
    row = tx.one("SELECT ticket_id FROM sessions WHERE id = ?", (session_id,)) \
        if session_id_ok(session_id) else None
    audit.record(tx, actor, action, row["ticket_id"] if row else None,
                 session_id if row else None, **detail)


def refuse(tx: Tx, session_id: str, engineer: str, reason: str) -> None:
    event(tx, session_id, f"engineer:{engineer}", "session.refuse", reason=reason,
          asked_for=session_id[:40])


def ticket_of(tx: Tx, session_id: str) -> Optional[str]:
    row = raw(tx, session_id)
    return row["ticket_id"] if row else None

