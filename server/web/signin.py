"""The sign-in page, sign-in and sign-out.

The form carries a pre-session CSRF token that must match the `mydiag_signin` cookie
(double submit), so another site cannot sign a browser into an account of its choosing.
A wrong password and an unknown name get the same answer, at the same cost. Ten failed
sign-ins per account or per address within 15 minutes, and the next attempt is 429 (even
with the right password) until the window moves on. Every sign-in, failure and sign-out
goes to the audit log; the password never goes anywhere.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from server.storage import audit
from server.storage.db import Tx
from server.storage.state import State
from server.support import passwords
from server.web import access, render, urls, websessions
from server.web.settings import SIGNIN_WINDOW_SECONDS, WebSettings

BAD_CREDENTIALS = "Wrong engineer name or password."
THROTTLED = (f"Too many failed sign-ins for this account or from this address: try again in "
             f"{SIGNIN_WINDOW_SECONDS // 60} minutes.")
_NAME_MAX = 64


def install(router: APIRouter, state: State, settings: WebSettings) -> None:
    def form_page(request: Request, next_path: str, status: int = 200, error: str = "",
                  name: str = "") -> Response:
        token = request.cookies.get(access.SIGNIN_COOKIE)
        if not websessions.token_shape_ok(token):
            token = websessions.new_token()
        response = render.page(request, "signin.html", status=status, signin_csrf=token, next=next_path,
                               error=error, name=name[:_NAME_MAX], title="Sign in")
        access.set_cookie(response, request, settings, access.SIGNIN_COOKIE, token, max_age=3600)
        return response

    @router.get("/signin")
    async def signin_page(request: Request) -> Response:
        next_path = urls.safe_next(request.query_params.get("next"))
        if await access.current(request, state, settings) is not None:
            return render.secure(RedirectResponse(next_path, status_code=303))
        return form_page(request, next_path)

    @router.post("/signin")
    async def signin(request: Request) -> Response:
        form = await request.form()
        next_path = urls.safe_next(access.text(form.get("next")))
        if not websessions.same(request.cookies.get(access.SIGNIN_COOKIE), access.text(form.get("csrf"))):
            return access.csrf_refused(request)
        name = access.text(form.get("name")).strip()[:_NAME_MAX]
        password = access.text(form.get("password"))
        outcome, token = await _attempt(state, name, password, access.address(request), settings.idle_seconds)
        if outcome == "throttled":
            return form_page(request, next_path, status=429, error=THROTTLED, name=name)
        if outcome == "refused":
            return form_page(request, next_path, status=401, error=BAD_CREDENTIALS, name=name)
        response = render.secure(RedirectResponse(next_path, status_code=303))
        access.set_cookie(response, request, settings, access.SESSION_COOKIE, token)
        access.drop_cookie(response, request, settings, access.SIGNIN_COOKIE)
        return response

    @router.post("/signout")
    async def signout(request: Request) -> Response:
        engineer = await access.current(request, state, settings)
        if engineer is None:
            response = render.secure(RedirectResponse(urls.signin(), status_code=303))
            access.drop_cookie(response, request, settings, access.SESSION_COOKIE)
            return response
        form = await request.form()
        if not access.csrf_ok(engineer, access.text(form.get("csrf"))):
            return access.csrf_refused(request)
        await access.db(state, True, _signout, request.cookies.get(access.SESSION_COOKIE), engineer,
                        access.address(request))
        request.state.engineer = None
        response = render.secure(RedirectResponse(urls.signin(), status_code=303))
        access.drop_cookie(response, request, settings, access.SESSION_COOKIE)
        return response


def _look(tx: Tx, name: str, address: str) -> Tuple[bool, Optional[str]]:
    """(throttled, the stored hash or None) for a sign-in attempt."""
    return websessions.throttled(tx, name or "-", address), passwords.stored_hash(tx, name)


async def _attempt(state: State, name: str, password: str, address: str,
                   idle_seconds: float) -> Tuple[str, Optional[str]]:
    """("ok", session token), ("refused", None) or ("throttled", None). The hash is checked
    outside any transaction: argon2 takes a while and must not hold the write lock."""
    throttled, stored = await access.db(state, False, _look, name, address)
    if throttled:
        await access.db(state, True, _record, "web", "web.signin.throttled", name, address, stored)
        return "throttled", None
    if not await run_in_threadpool(passwords.check, stored, password):
        await access.db(state, True, _refused, name, address, stored)
        return "refused", None
    return "ok", await access.db(state, True, _start, name, address, idle_seconds)


def _record(tx: Tx, actor: str, action: str, name: str, address: str, stored: Optional[str]) -> None:
    audit.record(tx, actor, action, subject=name if stored else None, **_where(address, stored is not None))


def _refused(tx: Tx, name: str, address: str, stored: Optional[str]) -> None:
    websessions.failed(tx, name or "-", address)
    _record(tx, "web", "web.signin.failed", name, address, stored)


def _start(tx: Tx, name: str, address: str, idle_seconds: float) -> str:
    role = tx.one("SELECT role FROM engineers WHERE name = ?", (name,))
    token = websessions.start(tx, name, idle_seconds)
    audit.record(tx, f"{role['role'] if role else 'engineer'}:{name}", "web.signin", subject=name,
                 address=address)
    return token


def _where(address: str, known: bool) -> Dict[str, Any]:
    # An unknown name is not recorded: people type their password into the name field.
    return {"address": address, "account": "known" if known else "unknown"}


def _signout(tx: Tx, token: Optional[str], engineer: websessions.Engineer, address: str) -> None:
    websessions.end(tx, token)
    audit.record(tx, engineer.actor, "web.signout", subject=engineer.name, address=address)
