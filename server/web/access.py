"""Who is signed in, the cookies that say so, and the CSRF check every POST passes.

`signed_in(request)` is the gate of every page: the engineer (also set on
`request.state.engineer` for the renderer), or a redirect to the sign-in page that
remembers where the engineer was going. `csrf_ok` is the check of every form post.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from server.storage.state import State
from server.web import customersessions, render, urls, websessions
from server.web.customersessions import Person
from server.web.settings import WebSettings
from server.web.websessions import Engineer

SESSION_COOKIE = "mydiag_session"
#: The sign-in form's own CSRF token (double submit): the form's hidden field must match it.
SIGNIN_COOKIE = "mydiag_signin"


def is_tls(request: Request, settings: WebSettings) -> bool:
    return request.url.scheme == "https" or settings.public_https


def set_cookie(response: Response, request: Request, settings: WebSettings, name: str, value: str,
               max_age: Optional[int] = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="lax",
                        secure=is_tls(request, settings))


def drop_cookie(response: Response, request: Request, settings: WebSettings, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=is_tls(request, settings))


def address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _in_tx(state: State, write: bool, work, *args):
    with state.db.tx(write=write) as tx:
        return work(tx, *args)


async def db(state: State, write: bool, work, *args):
    """`work(tx, *args)` in one transaction, in a worker thread (the loop never waits on SQL)."""
    return await run_in_threadpool(_in_tx, state, write, work, *args)


async def current(request: Request, state: State, settings: WebSettings) -> Optional[Engineer]:
    token = request.cookies.get(SESSION_COOKIE)
    if not websessions.token_shape_ok(token):
        return None
    engineer, due = await db(state, False, websessions.resolve, token, settings.idle_seconds)
    if engineer is not None and due:
        await db(state, True, websessions.slide, token, settings.idle_seconds)
    request.state.engineer = engineer
    return engineer


async def signed_in(request: Request, state: State, settings: WebSettings) -> Union[Engineer, Response]:
    """The signed-in engineer, or the redirect to /signin?next=<this page>."""
    engineer = await current(request, state, settings)
    if engineer is not None:
        return engineer
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render.secure(RedirectResponse(urls.signin(here), status_code=303))


async def engineer_form(request: Request, state: State,
                        settings: WebSettings) -> Union[Tuple[Engineer, Any], Response]:
    """(the signed-in engineer, the posted form) when the form carries their CSRF token; else the
    response to send (the sign-in redirect, or the 403 of a forged or expired form)."""
    engineer = await signed_in(request, state, settings)
    if isinstance(engineer, Response):
        return engineer
    form = await request.form()
    if not csrf_ok(engineer, text(form.get("csrf"))):
        return csrf_refused(request)
    return engineer, form


async def customer_form(request: Request, state: State,
                        settings: WebSettings) -> Union[Tuple[Person, Any], Response]:
    """`engineer_form` for a signed-in customer person."""
    person = await customer_signed_in(request, state, settings)
    if isinstance(person, Response):
        return person
    form = await request.form()
    if not csrf_ok(person, text(form.get("csrf"))):
        return csrf_refused(request)
    return person, form


def text(value: Any) -> str:
    """A form field as text (a file upload where text belongs counts as empty)."""
    return value if isinstance(value, str) else ""


def csrf_ok(viewer: Union[Engineer, Person], form_token: Optional[str]) -> bool:
    return websessions.same(viewer.csrf, form_token)


def csrf_refused(request: Request) -> Response:
    return render.message(request, 403, "Form expired or forged",
                          "This form did not carry a valid security token, so nothing was done. "
                          "Go back, reload the page and try again.")


CUSTOMER_COOKIE = "mydiag_customer"


async def current_customer(request: Request, state: State, settings: WebSettings) -> Optional[Person]:
    """The signed-in customer person (also set on `request.state.customer`), or None."""
    token = request.cookies.get(CUSTOMER_COOKIE)
    if not websessions.token_shape_ok(token):
        return None
    person, due = await db(state, False, customersessions.resolve, token, settings.idle_seconds)
    if person is not None and due:
        await db(state, True, customersessions.slide, token, settings.idle_seconds)
    request.state.customer = person
    return person


async def customer_signed_in(request: Request, state: State,
                             settings: WebSettings) -> Union[Person, Response]:
    """The signed-in customer person, or the redirect to the customer sign-in page."""
    person = await current_customer(request, state, settings)
    if person is not None:
        return person
    return render.secure(RedirectResponse(urls.CUSTOMER_SIGNIN, status_code=303))
