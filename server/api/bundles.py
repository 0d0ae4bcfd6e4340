"""The bundles part of the HTTP API: a ticket's bundles, one bundle, and its sealed file.

The sealed file (age format, as received) is for engineers only; a bundle of another
ticket answers 404, like one that does not exist.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from fastapi import FastAPI, Header
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from server.api.access import Who, engineer_only
from server.api.errors import ApiError
from server.api.routing import API, ERRORS, read
from server.intake import bundles, reports
from server.storage.db import Tx
from server.storage.state import State


class HeadlineOut(BaseModel):
    rule: str
    severity: str
    title: str
    summary: str


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
    report: Optional[str] = Field(None, description="the report: rendered, failed, or null (not yet)")
    headline: Optional[List[HeadlineOut]] = Field(
        None, description="the report's headline findings (warning or worse), when it is rendered")


class BundleDetail(BundleOut):
    manifest: Optional[Dict[str, Any]] = None


def install(app: FastAPI, state: State, who: Who) -> None:
    @app.get(f"{API}/tickets/{{ticket_id}}/bundles", response_model=List[BundleOut], responses=ERRORS,
             tags=["bundles"])
    async def list_bundles(ticket_id: str, authorization: Optional[str] = Header(None)) -> Any:
        await who(authorization, ticket_id)
        return await read(state, _listed, ticket_id)

    async def _bundle(ticket_id: str, bundle_id: str) -> Dict[str, Any]:
        found = await read(state, _one, bundle_id)
        if found is None or found["ticket"] != ticket_id:
            raise ApiError(404, "no such bundle")
        return found

    @app.get(f"{API}/tickets/{{ticket_id}}/bundles/{{bundle_id}}", response_model=BundleDetail,
             responses=ERRORS, tags=["bundles"])
    async def get_bundle(ticket_id: str, bundle_id: str, authorization: Optional[str] = Header(None)) -> Any:
        await who(authorization, ticket_id)
        return await _bundle(ticket_id, bundle_id)

    @app.get(f"{API}/tickets/{{ticket_id}}/bundles/{{bundle_id}}/sealed", responses=ERRORS,
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


def _with_reports(tx: Tx, found: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Each bundle with its report's state and headline findings (additive fields)."""
    known = reports.summaries(tx, [b["id"] for b in found])
    for bundle in found:
        bundle.update(known.get(bundle["id"], {"report": None, "headline": None}))
    return found


def _listed(tx: Tx, ticket_id: str) -> List[Dict[str, Any]]:
    return _with_reports(tx, bundles.list_bundles(tx, ticket_id))


def _one(tx: Tx, bundle_id: str) -> Optional[Dict[str, Any]]:
    found = bundles.get_bundle(tx, bundle_id)
    return _with_reports(tx, [found])[0] if found is not None else None
