"""The engineers' web pages under test: a real `mydiag-server run` (SQLite and PostgreSQL),
engineers with passwords set by `mydiag-server engineer password --stdin`, plain HTTP
clients over loopback, and Debian's Chromium driven by Playwright with axe-core injected.

Passwords are made at test time. What a page must escape is put where a customer would
put it: tickets through the API, hosts, sessions and bundle rows through the server's
own record functions on the same database the server reads.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from tests.serverkit import ROOT, Server, make_server

CHROMIUM = "/usr/bin/chromium"
AXE = ROOT / ".tools" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
#: Markup in every field a customer controls: any of it running sets window.__xss or opens a dialog.
XSS = ('<script>window.__xss=1;alert(1)</script>"><img src=x onerror="window.__xss=2;alert(2)">'
       "<svg onload=alert(3)>javascript:alert(4)")


def set_password(server: Server, name: str, password: str) -> subprocess.CompletedProcess:
    extra = ["--database", server.database] if server.database else []
    return subprocess.run([sys.executable, "-m", "server.cli", "engineer", "password", name, "--stdin",
                           "--data", str(server.data), *extra], input=password + "\n", cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def new_engineer(server: Server, name: Optional[str] = None) -> Tuple[str, str]:
    """An engineer account with a fresh random password: (name, password)."""
    name = name or f"eng-{secrets.token_hex(4)}"
    server.cli("engineer", "add", name)
    password = secrets.token_urlsafe(18)
    done = set_password(server, name, password)
    assert done.returncode == 0, done.stderr
    return name, password


@dataclass
class Reply:
    status: int
    headers: List[Tuple[str, str]]
    body: str

    def header(self, name: str) -> Optional[str]:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def cookies(self) -> Dict[str, str]:
        """Set-Cookie lines by cookie name (the whole line, attributes included)."""
        return {next(iter(SimpleCookie(v))): v for k, v in self.headers if k.lower() == "set-cookie"}


@dataclass
class Client:
    """A cookie-keeping HTTP client for the pages, over one loopback address."""

    port: int
    source: str = "127.0.0.1"
    jar: Dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: Optional[Dict[str, str]] = None,
                headers: Optional[Dict[str, str]] = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30,
                                          source_address=(self.source, 0))
        sent = dict(headers or {})
        if self.jar:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.jar.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            raw = conn.getresponse()
            reply = Reply(raw.status, raw.getheaders(), raw.read().decode("utf-8", "replace"))
        finally:
            conn.close()
        for key, value in reply.headers:
            if key.lower() == "set-cookie":
                morsel = next(iter(SimpleCookie(value).values()))
                if morsel["max-age"] == "0" or not morsel.value or morsel.value == '""':
                    self.jar.pop(morsel.key, None)
                else:
                    self.jar[morsel.key] = morsel.value
        return reply

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: Dict[str, str], **kw) -> Reply:
        return self.request("POST", path, form=form, **kw)

    def signin_token(self) -> str:
        page = self.get("/signin")
        assert page.status == 200, page.body
        return hidden(page.body, "csrf")

    def sign_in(self, name: str, password: str, next_path: str = "/") -> Reply:
        return self.post("/signin", {"csrf": self.signin_token(), "name": name, "password": password,
                                     "next": next_path})


def hidden(html: str, name: str) -> str:
    marker = f'name="{name}" value="'
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


@dataclass
class Web:
    server: Server
    engineer: str
    password: str

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, source: str = "127.0.0.1") -> Client:
        return Client(self.server.port, source)

    def signed_in(self) -> Client:
        client = self.client()
        reply = client.sign_in(self.engineer, self.password)
        assert reply.status == 303, reply.body
        return client

    def state(self):
        from server.storage.state import State

        return State.open(self.server.data, self.server.database)


@pytest.fixture(scope="module")
def web(tmp_path_factory, backend) -> Iterator[Web]:
    """A running server on the backend under test, with an engineer who has a password."""
    server = make_server(tmp_path_factory.mktemp("web"), backend)
    name, password = new_engineer(server, "alice")
    server.start()
    yield Web(server, name, password)
    server.stop()


def _ssh_public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def seed_ticket(web: Web, title: str = XSS, host: str = XSS, purpose: str = XSS) -> Dict[str, object]:
    """A ticket the way customers fill one: its title over the API, then an enrolled host, a
    granted session and bundles (one quarantined with a customer-made reason, two accepted of
    one host) through the server's record functions, on the database the server reads."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bundle import sign
    from server.gateway import records
    from server.storage import audit
    from server.support import tickets

    ticket = json.loads(web.server.api("POST", "/api/v1/tickets", {"customer": "acme", "title": title}))
    state = web.state()
    try:
        with state.db.tx() as tx:
            tickets.enroll_host(tx, ticket["id"], sign.public_key_text(Ed25519PrivateKey.generate()), host,
                                "upload:acme")
            if tx.one("SELECT name FROM engineer_keys WHERE name = ?", (web.engineer,)) is None:
                records.add_engineer_key(tx, web.engineer, _ssh_public_key(), "cli:test")
            session = records.grant(tx, ticket["id"], "upload:acme", web.engineer, 3600, purpose, "diag",
                                    _ssh_public_key(), host)
            now = time.time()
            ids = []
            for n, (status, reason, bundle_host) in enumerate([
                    ("accepted", None, "db1"), ("quarantined", XSS, host), ("accepted", None, "db1")]):
                bundle_id = f"bd-{secrets.token_hex(5)}"
                ids.append(bundle_id)
                tx.run("INSERT INTO bundles (id, ticket_id, sha256, size, filename, status, reason, signer, "
                       "host, started, finished, manifest, received, verified) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                       (bundle_id, ticket["id"], secrets.token_hex(32), 1_500_000 + n,
                        "mydiag-db1.tar.zst.age", status, reason, None, bundle_host,
                        "2026-12-01T10:00:00Z", "2026-12-01T10:01:00Z", now + n, now + n))
                audit.record(tx, "upload:acme", "bundle.receive", ticket["id"], bundle_id, host=bundle_host)
    finally:
        state.close()
    return {"ticket": ticket, "session": session, "bundles": ids}


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's chromium (apt may still be installing it: wait up to 10 minutes)."""
    deadline = time.monotonic() + 600
    while not os.access(CHROMIUM, os.X_OK):
        if time.monotonic() > deadline:
            pytest.fail(f"{CHROMIUM} missing after 10 minutes: run scripts/system-deps.sh")
        time.sleep(5)
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    home = tmp_path_factory.mktemp("chromium-home")
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS,
                                                  env={**os.environ, "HOME": str(home)})
            yield launched
            launched.close()
    finally:
        if old is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = old


def _tab(browser, bypass_csp: bool):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=bypass_csp)
    tab = context.new_page()
    tab.dialogs = []
    tab.csp_errors = []

    def on_dialog(dialog) -> None:
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.on("console", lambda m: tab.csp_errors.append(m.text)
           if "Content Security Policy" in m.text else None)
    return context, tab


@pytest.fixture
def page(browser):
    """A fresh context at 1280 px that records every dialog, with the page's CSP bypassed: axe
    is injected as an inline script, and markup the templates failed to escape would run
    (the CSP must not be what hides an escaping bug; `strict_page` keeps the CSP)."""
    context, tab = _tab(browser, bypass_csp=True)
    yield tab
    context.close()


@pytest.fixture
def strict_page(browser):
    """Like `page`, with the server's CSP enforced; `tab.csp_errors` holds each violation."""
    context, tab = _tab(browser, bypass_csp=False)
    yield tab
    context.close()


@functools.lru_cache(maxsize=1)
def _axe_source() -> str:
    assert AXE.is_file(), f"{AXE} missing: run scripts/system-deps.sh"
    return AXE.read_text()


def axe_check(tab) -> None:
    """No axe-core violation of impact serious or critical on the page, on `page` and on
    `strict_page` alike: axe-core is evaluated through the DevTools protocol, which the
    page's CSP does not govern (a script tag would be an inline script, which it refuses)."""
    tab.evaluate(_axe_source())
    result = tab.evaluate("axe.run(document, {resultTypes: ['violations']})")
    bad = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
           for v in result["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, f"accessibility violations on {tab.url}:\n" + "\n".join(bad)


@pytest.fixture
def screenshot(request, tmp_path):
    """`screenshot(page, name)`: a full-page PNG under $MYDIAG_ARTIFACTS/screenshots or tmp."""
    base = Path(os.environ["MYDIAG_ARTIFACTS"]) / "screenshots" if os.environ.get("MYDIAG_ARTIFACTS") \
        else tmp_path / "screenshots"
    base.mkdir(parents=True, exist_ok=True)

    def shoot(tab, name: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)
        path = base / f"{safe}-{name}.png"
        tab.screenshot(path=str(path), full_page=True)
        return path

    return shoot


# The conversation pages (issue 14): customer people, sign-in links read from the outbox.

LINK = re.compile(r"https?://[^\s/]+(/customer/signin/[A-Za-z0-9_\-]+)")


def add_person(web: Web, customer: str, email: str) -> None:
    web.server.cli("customer", "add-person", customer, email)


def outbox_links(web: Web, email: str) -> List[str]:
    """The sign-in link paths mailed to `email`, oldest first, read from the outbox table
    (the MAIL sender is not configured in these servers: the rows stay queued)."""
    import email as email_lib
    from email import policy

    state = web.state()
    try:
        with state.db.tx(write=False) as tx:
            rows = tx.all("SELECT raw FROM outbox WHERE to_addr = ? ORDER BY created, id", (email,))
    finally:
        state.close()
    found = []
    for row in rows:
        mail = email_lib.message_from_string(row["raw"], policy=policy.default)
        # A mail with a call's invitation is multipart: its text is the text/plain part.
        part = mail.get_body(preferencelist=("plain",)) or mail
        match = LINK.search(part.get_content())
        if match:
            found.append(match.group(1))
    return found


def ask_link(client: Client, email: str) -> Reply:
    page = client.get("/customer/signin")
    assert page.status == 200, page.body
    return client.post("/customer/signin", {"csrf": hidden(page.body, "csrf"), "email": email})


def spend_link(client: Client, path: str) -> Reply:
    """Open a sign-in link and press its button, as a person would."""
    opened = client.get(path)
    if opened.status != 200:
        return opened
    return client.post(path, {"csrf": hidden(opened.body, "csrf")})


def customer_client(web: Web, email: str, source: str = "127.0.0.1") -> Client:
    """A client signed in as the customer person `email` through a mailed link."""
    client = web.client(source)
    assert ask_link(client, email).status == 200
    reply = spend_link(client, outbox_links(web, email)[-1])
    assert reply.status == 303 and reply.header("location") == "/customer", reply.body
    return client


def form_token(html: str) -> str:
    """The session's CSRF token from a page's forms."""
    return hidden(html, "csrf")
