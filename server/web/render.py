"""Rendering a page: the Jinja2 environment (autoescape always on) and the headers every
page carries.

`page(request, template, **context)` is how every route answers with HTML: the template
gets `engineer` (who is signed in, or None), `csrf` (the token each form must carry),
`urls` (server/web/urls.py) and the context. Customer text is only ever escaped: no
template marks it `|safe`.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any, Dict, Optional

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from server.web import clockview, urls

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: No inline script or style anywhere; forms post only to this site; never framed.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")

HEADERS: Dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


#: The API's ISO UTC text (tickets.iso): read by its shape, not strptime, which cost a
#: quarter of a ticket page with a thousand bundles (bench/pages_bench.py).
_ISO = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})Z")


def _when(value: Any, seconds: bool = False) -> str:
    """An epoch or the API's ISO UTC text, shown as `YYYY-MM-DD HH:MM UTC`; other text as is."""
    if value is None or value == "":
        return "–"
    if isinstance(value, (int, float)):
        moment = datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
    text = str(value)
    shape = _ISO.fullmatch(text)
    if shape is None:
        return text
    try:
        datetime.datetime.fromisoformat(text[:-1])  # a real moment, as strptime insisted
    except ValueError:
        return text
    day, minute, second = shape.groups()
    return f"{day} {minute}{second if seconds else ''} UTC"


def _size(count: Optional[int]) -> str:
    if count is None:
        return "–"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["when"] = _when
_ENV.filters["size"] = _size
_ENV.filters["local"] = clockview.local
_ENV.globals["urls"] = urls


def secure(response: Response, private: bool = True) -> Response:
    """Add the security headers; `private`: the page may hold customer data (no-store)."""
    for name, value in HEADERS.items():
        response.headers[name] = value
    if private:
        response.headers["Cache-Control"] = "no-store"
    return response


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The template rendered for `request`'s engineer (or customer person), with the
    security headers and the viewer's time zone (`zone`)."""
    engineer = getattr(request.state, "engineer", None)
    customer = getattr(request.state, "customer", None)
    who = engineer or customer
    values = {"engineer": engineer, "customer": customer, "csrf": who.csrf if who else "",
              "request_path": request.url.path,
              "zone": clockview.viewer_zone(request), **context}
    body = _ENV.get_template(template).render(**values)
    return secure(HTMLResponse(body, status_code=status))  # type: ignore[return-value]


def message(request: Request, status: int, title: str, text: str) -> HTMLResponse:
    """A page that says one thing (403, 404, 429): what happened and what to do."""
    return page(request, "message.html", status=status, title=title, text=text)
