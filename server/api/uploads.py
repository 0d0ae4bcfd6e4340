"""The uploads part of the HTTP API: tus 1.0 (creation, checksum, termination, expiration).

The headers are parsed here, strictly (a byte count is ASCII digits only); the state
machine under leases is intake/tus.py. A PATCH streams its body to the staging file,
renewing its lease as it goes, and keeps the upload's running SHA-256 in this process
(`RunningDigests`) so that the completion need not read the file again.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import re
import threading
import time
from collections import OrderedDict
from typing import Any, Dict, Optional

from fastapi import FastAPI, Header, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from server.api import verdicts
from server.api.access import Who
from server.api.routing import API, ERRORS, write
from server.intake import bundles
from server.intake import tus as uploads
from server.intake.tus import TusError
from server.safetext import header_value
from server.storage.db import Tx
from server.storage.state import LEASE_SECONDS, State

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,checksum,termination,expiration"
CHECKSUMS = {"sha256": 32, "sha1": 20, "md5": 16, "sha512": 64}
#: The longest customer text (a quarantine reason) put into a response header.
HEADER_TEXT = 1000
#: A byte count in a header: ASCII digits only (`int()` and `str.isdigit()` also take
#: '²', '１' and '٣'), and few enough that it fits the database's 64-bit integers.
_DIGITS = re.compile(r"[0-9]{1,18}")


def install(app: FastAPI, state: State, who: Who) -> None:
    digests = RunningDigests()
    waiting = verdicts.Verdicts()
    state.on_verdict = waiting.fire

    @app.options(f"{API}/tickets/{{ticket_id}}/uploads", status_code=204, tags=["uploads"])
    async def tus_options(ticket_id: str) -> Response:
        return Response(status_code=204, headers=tus_options_headers(state))

    @app.options(f"{API}/tickets/{{ticket_id}}/uploads/{{upload_id}}", status_code=204, tags=["uploads"])
    async def tus_options_upload(ticket_id: str, upload_id: str) -> Response:
        return Response(status_code=204, headers=tus_options_headers(state))

    @app.post(f"{API}/tickets/{{ticket_id}}/uploads", status_code=201, responses=ERRORS, tags=["uploads"],
              description="tus creation: Upload-Length and Upload-Metadata (filename, sha256: hex of "
                          "the whole file, which makes the upload idempotent).")
    async def tus_create(
        ticket_id: str, request: Request,
        authorization: Optional[str] = Header(None),
        tus_resumable: Optional[str] = Header(None, alias="Tus-Resumable"),
        upload_length: Optional[str] = Header(None, alias="Upload-Length"),
        upload_metadata: Optional[str] = Header(None, alias="Upload-Metadata"),
    ) -> Response:
        principal = await who(authorization, ticket_id)
        tus_version_ok(tus_resumable)
        if upload_length is None:
            raise TusError(400, "Upload-Length is required (Upload-Defer-Length is not supported)")
        length = parse_int(upload_length, "Upload-Length")
        raw_metadata = upload_metadata or ""
        metadata = uploads.parse_metadata(raw_metadata, state.config.limits)
        row = await run_in_threadpool(uploads.create, state, principal, ticket_id, length, metadata,
                                      raw_metadata)
        location = str(request.url.replace(query=None, fragment=None)).rstrip("/") + "/" + row["id"]
        headers = await run_in_threadpool(upload_headers, state, row)
        headers["Location"] = header_value(location, 2 * HEADER_TEXT)
        return Response(status_code=201, headers=headers)

    @app.head(f"{API}/tickets/{{ticket_id}}/uploads/{{upload_id}}", responses=ERRORS, tags=["uploads"])
    async def tus_head(
        ticket_id: str, upload_id: str,
        authorization: Optional[str] = Header(None),
        tus_resumable: Optional[str] = Header(None, alias="Tus-Resumable"),
        prefer: Optional[str] = Header(None, description="`wait=N` (RFC 7240): a finished upload whose "
                                       "bundle is still being verified is answered when the verdict "
                                       f"is in, or after N seconds (at most {verdicts.MAX_WAIT:g})"),
    ) -> Response:
        await who(authorization, ticket_id)
        tus_version_ok(tus_resumable)
        row = await run_in_threadpool(uploads.get, state, ticket_id, upload_id)
        headers = await run_in_threadpool(upload_headers, state, row)
        wait = verdicts.requested_wait(prefer)
        if wait:
            deadline = time.monotonic() + wait
            while headers.get("Mydiag-Bundle-Status") == "received" and time.monotonic() < deadline:
                await waiting.wait(row["bundle_id"], min(verdicts.RECHECK, deadline - time.monotonic()))
                headers = await run_in_threadpool(upload_headers, state, row)
            headers["Preference-Applied"] = f"wait={wait:g}"
        return Response(status_code=200, headers=headers)

    @app.patch(
        f"{API}/tickets/{{ticket_id}}/uploads/{{upload_id}}", status_code=204, responses=ERRORS,
        tags=["uploads"],
        openapi_extra={"requestBody": {"content": {"application/offset+octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}}},
    )
    async def tus_patch(
        ticket_id: str, upload_id: str, request: Request,
        authorization: Optional[str] = Header(None),
        tus_resumable: Optional[str] = Header(None, alias="Tus-Resumable"),
        upload_offset: Optional[str] = Header(None, alias="Upload-Offset"),
        upload_checksum: Optional[str] = Header(None, alias="Upload-Checksum"),
        content_type: Optional[str] = Header(None, alias="Content-Type"),
    ) -> Response:
        await who(authorization, ticket_id)
        tus_version_ok(tus_resumable)
        if (content_type or "").split(";")[0].strip().lower() != "application/offset+octet-stream":
            raise TusError(415, "PATCH needs Content-Type: application/offset+octet-stream")
        if upload_offset is None:
            raise TusError(400, "Upload-Offset is required")
        offset = parse_int(upload_offset, "Upload-Offset")
        checksum = parse_checksum(upload_checksum)
        declared = request.headers.get("content-length")
        body_length = parse_int(declared, "Content-Length") if declared is not None else None
        row = await run_in_threadpool(uploads.begin_patch, state, ticket_id, upload_id, offset, body_length)
        whole = digests.take(upload_id, offset)
        try:
            written, cut = await receive(state, request, row, offset, checksum, whole)
        except BaseException:
            await run_in_threadpool(uploads.abandon_patch, state, upload_id)
            raise
        if cut and checksum is not None:
            await run_in_threadpool(uploads.abandon_patch, state, upload_id)
            raise TusError(400, "the request body ended early; nothing was kept (checksummed PATCH)")
        done = offset + written == row["length"]
        if whole is not None and not done:
            digests.keep(upload_id, offset + written, whole)
        known = whole.hexdigest() if whole is not None and done else None
        row = await run_in_threadpool(uploads.end_patch, state, row, offset, written, known)
        headers = await run_in_threadpool(upload_headers, state, row)
        return Response(status_code=204, headers=headers)

    @app.delete(f"{API}/tickets/{{ticket_id}}/uploads/{{upload_id}}", status_code=204, responses=ERRORS,
                tags=["uploads"])
    async def tus_delete(
        ticket_id: str, upload_id: str,
        authorization: Optional[str] = Header(None),
        tus_resumable: Optional[str] = Header(None, alias="Tus-Resumable"),
    ) -> Response:
        principal = await who(authorization, ticket_id)
        tus_version_ok(tus_resumable)
        await run_in_threadpool(uploads.terminate, state, principal, ticket_id, upload_id)
        return Response(status_code=204, headers={"Tus-Resumable": TUS_VERSION})


def tus_options_headers(state: State) -> Dict[str, str]:
    return {
        "Tus-Resumable": TUS_VERSION, "Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS,
        "Tus-Max-Size": str(state.config.limits.max_upload_bytes),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
    }


def upload_headers(state: State, row: Dict[str, Any]) -> Dict[str, str]:
    """The tus headers that describe an upload, and once it is stored, its bundle's status."""
    headers = {
        "Tus-Resumable": TUS_VERSION, "Upload-Offset": str(row["received"]),
        "Upload-Length": str(row["length"]), "Cache-Control": "no-store",
    }
    if row["metadata"]:
        headers["Upload-Metadata"] = header_value(row["metadata"], 2 * HEADER_TEXT)
    if row["state"] == "receiving":
        headers["Upload-Expires"] = _http_date(row["expires"])
    if row["state"] == "complete" and row["bundle_id"]:
        headers["Mydiag-Sha256"] = row["sha256"]
        headers["Mydiag-Bundle"] = row["bundle_id"]
        if "bundle_status" in row:  # just registered by this request (intake/tus.finish)
            found: Optional[Dict[str, Any]] = {"status": row["bundle_status"], "reason": row["bundle_reason"]}
        else:
            with state.db.tx(write=False) as tx:
                found = bundles.get_bundle(tx, row["bundle_id"])
        if found:
            headers["Mydiag-Bundle-Status"] = found["status"]
            if found["reason"]:
                headers["Mydiag-Reason"] = header_value(found["reason"], HEADER_TEXT)
    return headers


async def receive(state: State, request: Request, row: Dict[str, Any], offset: int,
                  checksum: Optional[tuple], whole: Any) -> tuple:
    """Stream the body into the upload; (bytes written, whether the client went away).

    `whole`, when given, is the running SHA-256 of the upload up to `offset`; it is
    updated as bytes arrive so the completion need not read the file again.
    """
    room = row["length"] - offset
    hasher = hashlib.new(checksum[0]) if checksum else None
    # A remote store's writer waits on the network: open, write and close it off the event loop.
    writer = await run_in_threadpool(state.store.staging_writer, row["id"], offset)
    renewed = time.monotonic()
    cut = False
    try:
        try:
            async for chunk in request.stream():
                if not chunk:
                    continue
                if writer.written + len(chunk) > room:
                    raise TusError(400, f"the body runs past Upload-Length {row['length']}")
                if time.monotonic() - renewed > LEASE_SECONDS / 3:
                    # Renew before writing: a lease that lapsed may belong to someone else now.
                    if not await write(state, _still_mine, row["id"], state.owner):
                        raise TusError(409, "this upload was taken over by another request")
                    renewed = time.monotonic()
                if writer.remote:
                    await run_in_threadpool(writer.write, chunk)
                else:
                    writer.write(chunk)
                if hasher is not None:
                    hasher.update(chunk)
                if whole is not None:
                    whole.update(chunk)
        except ClientDisconnect:
            cut = True
    finally:
        if writer.remote:
            await run_in_threadpool(writer.close)
        else:
            writer.close()
    if hasher is not None and not cut and hasher.digest() != checksum[1]:
        raise TusError(460, "Upload-Checksum does not match the body; nothing was kept")
    return writer.written, cut


def _still_mine(tx: Tx, upload_id: str, owner: str) -> bool:
    """Renew this process's lease on the upload; False when another holds it now."""
    return tx.run("UPDATE uploads SET lease_until = ? WHERE id = ? AND lease_owner = ?",
                  (time.time() + LEASE_SECONDS, upload_id, owner)) == 1


class RunningDigests:
    """The SHA-256 of uploads so far, for uploads whose PATCHes keep coming to this process.

    Only a hash that covers exactly the committed bytes is kept; any doubt (another
    process wrote in between, a checksummed PATCH was dropped) means the completion
    reads the file once more instead.
    """

    LIMIT = 256

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, upload_id: str, offset: int) -> Any:
        with self._lock:
            found = self._items.pop(upload_id, None)
        if found is not None and found[0] == offset:
            return found[1]
        return hashlib.sha256() if offset == 0 else None

    def keep(self, upload_id: str, offset: int, digest: Any) -> None:
        with self._lock:
            self._items[upload_id] = (offset, digest)
            while len(self._items) > self.LIMIT:
                self._items.popitem(last=False)


def tus_version_ok(value: Optional[str]) -> None:
    if value != TUS_VERSION:
        raise TusError(412, f"this server speaks tus {TUS_VERSION} (send Tus-Resumable: {TUS_VERSION})",
                       {"Tus-Version": TUS_VERSION})


def parse_int(value: str, name: str) -> int:
    text = value.strip(" \t")
    if not _DIGITS.fullmatch(text):
        raise TusError(400, f"{name} must be a whole number in ASCII digits 0-9 (at most 18 of them, "
                            "no sign, spaces or separators)")
    return int(text)


def parse_checksum(value: Optional[str]) -> Optional[tuple]:
    if value is None:
        return None
    algorithm, _, encoded = value.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUMS:
        raise TusError(400, f"Upload-Checksum algorithm must be one of {', '.join(CHECKSUMS)}")
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise TusError(400, "Upload-Checksum must be `algorithm base64-digest`") from None
    if len(digest) != CHECKSUMS[algorithm]:
        raise TusError(400, f"Upload-Checksum: a {algorithm} digest is {CHECKSUMS[algorithm]} bytes")
    return algorithm, digest


def _http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)
