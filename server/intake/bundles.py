"""Bundles: sealed files on a ticket, stored once by content hash, verified before they count.

A bundle is `received` until verified, then `accepted` or `quarantined` with the
reason. Nothing is ever dropped: a quarantined bundle keeps its blob for inspection.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from bundle import age
from bundle.paths import member_ok
from bundle.reader import BundleError, members
from server.intake import checks
from server.storage import audit
from server.storage.db import Tx
from server.storage.state import State
from server.support import tickets

_COLUMNS = ("id, ticket_id, sha256, size, filename, status, reason, signer, host, started, finished,"
            " received, verified")


def register(state: State, ticket_id: str, sha256: str, size: int, filename: str, source: str,
             reason: Optional[str] = None) -> str:
    """The bundle for these bytes on this ticket: the existing one, or a new `received` one."""
    with state.db.tx() as tx:
        tx.lock("tickets", ticket_id)
        same = tx.one("SELECT id FROM bundles WHERE ticket_id = ? AND sha256 = ?", (ticket_id, sha256))
        if same is not None:
            audit.record(tx, "server", "bundle.duplicate", ticket_id, same["id"], source=source)
            return same["id"]
        bundle_id = "bd-" + secrets.token_hex(8)
        tx.run("INSERT INTO bundles (id, ticket_id, sha256, size, filename, status, reason, received)"
               " VALUES (?, ?, ?, ?, ?, 'received', ?, ?)",
               (bundle_id, ticket_id, sha256, size, filename, reason, time.time()))
        audit.record(tx, "server", "bundle.receive", ticket_id, bundle_id, sha256=sha256, size=size,
                     source=source)
        return bundle_id


def verify(state: State, bundle_id: str) -> None:
    """Run the checks once, under the bundle's claim; a crash leaves it for the sweep."""
    if not state.claim("bundles", bundle_id, "status = 'received'"):
        return
    with state.db.tx(write=False) as tx:
        row = tx.one("SELECT b.*, t.customer FROM bundles b JOIN tickets t ON t.id = b.ticket_id"
                     " WHERE b.id = ?", (bundle_id,))
    assert row is not None
    with state.keep_renewed("bundles", bundle_id):
        if row["reason"]:
            verdict = checks.Verdict("quarantined", row["reason"])
        else:
            identities = age.read_identities(state.data.identity_path)

            def enrolled(public_key: str) -> Optional[str]:
                with state.db.tx(write=False) as tx:
                    return tickets.enrolled_host(tx, row["customer"], public_key)

            with state.store.local_copy(row["sha256"]) as sealed:
                verdict = checks.check(sealed, identities, enrolled)
    manifest = verdict.manifest
    with state.db.tx() as tx:
        tx.run("UPDATE bundles SET status = ?, reason = ?, signer = ?, host = ?, started = ?,"
               " finished = ?, manifest = ?, verified = ?, claim_owner = NULL, claim_until = NULL"
               " WHERE id = ? AND claim_owner = ?",
               (verdict.status, verdict.reason, verdict.signer, verdict.host, manifest.get("started"),
                manifest.get("finished"), json.dumps(manifest) if manifest else None, time.time(),
                bundle_id, state.owner))
        audit.record(tx, "server", "bundle.accept" if verdict.status == "accepted" else "bundle.quarantine",
                     row["ticket_id"], bundle_id, reason=verdict.reason, signer=verdict.signer)


def sweep(state: State) -> None:
    with state.db.tx(write=False) as tx:
        pending = [r["id"] for r in tx.all("SELECT id FROM bundles WHERE status = 'received'")]
    for bundle_id in pending:
        verify(state, bundle_id)


def as_dict(row: Dict[str, Any]) -> Dict[str, Any]:
    out = {k: row[k] for k in ("id", "ticket_id", "sha256", "size", "filename", "status", "reason",
                               "signer", "host", "started", "finished")}
    out["ticket"] = out.pop("ticket_id")
    out["received"] = tickets.iso(row["received"])
    out["verified"] = tickets.iso(row["verified"]) if row["verified"] else None
    return out


def list_bundles(tx: Tx, ticket_id: str) -> List[Dict[str, Any]]:
    return [as_dict(r) for r in tx.all(f"SELECT {_COLUMNS} FROM bundles WHERE ticket_id = ?"
                                       " ORDER BY received, id", (ticket_id,))]


def get_bundle(tx: Tx, bundle_id: str) -> Optional[Dict[str, Any]]:
    row = tx.one(f"SELECT {_COLUMNS}, manifest FROM bundles WHERE id = ?", (bundle_id,))
    if row is None:
        return None
    out = as_dict(row)
    out["manifest"] = json.loads(row["manifest"]) if row["manifest"] else None
    return out


def import_file(state: State, ticket_id: str, path: Path, actor: str) -> Dict[str, Any]:
    """Take a sealed file handed over by other means, exactly as if it had been uploaded."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    sha256 = digest.hexdigest()
    state.store.put_file(path, sha256)
    bundle_id = register(state, ticket_id, sha256, path.stat().st_size, path.name, f"import:{actor}")
    with state.db.tx() as tx:
        audit.record(tx, actor, "bundle.import", ticket_id, bundle_id, sha256=sha256)
    verify(state, bundle_id)
    with state.db.tx(write=False) as tx:
        result = get_bundle(tx, bundle_id)
    assert result is not None
    return result


def open_bundle(state: State, bundle_id: str, output: Path, actor: str) -> Tuple[Path, Path]:
    """Unseal into OUTPUT/<name>.tar.zst and unpack it into OUTPUT/<name>/ for an engineer."""
    with state.db.tx(write=False) as tx:
        row = tx.one("SELECT id, ticket_id, sha256, filename FROM bundles WHERE id = ?", (bundle_id,))
    if row is None:
        raise LookupError(f"no bundle {bundle_id!r} (see `mydiag-server bundle list`)")
    stem = row["filename"]
    for suffix in (".age", ".tar.zst"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    output.mkdir(parents=True, exist_ok=True)
    plain = output / f"{stem}.tar.zst"
    unpacked = output / stem
    identities = age.read_identities(state.data.identity_path)
    partial = plain.with_name(f".{plain.name}.partial")
    try:
        with state.store.open(row["sha256"]) as sealed, open(partial, "wb") as out:
            age.decrypt(sealed, out, identities)
        os.replace(partial, plain)
    finally:
        if partial.exists():
            partial.unlink()
    shutil.rmtree(unpacked, ignore_errors=True)
    unpacked.mkdir()
    try:
        for info, handle in members(plain):
            if handle is None or not member_ok(info.name):
                continue
            target = unpacked / info.name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                shutil.copyfileobj(handle, out)
    except BundleError:
        pass  # a quarantined bundle may not unpack; the unsealed file is still there to look at
    with state.db.tx() as tx:
        audit.record(tx, actor, "bundle.open", row["ticket_id"], bundle_id)
    return plain, unpacked
