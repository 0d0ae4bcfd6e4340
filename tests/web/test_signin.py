"""Signing in to the engineers' pages: passwords, sessions, CSRF, throttling, redirects."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse

import pytest

from tests.web.conftest import Client, Web, hidden, new_engineer, set_password


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def audit(web: Web) -> list:
    return json.loads(web.server.api("GET", "/api/v1/audit"))


def test_an_engineer_signs_in_and_lands_where_they_were_going(web: Web) -> None:
    client = web.client()
    first = client.get("/tickets/tk-aaaaaaaaaa?x=1")
    assert first.status == 303
    assert first.header("location") == "/signin?next=%2Ftickets%2Ftk-aaaaaaaaaa%3Fx%3D1"
    form = client.get(first.header("location"))
    assert 'name="next" value="/tickets/tk-aaaaaaaaaa?x=1"' in form.body
    reply = client.post("/signin", {"csrf": hidden(form.body, "csrf"), "name": web.engineer,
                                    "password": web.password, "next": "/tickets/tk-aaaaaaaaaa?x=1"})
    assert reply.status == 303 and reply.header("location") == "/tickets/tk-aaaaaaaaaa?x=1"
    home = client.get("/")
    assert home.status == 200
    assert f"Signed in as <strong>{web.engineer}</strong>" in home.body
    assert any(e["action"] == "web.signin" and e["subject"] == web.engineer for e in audit(web))


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(web: Web) -> None:
    name, password = new_engineer(web.server)
    wrong = web.client("127.0.0.31").sign_in(name, password + "x")
    unknown = web.client("127.0.0.32").sign_in("nobody-" + name, password)
    assert wrong.status == unknown.status == 401
    assert "mydiag_session" not in wrong.cookies() and "mydiag_session" not in unknown.cookies()
    error = "Wrong engineer name or password."
    assert error in wrong.body and error in unknown.body
    def shown(reply, typed: str) -> str:
        return reply.body.replace(typed, "N").replace(hidden(reply.body, "csrf"), "T")

    assert shown(wrong, name) == shown(unknown, "nobody-" + name)
    failures = [e for e in audit(web) if e["action"] == "web.signin.failed"]
    assert any(e["subject"] == name for e in failures)
    # Neither the password nor the unknown name (often a mistyped password) is recorded.
    logged = json.dumps(audit(web)) + web.server.logs()
    assert password not in logged and "nobody-" + name not in logged


def test_the_right_password_after_a_wrong_one_signs_in(web: Web) -> None:
    name, password = new_engineer(web.server)
    client = web.client("127.0.0.33")
    assert client.sign_in(name, "not the password at all").status == 401
    assert client.sign_in(name, password).status == 303
    assert client.get("/").status == 200


def test_ten_failed_signins_lock_the_account_from_any_address(web: Web) -> None:
    name, password = new_engineer(web.server)
    for n in range(10):
        assert web.client(f"127.0.1.{n + 1}").sign_in(name, f"wrong password {n}").status == 401
    locked = web.client("127.0.1.50").sign_in(name, password)
    assert locked.status == 429
    assert "Too many failed sign-ins" in locked.body
    assert "mydiag_session" not in locked.cookies()
    assert any(e["action"] == "web.signin.throttled" and e["subject"] == name for e in audit(web))
    # Other accounts are not affected.
    assert web.client("127.0.1.51").sign_in(web.engineer, web.password).status == 303


def test_ten_failed_signins_lock_the_address_for_every_account(web: Web) -> None:
    name, password = new_engineer(web.server)
    for n in range(10):
        assert web.client("127.0.2.1").sign_in(f"guess-{n}", "some password 123").status == 401
    assert web.client("127.0.2.1").sign_in(name, password).status == 429
    assert web.client("127.0.2.2").sign_in(name, password).status == 303


@pytest.mark.parametrize("token", [None, "", "wrong-token-wrong-token-wrong-token"])
def test_a_post_without_the_sessions_csrf_token_is_refused(web: Web, token) -> None:
    client = web.signed_in()
    form = {} if token is None else {"csrf": token}
    refused = client.post("/signout", form)
    assert refused.status == 403
    assert "did not carry a valid security token" in refused.body
    assert refused.header("content-security-policy")
    assert client.get("/").status == 200, "a refused sign-out must not sign out"


def test_another_sessions_csrf_token_does_not_do(web: Web) -> None:
    mine, theirs = web.signed_in(), web.signed_in()
    their_token = hidden(theirs.get("/").body, "csrf")
    assert mine.post("/signout", {"csrf": their_token}).status == 403
    assert mine.get("/").status == 200


def test_login_csrf_needs_the_forms_own_cookie(web: Web) -> None:
    # An attacker's page can post the form, but cannot read or set the victim's cookie.
    attacker = web.client()
    attacker_token = attacker.signin_token()
    victim = web.client()
    no_cookie = victim.post("/signin", {"csrf": attacker_token, "name": web.engineer,
                                        "password": web.password, "next": "/"})
    assert no_cookie.status == 403 and "mydiag_session" not in no_cookie.cookies()
    victim.signin_token()  # the victim has a token of their own now
    mismatched = victim.post("/signin", {"csrf": attacker_token, "name": web.engineer,
                                         "password": web.password, "next": "/"})
    assert mismatched.status == 403 and "mydiag_session" not in mismatched.cookies()
    missing = victim.post("/signin", {"name": web.engineer, "password": web.password, "next": "/"})
    assert missing.status == 403


def test_the_session_cookie_is_httponly_lax_and_secure_behind_tls(web: Web) -> None:
    client = web.client()
    reply = client.sign_in(web.engineer, web.password)
    line = reply.cookies()["mydiag_session"]
    attributes = [part.strip().lower() for part in line.split(";")]
    assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
    assert "secure" not in attributes, "plain HTTP on loopback: a Secure cookie would never come back"
    token = client.jar["mydiag_session"]
    # A TLS proxy in front (X-Forwarded-Proto from a trusted address) gets a Secure cookie.
    tls = web.client()
    page = tls.get("/signin", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in [p.strip().lower() for p in page.cookies()["mydiag_signin"].split(";")]
    behind = tls.post("/signin", {"csrf": hidden(page.body, "csrf"), "name": web.engineer,
                                  "password": web.password, "next": "/"},
                      headers={"X-Forwarded-Proto": "https"})
    assert "secure" in [p.strip().lower() for p in behind.cookies()["mydiag_session"].split(";")]
    # The database holds the token's SHA-256, never the token.
    state = web.state()
    try:
        with state.db.tx(write=False) as tx:
            rows = tx.all("SELECT digest, csrf FROM web_sessions")
    finally:
        state.close()
    assert _digest(token) in [r["digest"] for r in rows]
    assert token not in json.dumps(rows)


def test_signing_out_ends_the_session_for_good(web: Web) -> None:
    client = web.signed_in()
    token = client.jar["mydiag_session"]
    page = client.get("/")
    out = client.post("/signout", {"csrf": hidden(page.body, "csrf")})
    assert out.status == 303 and out.header("location") == "/signin"
    assert "mydiag_session" not in client.jar
    replayed = web.client()
    replayed.jar["mydiag_session"] = token
    again = replayed.get("/")
    assert again.status == 303 and again.header("location").startswith("/signin")
    assert any(e["action"] == "web.signout" and e["subject"] == web.engineer for e in audit(web))


def test_an_idle_session_ends(web: Web) -> None:
    client = web.signed_in()
    state = web.state()
    try:
        with state.db.tx() as tx:
            tx.run("UPDATE web_sessions SET expires = ? WHERE digest = ?",
                   (time.time() - 1, _digest(client.jar["mydiag_session"])))
    finally:
        state.close()
    assert client.get("/").status == 303


def test_a_new_password_ends_the_engineers_sessions(web: Web) -> None:
    name, password = new_engineer(web.server)
    client = web.client("127.0.0.34")
    assert client.sign_in(name, password).status == 303
    assert set_password(web.server, name, password + "-new").returncode == 0
    assert client.get("/").status == 303
    assert web.client("127.0.0.34").sign_in(name, password).status == 401
    assert web.client("127.0.0.34").sign_in(name, password + "-new").status == 303


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "/\\/evil.example",
                                    "https://evil.example/", "HTTPS://evil.example", "\t//evil.example",
                                    "javascript:alert(1)", "evil.example", "/\t/evil.example",
                                    "/\n/evil.example", "///evil.example"])
def test_next_never_leaves_the_site(web: Web, target: str) -> None:
    client = web.client()
    form = client.get("/signin?next=" + urllib.parse.quote(target, safe=""))
    assert 'name="next" value="/"' in form.body
    reply = client.post("/signin", {"csrf": hidden(form.body, "csrf"), "name": web.engineer,
                                    "password": web.password, "next": target})
    assert reply.status == 303
    assert reply.header("location") == "/"
    # Signed in, /signin?next=... redirects at once: the same rule holds.
    again = client.get("/signin?next=" + urllib.parse.quote(target, safe=""))
    assert again.status == 303 and again.header("location") == "/"


def test_the_password_command_refuses_short_passwords_and_unknown_engineers(web: Web) -> None:
    short = set_password(web.server, web.engineer, "too short")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr
    assert "too short" not in short.stdout + short.stderr
    unknown = set_password(web.server, "no-such-engineer", "long enough password")
    assert unknown.returncode == 2 and "no engineer" in unknown.stderr
    assert "long enough password" not in unknown.stdout + unknown.stderr
    assert web.client("127.0.0.35").sign_in(web.engineer, web.password).status == 303


def test_a_customer_token_is_no_way_into_the_pages(web: Web) -> None:
    ticket = web.server.ticket()
    client = Client(web.server.port)
    reply = client.get("/", headers={"Authorization": f"Bearer {ticket['upload_token']}"})
    assert reply.status == 303
    client.jar["mydiag_session"] = ticket["upload_token"]
    assert client.get("/").status == 303


def test_an_https_public_url_marks_the_cookies_secure(tmp_path, monkeypatch) -> None:
    from tests.serverkit import make_server

    server = make_server(tmp_path, None)
    name, password = new_engineer(server)
    monkeypatch.setenv("MYDIAG_PUBLIC_URL", "https://support.example.com")
    server.start()
    try:
        client = Client(server.port)
        page = client.get("/signin")
        assert "secure" in [p.strip().lower() for p in page.cookies()["mydiag_signin"].split(";")]
        # A browser would not send a Secure cookie back over plain HTTP; this client does.
        reply = client.sign_in(name, password)
        assert reply.status == 303
        assert "secure" in [p.strip().lower() for p in reply.cookies()["mydiag_session"].split(";")]
    finally:
        server.stop()
