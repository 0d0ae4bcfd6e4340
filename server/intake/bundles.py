"""Bundles: sealed files on a ticket, stored once by content hash, verified before they count.

A bundle is `received` until verified, then `accepted` or `quarantined` with the
reason. Nothing is ever dropped: a quarantined bundle keeps its blob for inspection.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from bundle import age
from bundle.limits import Limits as BundleLimits
from bundle.reader import BundleError, members
from server.config import Limits
from server.intake import checks, reports
from server.storage import audit
from server.storage.db import Tx
from server.storage.state import State
from server.support import tickets

log = logging.getLogger("mydiag.server")
#: The longest pause between two attempts at a verification that crashed.
RETRY_CAP_SECONDS = 3600.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

_COLUMNS = ("id, ticket_id, sha256, size, filename, status, reason, signer, host, started, finished,"
            " received, verified")


def register(state: State, ticket_id: str, sha256: str, size: int, filename: str, source: str,
             reason: Optional[str] = None) -> str:
    """The bundle for these bytes on this ticket: the existing one, or a new `received` one."""
    with state.db.tx() as tx:
        return register_in(tx, ticket_id, sha256, size, filename, source, reason)["id"]


def register_in(tx: Tx, ticket_id: str, sha256: str, size: int, filename: str, source: str,
                reason: Optional[str] = None) -> Dict[str, Any]:
    """`register` within the caller's transaction (a finished upload becomes its bundle in
    the same commit): the bundle's id, status and reason."""
    tx.lock("tickets", ticket_id)
    same = tx.one("SELECT id, status, reason FROM bundles WHERE ticket_id = ? AND sha256 = ?",
                  (ticket_id, sha256))
    if same is not None:
        audit.record(tx, "server", "bundle.duplicate", ticket_id, same["id"], source=source)
        return same
    bundle_id = "bd-" + secrets.token_hex(8)
    tx.put("INSERT INTO bundles (id, ticket_id, sha256, size, filename, status, reason, received)"
           " VALUES (?, ?, ?, ?, ?, 'received', ?, ?)",
           (bundle_id, ticket_id, sha256, size, filename, reason, time.time()))
    audit.record(tx, "server", "bundle.receive", ticket_id, bundle_id, sha256=sha256, size=size,
                 source=source)
    return {"id": bundle_id, "status": "received", "reason": reason}


def verify(state: State, bundle_id: str) -> None:
    """Run the checks once, under the bundle's claim.

    A bundle that fails a check is quarantined with the reason. A verification that
    crashes (the blob unreadable, a bug, the process killed) is not a verdict: the attempt
    is counted before it starts, so the sweep retries it with a growing pause and, after
    `verify_attempts`, quarantines it ("verification failed repeatedly").
    """
    if not state.claim("bundles", bundle_id, "status = 'received'"):
        return
    with state.db.tx(write=False) as tx:
        row = tx.one("SELECT b.*, t.customer FROM bundles b JOIN tickets t ON t.id = b.ticket_id"
                     " WHERE b.id = ?", (bundle_id,))
    if row is None:
        return
    limits = state.config.limits
    attempt, last_error = _begin_attempt(state, bundle_id)
    if attempt > limits.verify_attempts:
        _settle(state, row, checks.Verdict("quarantined", checks.one_line(
            f"verification failed repeatedly ({attempt - 1} attempts; the last: {last_error})")))
        return
    try:
        with state.keep_renewed("bundles", bundle_id):
            verdict = _run_checks(state, row)
    except Exception as exc:  # noqa: BLE001 - a crash is retried later, never a verdict
        _attempt_failed(state, bundle_id, exc)
        return
    _settle(state, row, verdict)
    if verdict.status == "accepted":
        if state.reports_due is not None:
            # The server's report worker renders it: the next bundles' verdicts do not wait
            # behind this one's report (most of a verification's time was its report).
            state.reports_due.set()
        else:
            reports.render_quietly(state, bundle_id)  # here, in the background: never a request's wait


def _run_checks(state: State, row: Dict[str, Any]) -> checks.Verdict:
    if row["reason"]:
        return checks.Verdict("quarantined", row["reason"])
    identities = age.read_identities(state.data.identity_path)

    def enrolled(public_key: str) -> Optional[str]:
        with state.db.tx(write=False) as tx:
            return tickets.enrolled_host(tx, row["customer"], public_key)

    with state.store.local_copy(row["sha256"]) as sealed:
        return checks.check(sealed, identities, enrolled, state.config.limits.bundle_limits())


def _begin_attempt(state: State, bundle_id: str) -> Tuple[int, str]:
    """Count one more attempt and when the next may start: (this attempt's number, the
    last failure's text)."""
    limits = state.config.limits
    # The first attempt (nearly every bundle's only one) is one autocommitted INSERT.
    if state.db.once("INSERT INTO bundle_attempts (bundle_id, attempts, next_try) VALUES (?, 1, ?)"
                     " ON CONFLICT (bundle_id) DO NOTHING",
                     (bundle_id, time.time() + _pause(limits, 1))) == 1:
        return 1, "the process ended mid-way"
    with state.db.tx() as tx:
        row = tx.one("SELECT attempts, last_error FROM bundle_attempts WHERE bundle_id = ?", (bundle_id,))
        attempt = (int(row["attempts"]) if row else 0) + 1
        pause = _pause(limits, attempt)
        if row is None:
            tx.run("INSERT INTO bundle_attempts (bundle_id, attempts, next_try) VALUES (?, ?, ?)",
                   (bundle_id, attempt, time.time() + pause))
        else:
            tx.run("UPDATE bundle_attempts SET attempts = ?, next_try = ? WHERE bundle_id = ?",
                   (attempt, time.time() + pause, bundle_id))
    return attempt, (row["last_error"] if row else None) or "the process ended mid-way"


def _pause(limits: Limits, attempt: int) -> float:
    """Seconds before the attempt after `attempt` may start: doubling, capped."""
    return min(RETRY_CAP_SECONDS, limits.verify_retry_seconds * 2 ** (attempt - 1))


def _attempt_failed(state: State, bundle_id: str, exc: BaseException) -> None:
    text = checks.one_line(f"{type(exc).__name__}: {exc}", 300)
    log.warning("verifying %s failed (it is retried later): %s", bundle_id, text)
    with state.db.tx() as tx:
        tx.run("UPDATE bundle_attempts SET last_error = ? WHERE bundle_id = ?", (text, bundle_id))
    state.release("bundles", bundle_id)


def _settle(state: State, row: Dict[str, Any], verdict: checks.Verdict) -> None:
    manifest = verdict.manifest
    reason = checks.one_line(verdict.reason) if verdict.reason else None
    with state.db.tx() as tx:
        tx.put("UPDATE bundles SET status = ?, reason = ?, signer = ?, host = ?, started = ?,"
               " finished = ?, manifest = ?, verified = ?, claim_owner = NULL, claim_until = NULL"
               " WHERE id = ? AND claim_owner = ?",
               (verdict.status, reason, verdict.signer, verdict.host, manifest.get("started"),
                manifest.get("finished"), json.dumps(manifest) if manifest else None, time.time(),
                row["id"], state.owner))
        tx.put("DELETE FROM bundle_attempts WHERE bundle_id = ?", (row["id"],))
        audit.record(tx, "server", "bundle.accept" if verdict.status == "accepted" else "bundle.quarantine",
                     row["ticket_id"], row["id"], reason=reason, signer=verdict.signer)
    if state.on_verdict is not None:
        state.on_verdict(row["id"])


#: Bundles one process verifies at once. Verification waits on the blob store and the
#: database (on PostgreSQL every commit waits for the disk) more than it computes, and the
#: decryption and hashing release the GIL: one at a time left 200 uploads waiting seconds
#: for their verdicts. Each bundle is still verified under its own claim, once.
VERIFIERS = 4


def sweep(state: State) -> None:
    """Verify every received bundle that is due, oldest first, VERIFIERS at a time; one
    bundle's failure never stops the others (another tenant's bundle waits for nobody)."""
    with state.db.tx(write=False) as tx:
        pending = [r["id"] for r in tx.all(
            "SELECT b.id FROM bundles b LEFT JOIN bundle_attempts a ON a.bundle_id = b.id"
            " WHERE b.status = 'received' AND (a.next_try IS NULL OR a.next_try <= ?)"
            " ORDER BY b.received, b.id", (time.time(),))]
    if len(pending) <= 1:
        for bundle_id in pending:
            _verify_logged(state, bundle_id)
        return
    with ThreadPoolExecutor(max_workers=min(VERIFIERS, len(pending)), thread_name_prefix="verify") as pool:
        for _ in pool.map(lambda bundle_id: _verify_logged(state, bundle_id), pending):
            pass


def _verify_logged(state: State, bundle_id: str) -> None:
    try:
        verify(state, bundle_id)
    except Exception as exc:  # noqa: BLE001 - e.g. the database went away: next bundle, next round
        log.warning("verifying %s: %s: %s", bundle_id, type(exc).__name__, checks.one_line(str(exc)))


def next_retry_in(state: State) -> Optional[float]:
    """Seconds until the earliest retry of a crashed verification is due (None: none waits)."""
    with state.db.tx(write=False) as tx:
        row = tx.one("SELECT MIN(a.next_try) AS due FROM bundle_attempts a JOIN bundles b"
                     " ON b.id = a.bundle_id WHERE b.status = 'received'")
    if row is None or row["due"] is None:
        return None
    return max(0.0, float(row["due"]) - time.time())


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
    bundle_id = register(state, ticket_id, sha256, path.stat().st_size, safe_name(path.name),
                         f"import:{actor}")
    with state.db.tx() as tx:
        audit.record(tx, actor, "bundle.import", ticket_id, bundle_id, sha256=sha256)
    verify(state, bundle_id)
    with state.db.tx(write=False) as tx:
        result = get_bundle(tx, bundle_id)
    assert result is not None
    return result


def safe_name(name: str) -> str:
    """A file name that is only letters, digits, `.`, `_` and `-`, never hidden, never empty."""
    return _UNSAFE.sub("_", name).strip("._")[:120] or "bundle.tar.zst.age"


class Refused(Exception):
    """`bundle open` will not (or could not fully) unpack this bundle: one line saying why."""


@dataclass
class Opened:
    plain: Path
    folder: Path
    files: int
    skipped: List[str]


def open_bundle(state: State, bundle_id: str, output: Path, actor: str, force: bool = False) -> Opened:
    """Unseal into OUTPUT/<id>-<name>.tar.zst and unpack into OUTPUT/<id>-<name>/, both new.

    Only an accepted bundle opens, unless `force`. The names are made here (from the
    bundle id and the sanitized file name, with -2, -3 ... when taken) and claimed
    exclusively, so nothing that was there before is ever replaced or removed; on a
    failure this run removes what it wrote, and only that. Unpacking streams under the
    server's limits: a bomb stops at the header of the member that would cross one.
    """
    with state.db.tx(write=False) as tx:
        row = tx.one("SELECT id, ticket_id, sha256, size, filename, status, reason FROM bundles"
                     " WHERE id = ?", (bundle_id,))
    if row is None:
        raise LookupError(f"no bundle {bundle_id!r} (see `mydiag-server bundle list`)")
    if row["status"] != "accepted" and not force:
        why = f" ({row['reason']})" if row["reason"] else ""
        state_text = "is quarantined" if row["status"] == "quarantined" else "is not verified yet"
        raise Refused(f"bundle {bundle_id} {state_text}{why}; pass --force to open it anyway "
                      "(the limits still apply)")
    output.mkdir(parents=True, exist_ok=True)
    folder, plain, plain_fd = _claim_names(output, f"{row['id']}-{_stem(row['filename'])}")
    try:
        identities = age.read_identities(state.data.identity_path)
        with state.store.open(row["sha256"]) as sealed, os.fdopen(plain_fd, "wb") as out:
            age.decrypt(sealed, out, identities)
        opened = _unpack(plain, folder, state.config.limits.bundle_limits(), int(row["size"]))
    except Refused:
        raise  # what was unpacked before the bad member stays, within the limits, to look at
    except BaseException:
        _remove_own(plain, folder)
        raise
    with state.db.tx() as tx:
        audit.record(tx, actor, "bundle.open", row["ticket_id"], bundle_id, forced=force,
                     status=row["status"])
    return opened


def _stem(filename: str) -> str:
    stem = safe_name(filename)
    for suffix in (".age", ".tar.zst", ".tar", ".zst"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    return safe_name(stem)[:80] if stem.strip("._") else "bundle"


def _claim_names(output: Path, base: str) -> Tuple[Path, Path, int]:
    """A new folder and a new file beside it, both created here: (folder, file, its fd)."""
    for number in range(1, 1000):
        name = base + (f"-{number}" if number > 1 else "")
        folder = output / name
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        plain = output / f"{name}.tar.zst"
        try:
            fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        except FileExistsError:
            folder.rmdir()
            continue
        return folder, plain, fd
    raise FileExistsError(f"{output}: 999 folders named {base}… already exist")


def _unpack(plain: Path, folder: Path, limits: BundleLimits, sealed_bytes: int) -> Opened:
    """Write each regular member under `folder` (new files and folders only)."""
    files, skipped = 0, []
    try:
        for info, handle in members(plain, limits, packed_bytes=sealed_bytes):
            if handle is None:
                skipped.append(f"{info.name} (not a regular file)")
                continue
            target = folder.joinpath(*info.name.split("/"))
            _make_folders(folder, target.parent)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                    out.write(chunk)
            files += 1
    except BundleError as exc:
        raise Refused(f"stopped unpacking: {checks.one_line(str(exc))}; the {files} files before "
                      f"it are in {folder}") from None
    return Opened(plain, folder, files, skipped)


def _make_folders(root: Path, folder: Path) -> None:
    """Create `folder` and its parents below `root` (a folder this run made, so anything
    in it is this run's too; the reader already refused a file that is also a folder)."""
    path = root
    for part in folder.relative_to(root).parts:
        path = path / part
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)


def _remove_own(plain: Path, folder: Path) -> None:
    """Remove the two names `_claim_names` created in this run, and nothing else."""
    with contextlib.suppress(FileNotFoundError):
        plain.unlink()
    shutil.rmtree(folder, ignore_errors=True)
