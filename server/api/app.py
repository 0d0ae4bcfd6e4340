"""The HTTP API under /api/v1: tickets, host enrollment, bundles, and tus 1.0 uploads.

Every route answers with JSON `{"error": "..."}` on failure (HEAD: headers only).
Something a caller may not see answers 404, exactly like something that does not exist.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import hashlib
import logging
import re
import threading
import time
from collections import OrderedDict
from typing import Any, AsyncIterator, Dict, List, Optional

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from bundle.version import __version__
from server import auth
from server.api import sessions as sessions_api
from server.api.errors import ApiError
from server.api.httpedge import StrictJSONRoute
from server.intake import bundles
from server.intake import tus as uploads
from server.intake.tus import TusError
from server.safetext import header_value
from server.storage import audit
from server.storage.state import LEASE_SECONDS, State
from server.support import tickets

API = "/api/v1"
TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,checksum,termination,expiration"
CHECKSUMS = {"sha256": 32, "sha1": 20, "md5": 16, "sha512": 64}
SWEEP_SECONDS = 10.0
#: The longest customer text (a quarantine reason) put into a response header.
HEADER_TEXT = 1000
#: A byte count in a header: ASCII digits only (`int()` and `str.isdigit()` also take
#: '²', '１' and '٣'), and few enough that it fits the database's 64-bit integers.
_DIGITS = re.compile(r"[0-9]{1,18}")

log = logging.getLogger("mydiag.server")


class TicketIn(BaseModel):
    customer: str
    title: str


class Ticket(BaseModel):
    id: str
    customer: str
    title: str
    recipients: List[str]
    created: str


class NewTicket(Ticket):
    upload_token: str
    token_expires: str


class HostIn(BaseModel):
    public_key: str
    hostname: str


class Host(BaseModel):
    fingerprint: str
    hostname: str
    already_enrolled: bool


class BundleOut(BaseModel):
    id: str
    ticket: str
    sha256: str
    size: int
    filename: str
    status: str
    reason: Optional[str] = None
    signer: Optional[str] = None
    host: Optional[str] = None
    started: Optional[str] = None
    finished: Optional[str] = None
    received: str
    verified: Optional[str] = None


class BundleDetail(BundleOut):
    manifest: Optional[Dict[str, Any]] = None


class ErrorOut(BaseModel):
    error: str


_ERRORS: Dict[int, Dict[str, Any]] = {
    code: {"model": ErrorOut}
    for code in (400, 401, 403, 404, 409, 410, 412, 413, 415, 422, 423, 429, 431, 460)
}


def _http_date(epoch: float) -> str:
    return email.utils.formatdate(epoch, usegmt=True)


def create_app(state: State, sweep: bool = True) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        worker = threading.Thread(target=_sweeper, args=(state, stop), daemon=True, name="sweeper")
        if sweep:
            worker.start()
        yield
        stop.set()
        state.wake()
        if sweep:
            worker.join(timeout=5)

    digests = RunningDigests()
    app = FastAPI(
        title="mydiag-server", version=__version__, lifespan=lifespan,
        description="Tickets, resumable tus 1.0 uploads of sealed bundles, and verified storage.",
        openapi_url=f"{API}/openapi.json", docs_url=f"{API}/docs", redoc_url=None,
    )
    # Before any route is added: every JSON body of every route goes through one strict decoder.
    app.router.route_class = StrictJSONRoute

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return _error(request, *_validation_message(exc), {})

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return _error(request, exc.status, exc.message, exc.headers)

    @app.exception_handler(TusError)
    async def _tus_error(request: Request, exc: TusError) -> Response:
        return _error(request, exc.status, exc.message, {"Tus-Resumable": TUS_VERSION, **exc.headers})

    @app.exception_handler(tickets.Invalid)
    async def _invalid(request: Request, exc: tickets.Invalid) -> Response:
        return _error(request, 400, str(exc), {})

    async def who(authorization: Optional[str], ticket_id: Optional[str] = None) -> auth.Principal:
        token = auth.bearer(authorization)
        if token is None:
            raise ApiError(401, "an Authorization: Bearer token is required",
                           {"WWW-Authenticate": "Bearer"})

        def find() -> Optional[auth.Principal]:
            with state.db.tx(write=False) as tx:
                principal = auth.resolve(tx, token)
                if principal is None or ticket_id is None:
                    return principal
                if not principal.may_see(ticket_id) or tickets.get_ticket(tx, ticket_id) is None:
                    raise ApiError(404, "no such ticket")
                return principal

        principal = await run_in_threadpool(find)
        if principal is None:
            raise ApiError(401, "the token is invalid or expired", {"WWW-Authenticate": "Bearer"})
        return principal

    sessions_api.install(app, state, who, _ERRORS)

    def engineer_only(principal: auth.Principal) -> None:
        if not principal.is_engineer:
            raise ApiError(403, "only support engineers may do this")

    @app.get(f"{API}/health", tags=["server"])
    async def health() -> Dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get(f"{API}/tickets", response_model=List[Ticket], responses=_ERRORS, tags=["tickets"])
    async def list_tickets(authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization)

        def run() -> Any:
            with state.db.tx(write=False) as tx:
                return tickets.list_tickets(tx, principal)

        return await run_in_threadpool(run)

    @app.post(f"{API}/tickets", response_model=NewTicket, status_code=201, responses=_ERRORS,
              tags=["tickets"])
    async def create_ticket(body: TicketIn, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization)
        engineer_only(principal)

        def run() -> Any:
            with state.db.tx() as tx:
                return tickets.create_ticket(tx, body.customer, body.title, state.config.recipients,
                                             principal.actor, state.config.limits.token_days)

        return await run_in_threadpool(run)

    @app.get(f"{API}/tickets/{{ticket_id}}", response_model=Ticket, responses=_ERRORS, tags=["tickets"])
    async def get_ticket(ticket_id: str, authorization: Optional[str] = Header(None)) -> Any:
        await who(authorization, ticket_id)

        def run() -> Any:
            with state.db.tx(write=False) as tx:
                return tickets.get_ticket(tx, ticket_id)

        return await run_in_threadpool(run)

    @app.post(f"{API}/tickets/{{ticket_id}}/hosts", response_model=Host, status_code=201,
              responses=_ERRORS, tags=["tickets"])
    async def enroll_host(ticket_id: str, body: HostIn,
                          authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        if not principal.may_enroll(ticket_id):
            raise ApiError(403, "only the ticket's upload token enrolls host keys (`mydiag enroll` "
                                "on the customer's host), not an engineer's or admin's token")

        def run() -> Any:
            with state.db.tx() as tx:
                return tickets.enroll_host(tx, ticket_id, body.public_key, body.hostname, principal.actor)

        return await run_in_threadpool(run)

    @app.get(f"{API}/tickets/{{ticket_id}}/bundles", response_model=List[BundleOut], responses=_ERRORS,
             tags=["bundles"])
    async def list_bundles(ticket_id: str, authorization: Optional[str] = Header(None)) -> Any:
        await who(authorization, ticket_id)

        def run() -> Any:
            with state.db.tx(write=False) as tx:
                return bundles.list_bundles(tx, ticket_id)

        return await run_in_threadpool(run)

    async def _bundle(ticket_id: str, bundle_id: str) -> Dict[str, Any]:
        def run() -> Any:
            with state.db.tx(write=False) as tx:
                return bundles.get_bundle(tx, bundle_id)

        found = await run_in_threadpool(run)
        if found is None or found["ticket"] != ticket_id:
            raise ApiError(404, "no such bundle")
        return found

    @app.get(f"{API}/tickets/{{ticket_id}}/bundles/{{bundle_id}}", response_model=BundleDetail,
             responses=_ERRORS, tags=["bundles"])
    async def get_bundle(ticket_id: str, bundle_id: str, authorization: Optional[str] = Header(None)) -> Any:
        await who(authorization, ticket_id)
        return await _bundle(ticket_id, bundle_id)

    @app.get(f"{API}/tickets/{{ticket_id}}/bundles/{{bundle_id}}/sealed", responses=_ERRORS,
             tags=["bundles"], response_class=StreamingResponse,
             description="The sealed bundle as received (age format), for engineers.")
    async def download(ticket_id: str, bundle_id: str, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization, ticket_id)
        engineer_only(principal)
        found = await _bundle(ticket_id, bundle_id)
        handle = state.store.open(found["sha256"])

        def chunks():
            with handle:
                yield from iter(lambda: handle.read(1 << 20), b"")

        return StreamingResponse(chunks(), media_type="application/octet-stream",
                                 headers={"Content-Length": str(found["size"])})

    @app.get(f"{API}/audit", responses=_ERRORS, tags=["server"])
    async def audit_log(ticket: Optional[str] = None, authorization: Optional[str] = Header(None)) -> Any:
        principal = await who(authorization)
        engineer_only(principal)

        def run() -> Any:
            with state.db.tx(write=False) as tx:
                return audit.entries(tx, ticket)

        return await run_in_threadpool(run)

    # -- tus 1.0 ------------------------------------------------------------------------

    def tus_options_headers() -> Dict[str, str]:
        return {
            "Tus-Resumable": TUS_VERSION, "Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(state.config.limits.max_upload_bytes),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUMS),
        }

    @app.options(f"{API}/tickets/{{ticket_id}}/uploads", status_code=204, tags=["uploads"])
    async def tus_options(ticket_id: str) -> Response:
        return Response(status_code=204, headers=tus_options_headers())

    @app.options(f"{API}/tickets/{{ticket_id}}/uploads/{{upload_id}}", status_code=204, tags=["uploads"])
    async def tus_options_upload(ticket_id: str, upload_id: str) -> Response:
        return Response(status_code=204, headers=tus_options_headers())

    def upload_headers(row: Dict[str, Any]) -> Dict[str, str]:
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
            with state.db.tx(write=False) as tx:
                found = bundles.get_bundle(tx, row["bundle_id"])
            if found:
                headers["Mydiag-Bundle-Status"] = found["status"]
                if found["reason"]:
                    headers["Mydiag-Reason"] = header_value(found["reason"], HEADER_TEXT)
        return headers

    @app.post(f"{API}/tickets/{{ticket_id}}/uploads", status_code=201, responses=_ERRORS, tags=["uploads"],
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
        headers = await run_in_threadpool(upload_headers, row)
        headers["Location"] = header_value(location, 2 * HEADER_TEXT)
        return Response(status_code=201, headers=headers)

    @app.head(f"{API}/tickets/{{ticket_id}}/uploads/{{upload_id}}", responses=_ERRORS, tags=["uploads"])
    async def tus_head(
        ticket_id: str, upload_id: str,
        authorization: Optional[str] = Header(None),
        tus_resumable: Optional[str] = Header(None, alias="Tus-Resumable"),
    ) -> Response:
        await who(authorization, ticket_id)
        tus_version_ok(tus_resumable)
        row = await run_in_threadpool(uploads.get, state, ticket_id, upload_id)
        return Response(status_code=200, headers=await run_in_threadpool(upload_headers, row))

    @app.patch(
        f"{API}/tickets/{{ticket_id}}/uploads/{{upload_id}}", status_code=204, responses=_ERRORS,
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
            written, cut = await receive(request, row, offset, checksum, whole)
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
        headers = await run_in_threadpool(upload_headers, row)
        return Response(status_code=204, headers=headers)

    async def receive(request: Request, row: Dict[str, Any], offset: int,
                      checksum: Optional[tuple], whole: Any) -> tuple:
        """Stream the body into the upload; (bytes written, whether the client went away).

        `whole`, when given, is the running SHA-256 of the upload up to `offset`; it is
        updated as bytes arrive so the completion need not read the file again.
        """
        room = row["length"] - offset
        hasher = hashlib.new(checksum[0]) if checksum else None
        writer = state.store.staging_writer(row["id"], offset)
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
                        if not await run_in_threadpool(still_mine, row["id"]):
                            raise TusError(409, "this upload was taken over by another request")
                        renewed = time.monotonic()
                    writer.write(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    if whole is not None:
                        whole.update(chunk)
            except ClientDisconnect:
                cut = True
        finally:
            writer.close()
        if hasher is not None and not cut and hasher.digest() != checksum[1]:
            raise TusError(460, "Upload-Checksum does not match the body; nothing was kept")
        return writer.written, cut

    def still_mine(upload_id: str) -> bool:
        with state.db.tx() as tx:
            return tx.run("UPDATE uploads SET lease_until = ? WHERE id = ? AND lease_owner = ?",
                          (time.time() + LEASE_SECONDS, upload_id, state.owner)) == 1

    @app.delete(f"{API}/tickets/{{ticket_id}}/uploads/{{upload_id}}", status_code=204, responses=_ERRORS,
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

    return app


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


def _validation_message(exc: RequestValidationError) -> tuple:
    """(status, one line) for a request that failed validation: 400 when the body is not
    JSON at all (bad syntax, lone surrogates, invalid UTF-8), else 422 naming the field."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        detail = str((first.get("ctx") or {}).get("error", "invalid JSON")).splitlines()[0]
        return 400, f"the request body is not valid JSON: {detail}"
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "the request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return 422, f"{where}: {str(first.get('msg', 'invalid')).splitlines()[0]}{more}"


def _error(request: Request, status: int, message: str, headers: Dict[str, str]) -> Response:
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _sweeper(state: State, stop: threading.Event) -> None:
    """The background worker: verifies received bundles (woken by each finished upload,
    and when a retry falls due), finishes what dead processes left, expires uploads."""
    while not stop.is_set():
        try:
            uploads.sweep(state)
            due = bundles.next_retry_in(state)
        except Exception as exc:  # noqa: BLE001 - keep sweeping; the next round retries
            log.warning("sweep failed: %s: %s", type(exc).__name__, exc)
            due = None
        state.wakeup.wait(SWEEP_SECONDS if due is None else min(SWEEP_SECONDS, due + 0.05))
        state.wakeup.clear()
