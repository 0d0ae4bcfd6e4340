"""Hostile bytes at the support server's HTTP edge, sent to a real server over loopback:
numbers that only look like numbers, lone surrogates in every JSON field of every route,
endless headers and metadata, control characters on their way into a header or a
terminal, too many open uploads, and host keys enrolled by the wrong token."""

from __future__ import annotations

import base64
import http.client
import io
import json
import secrets
import socket
import tarfile
import time
import unicodedata
import urllib.parse
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
import zstandard

from tests.serverkit import Server, make_bundle, seal

pytestmark = pytest.mark.server

#: What a quarantine reason, a host or a metadata value may hide: each control class.
CONTROLS = {
    "crlf": "\r\nX-Injected: yes", "lf": "\nX-Injected: yes", "cr": "\rX-Injected: yes",
    "esc": "\x1b[2J\x1b]0;owned\x07", "nul": "\x00", "bel": "\x07", "tab": "\t", "vt-ff": "\x0b\x0c",
    "del": "\x7f", "c1-nel": "\x85", "c1-csi": "\x9b31m", "line-sep": "\u2028", "para-sep": "\u2029",
    "bidi": "\u202egpj.exe", "zero-width": "\u200b",
}


def send_raw(server: Server, head: bytes, body: bytes = b"", timeout: float = 15) -> Tuple[int, Dict, bytes]:
    """One request written byte for byte (http.client refuses much of what is sent here)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(head + b"\r\n" + body)
        reply = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            reply += data
    return parse_reply(reply)


def parse_reply(reply: bytes) -> Tuple[int, Dict, bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 "), reply[:200]
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def request_head(method: str, path: str, token: str, headers: List[Tuple[str, bytes]]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close",
             f"Authorization: Bearer {token}".encode(), b"Tus-Resumable: 1.0.0"]
    lines += [name.encode() + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n"


def assert_one_line_json_error(status: int, body: bytes, *expected: int) -> str:
    assert status in expected, (status, body[:300])
    error = json.loads(body)["error"]
    assert isinstance(error, str) and error and "\n" not in error and "Traceback" not in error
    return error


def api(server: Server, method: str, path: str, token: str, body: bytes = b"",
        **headers: str) -> Tuple[int, Dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request(method, path, body=body or None,
                 headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0",
                          **{k.replace("_", "-"): v for k, v in headers.items()}})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, {k.lower(): v for k, v in reply.getheaders()}, data


def no_server_errors(server: Server) -> None:
    logs = server.logs()
    assert '" 500' not in logs and "Traceback" not in logs, logs[-3000:]


@pytest.fixture(scope="module")
def ticket(support) -> Dict:
    return support.ticket(customer="hostile", title="odd bytes")


# -- numbers ------------------------------------------------------------------------------

#: Everything Python's int() or str.isdigit() takes for a number and HTTP does not.
NOT_ASCII_DIGITS = [
    "\u00b2", "\u00b3", "\u00b9", "1\u00b2",                      # superscripts (latin-1 bytes)
    "\u2074\u2075", "\u2082",                                    # superscripts, subscripts
    "\uff11\uff12",                                              # full-width
    "\u0661\u0662", "\u06f3",                                    # Arabic-Indic, extended
    "\u0967\u0968",                                              # Devanagari
    "\u09e7", "\u0e51", "\U0001d7ce",                            # Bengali, Thai, mathematical
    "+5", "-5", "- 5", "1 0", "1\t0", "1_0", "1,000", "1.0", "1e3", "0x10", "0b1", "٣",
    "\u00a05", "5\u00a0", "\u20035",                             # Unicode spaces around digits
    "", "NaN", "Infinity",
    "0" * 5000 + "1",                                            # leading zeros past any bound
    "9" * 19, "9" * 40,                                          # past 64 bits
]


def header_bytes(text: str) -> bytes:
    """How a client puts `text` on the wire: latin-1 where it can, else UTF-8 (both seen)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


@pytest.mark.parametrize("value", NOT_ASCII_DIGITS + ["9" * 10_000], ids=lambda v: ascii(v)[:24])
def test_upload_length_takes_ascii_digits_only(support, ticket, value):
    head = request_head("POST", f"/api/v1/tickets/{ticket['id']}/uploads", ticket["upload_token"],
                        [("Upload-Length", header_bytes(value))])
    status, _, body = send_raw(support, head)
    assert_one_line_json_error(status, body, 400, 431)


@pytest.mark.parametrize("value", NOT_ASCII_DIGITS, ids=lambda v: ascii(v)[:24])
def test_upload_offset_takes_ascii_digits_only(support, ticket, value):
    location = create(support, ticket, 10)
    head = request_head("PATCH", location, ticket["upload_token"], [
        ("Upload-Offset", header_bytes(value)), ("Content-Type", b"application/offset+octet-stream"),
        ("Content-Length", b"2")])
    status, _, body = send_raw(support, head, b"ab")
    assert_one_line_json_error(status, body, 400)
    terminate(support, ticket, location)


@pytest.mark.parametrize("value", ["\u00b2", "+2", "2_0", "\uff12", "0x2", "9" * 30],
                         ids=lambda v: ascii(v)[:24])
def test_a_content_length_that_is_not_digits_gets_a_json_400(support, ticket, value):
    location = create(support, ticket, 10)
    head = request_head("PATCH", location, ticket["upload_token"], [
        ("Upload-Offset", b"0"), ("Content-Type", b"application/offset+octet-stream"),
        ("Content-Length", header_bytes(value))])
    status, _, body = send_raw(support, head, b"ab")
    assert_one_line_json_error(status, body, 400)
    terminate(support, ticket, location)


def test_plain_digits_still_work_and_numbers_past_the_limit_are_413(support, ticket):
    head = request_head("POST", f"/api/v1/tickets/{ticket['id']}/uploads", ticket["upload_token"],
                        [("Upload-Length", b"  0010  ")])
    status, headers, _ = send_raw(support, head)
    assert status == 201 and headers["upload-length"] == "10"
    terminate(support, ticket, urllib.parse.urlsplit(headers["location"]).path)
    head = request_head("POST", f"/api/v1/tickets/{ticket['id']}/uploads", ticket["upload_token"],
                        [("Upload-Length", b"9" * 18)])
    status, headers, body = send_raw(support, head)
    assert_one_line_json_error(status, body, 413)
    assert headers["tus-max-size"].isascii() and headers["tus-max-size"].isdigit()
    no_server_errors(support)


# -- lone surrogates in JSON bodies -------------------------------------------------------

def json_operations(server: Server) -> Iterator[Tuple[str, str, Dict]]:
    """(method, path template, body schema) of every operation of the server's own OpenAPI
    document that takes a JSON body: new routes are covered without touching this test."""
    document = json.loads(server.api("GET", "/api/v1/openapi.json"))
    schemas = document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" not in content:
                continue
            schema = content["application/json"]["schema"]
            while "$ref" in schema or "anyOf" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else \
                    next(s for s in schema["anyOf"] if s.get("type") != "null")
            yield method.upper(), path, schema


def sample_body(schema: Dict) -> Dict:
    sample: Dict = {}
    for name, field in schema.get("properties", {}).items():
        kinds = [field.get("type")] + [s.get("type") for s in field.get("anyOf", [])]
        sample[name] = 60 if ("number" in kinds or "integer" in kinds) else "db1"
    return sample


SURROGATES = {"high": "\ud800", "low": "\udc00", "reversed-pair": "\udc00\ud800",
              "inside": "ab\udbffcd", "high-at-end": "x" * 50 + "\udfff"}


def test_every_json_route_is_covered(support):
    paths = {(m, p) for m, p, _ in json_operations(support)}
    for expected in ("/api/v1/tickets", "/api/v1/tickets/{ticket_id}/hosts",
                     "/api/v1/tickets/{ticket_id}/sessions",
                     "/api/v1/tickets/{ticket_id}/sessions/{session_id}/revoke"):
        assert ("POST", expected) in paths, paths


@pytest.mark.parametrize("kind", sorted(SURROGATES))
def test_a_lone_surrogate_in_any_json_field_of_any_route_is_a_400(support, ticket, kind):
    tried = 0
    for method, template, schema in json_operations(support):
        path = template.replace("{ticket_id}", ticket["id"]).replace("{session_id}", "se-0000000000")
        body = sample_body(schema)
        targets = [name for name, value in body.items() if isinstance(value, str)] + ["<key>"]
        for field in targets:
            hostile = dict(body)
            if field == "<key>":
                hostile[SURROGATES[kind]] = "x"
            else:
                hostile[field] = SURROGATES[kind]
            text = json.dumps(hostile)  # ensure_ascii: the surrogate travels as a \\u escape
            assert "\\ud" in text
            for token in (support.admin_token, ticket["upload_token"]):
                status, _, reply = api(support, method, path, token, text.encode(),
                                       Content_Type="application/json")
                error = assert_one_line_json_error(status, reply, 400)
                assert "JSON" in error
                tried += 1
    assert tried >= 2 * 12
    no_server_errors(support)


def test_surrogates_as_raw_bytes_and_broken_utf8_are_a_400_too(support, ticket):
    for raw in (b'{"customer": "acme", "title": "\xed\xa0\x80"}',       # UTF-8-encoded surrogate
                b'{"customer": "acme", "title": "\xff\xfe"}',            # not UTF-8
                b'{"customer": "acme", "title": "x", "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                b'{"customer": "acme", "title": NaN}'):
        status, _, reply = api(support, "POST", "/api/v1/tickets", support.admin_token, raw,
                               Content_Type="application/json")
        assert_one_line_json_error(status, reply, 400)
    status, _, reply = api(support, "POST", "/api/v1/tickets", support.admin_token,
                           json.dumps({"customer": "acme", "title": "fine \U0001f600"}).encode(),
                           Content_Type="application/json")
    assert status == 201, reply
    no_server_errors(support)


# -- headers and Upload-Metadata ----------------------------------------------------------

def metadata(**values: bytes) -> bytes:
    return b",".join(k.encode() + b" " + base64.b64encode(v) for k, v in values.items())


@pytest.mark.parametrize("case", ["long", "many-keys", "long-key", "long-value", "duplicate", "not-ascii",
                                  "not-base64", "control-in-header"])
def test_upload_metadata_is_bounded_before_it_is_decoded(support, ticket, case):
    hostile = {
        "long": metadata(filename=b"a" * 3000, note=b"b" * 1000),
        "many-keys": b",".join(b"k%d YQ==" % i for i in range(17)),
        "long-key": b"k" * 65 + b" YQ==",
        "long-value": metadata(filename=b"a" * 1025),
        "duplicate": b"filename YQ==,filename Yg==",
        "not-ascii": "filename YQ==,n\u00e9 YQ==".encode("latin-1"),
        "not-base64": b"filename \xff\xfe",
        "control-in-header": b"filename YQ==,\x01 YQ==",
    }[case]
    head = request_head("POST", f"/api/v1/tickets/{ticket['id']}/uploads", ticket["upload_token"],
                        [("Upload-Length", b"10"), ("Upload-Metadata", hostile)])
    status, _, body = send_raw(support, head)
    assert_one_line_json_error(status, body, 400)


@pytest.mark.parametrize("case", ["one-huge-header", "many-headers", "huge-metadata", "huge-url",
                                  "slow-endless-header"])
def test_request_heads_past_the_bound_get_a_json_431_and_the_server_stays_up(support, ticket, case):
    path = f"/api/v1/tickets/{ticket['id']}/uploads"
    token = ticket["upload_token"]
    if case == "one-huge-header":
        head = request_head("POST", path, token, [("Upload-Length", b"10"), ("X-Pad", b"a" * 1_000_000)])
    elif case == "many-headers":
        head = request_head("POST", path, token, [("Upload-Length", b"10")] +
                            [(f"X-{i}", b"a") for i in range(200)])
    elif case == "huge-metadata":
        head = request_head("POST", path, token, [("Upload-Length", b"10"), (
            "Upload-Metadata", b",".join(b"k%d YQ==" % i for i in range(100_000)))])
    elif case == "huge-url":
        head = request_head("POST", path + "?" + "a" * 100_000, token, [("Upload-Length", b"10")])
    else:
        head = None
    if head is not None:
        status, _, body = send_raw(support, head)
    else:
        # A header that never ends, sent in small pieces: the server must not wait for its end.
        with socket.create_connection(("127.0.0.1", support.port), timeout=15) as sock:
            sock.sendall(request_head("POST", path, token, [("Upload-Length", b"10")]) + b"X-Pad: ")
            reply = b""
            try:
                for _ in range(10_000):
                    sock.sendall(b"a" * 1024)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    reply += data
            except ConnectionResetError:
                pass
        status, _, body = parse_reply(reply)
    error = assert_one_line_json_error(status, body, 431)
    assert "header" in error or "head" in error
    assert json.loads(support.api("GET", "/api/v1/health"))["status"] == "ok"


def test_head_requests_get_headers_only_even_when_refused(support, ticket):
    location = create(support, ticket, 10)
    head = request_head("HEAD", location, ticket["upload_token"], [("X-Pad", b"a" * 40_000)])
    status, _, body = send_raw(support, head)
    assert status == 431 and body == b""
    status, _, body = send_raw(support, request_head("HEAD", location + "0", ticket["upload_token"], []))
    assert status == 404 and body == b""
    terminate(support, ticket, location)


def test_control_characters_in_metadata_values_never_reach_a_header(support, ticket):
    for name, text in CONTROLS.items():
        value = metadata(filename=f"bundle{text}.tar.zst.age".encode())
        head = request_head("POST", f"/api/v1/tickets/{ticket['id']}/uploads", ticket["upload_token"],
                            [("Upload-Length", b"10"), ("Upload-Metadata", value)])
        status, headers, body = send_raw(support, head)
        assert status == 201, (name, body)
        assert "x-injected" not in headers
        location = urllib.parse.urlsplit(headers["location"]).path
        status, headers, _ = send_raw(support, request_head("HEAD", location, ticket["upload_token"], []))
        assert status == 200 and headers["upload-metadata"] == value.decode()
        terminate(support, ticket, location)


# -- control characters in a quarantine reason and on the engineer's terminal -------------

def hostile_bundle(folder: Path, recipient: str, host: str, member: str) -> Path:
    """A real sealed bundle whose manifest names `host` and which holds a member `member`
    that the manifest does not list (so it is quarantined, with the name in the reason)."""
    plain = make_bundle(folder, payload=1024)
    with open(plain, "rb") as raw:
        data = zstandard.ZstdDecompressor().stream_reader(raw).read()
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=out, mode="w",
                                                                   format=tarfile.PAX_FORMAT) as dst:
        for info in src.getmembers():
            body = src.extractfile(info).read()
            if info.name == "manifest.json":
                manifest = json.loads(body)
                manifest["host"] = host
                body = json.dumps(manifest).encode()
                info.size = len(body)
            dst.addfile(info, io.BytesIO(body))
        extra = tarfile.TarInfo(member)
        extra.size = 4
        dst.addfile(extra, io.BytesIO(b"evil"))
    plain.write_bytes(zstandard.ZstdCompressor().compress(out.getvalue()))
    return seal(plain, recipient)


def upload_bytes(support: Server, ticket: Dict, data: bytes) -> Tuple[str, int, Dict]:
    location = create(support, ticket, len(data))
    status, headers, body = api(support, "PATCH", location, ticket["upload_token"], data,
                                Upload_Offset="0", Content_Type="application/offset+octet-stream")
    return location, status, headers


def assert_clean_header(value: str) -> None:
    assert all(" " <= c <= "~" for c in value), ascii(value)


def test_a_quarantine_reason_with_control_characters_leaves_patch_and_head_whole(support, ticket, tmp_path):
    member = "mysql/evil\x1b[2J\r\nX-Injected: yes\x85\u2028\x7f.json"
    sealed = hostile_bundle(tmp_path, support.recipient, "db1", member)
    location, status, headers = upload_bytes(support, ticket, sealed.read_bytes())
    assert status == 204 and "x-injected" not in headers
    for value in headers.values():
        assert_clean_header(value)
    for _ in range(100):
        status, headers, body = api(support, "HEAD", location, ticket["upload_token"])
        if headers.get("mydiag-bundle-status") == "quarantined":
            break
        time.sleep(0.1)
    assert status == 200 and body == b"" and "x-injected" not in headers
    assert headers["mydiag-bundle-status"] == "quarantined"
    assert_clean_header(headers["mydiag-reason"])
    no_server_errors(support)


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_each_control_class_in_a_reason_is_shown_escaped_in_the_header(support, ticket, tmp_path, name):
    sealed = seal(make_bundle(tmp_path, payload=256), support.recipient)
    location, status, headers = upload_bytes(support, ticket, sealed.read_bytes())
    assert status == 204
    bundle_id = headers["mydiag-bundle"]
    wait_verified(support, ticket)
    reason = f"planted reason {CONTROLS[name]} end"
    if support.database and "\x00" in reason:
        # A PostgreSQL text column cannot hold NUL, so no row can carry one: what holds is
        # that the server escapes it before it stores a reason (intake.bundles._settle).
        from server.intake.checks import one_line

        stored = one_line(reason)
        assert "\x00" not in stored and "\\x00" in stored
        reason = stored
    set_bundle(support, bundle_id, status="quarantined", reason=reason)
    status, headers, body = api(support, "HEAD", location, ticket["upload_token"])
    assert status == 200 and body == b"" and "x-injected" not in headers
    shown = headers["mydiag-reason"]
    assert_clean_header(shown)
    assert shown.startswith("planted reason ") and shown.endswith(" end")
    hidden = [c for c in CONTROLS[name] if unicodedata.category(c)[0] in "CZ" and c != " "]
    for char in hidden:
        assert (f"\\x{ord(char):02x}" if ord(char) < 256 else f"\\u{ord(char):04x}") in shown


def test_bundle_list_shows_customer_fields_with_visible_escapes(support, tmp_path, monkeypatch):
    ticket = support.ticket(customer="terminal", title="escape sequences")
    host = "db1\x1b]0;owned\x07\x1b[2J\x9b31m\u2028\u202e"
    sealed = hostile_bundle(tmp_path, support.recipient, host, "logs/x\x1b[31m\r\n.log")
    _, status, headers = upload_bytes(support, ticket, sealed.read_bytes())
    assert status == 204
    planted = seal(make_bundle(tmp_path, payload=300), support.recipient)
    _, status, planted_headers = upload_bytes(support, ticket, planted.read_bytes())
    wait_verified(support, ticket)
    set_bundle(support, planted_headers["mydiag-bundle"], status="quarantined", host=host,
               signer="db1\x1b[2J SHA256:x", reason="bad\x1b[31m\r\nreason\x85")
    wait_verified(support, ticket)
    monkeypatch.setenv("COLUMNS", "400")  # one table row per bundle, so the host reads whole
    listed = support.cli("bundle", "list", "--ticket", ticket["id"])
    shown = listed.stdout
    raw_controls = [c for c in shown if c != "\n" and unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cf")]
    assert not raw_controls, ascii(shown)
    assert "db1\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\\u2028\\u202e" in shown
    assert "bad\\x1b[31m\\x0d\\x0areason\\x85" in shown
    assert "db1\\x1b[2J SHA256:x" in shown
    as_json = json.loads(support.cli("bundle", "list", "--ticket", ticket["id"], "--json").stdout)
    assert any(b["host"] == host for b in as_json)


# -- open uploads per ticket --------------------------------------------------------------

def test_open_uploads_per_ticket_are_capped(support):
    ticket = support.ticket(customer="flooder", title="many uploads")
    other = support.ticket(customer="flooder", title="another ticket")
    made = [create(support, ticket, 100 + i) for i in range(8)]
    status, _, body = api(support, "POST", f"/api/v1/tickets/{ticket['id']}/uploads",
                          ticket["upload_token"], Upload_Length="10")
    error = assert_one_line_json_error(status, body, 429)
    assert "8" in error and "unfinished" in error
    create(support, other, 10)
    terminate(support, ticket, made.pop())
    made.append(create(support, ticket, 10))
    status, _, _ = api(support, "POST", f"/api/v1/tickets/{ticket['id']}/uploads",
                       ticket["upload_token"], Upload_Length="10")
    assert status == 429
    for location in made:
        terminate(support, ticket, location)


# -- enrollment ---------------------------------------------------------------------------

def test_only_the_tickets_own_token_enrolls_a_host_key(support, tmp_path):
    from bundle import sign

    ticket = support.ticket(customer="enrolling", title="host keys")
    other = support.ticket(customer="enrolling", title="another ticket")
    engineer = json.loads(support.cli("engineer", "add", f"eng{secrets.token_hex(3)}", "--json").stdout)
    key = sign.public_key_text(sign.generate_host_key(Path(tmp_path) / "host.key"))
    body = json.dumps({"public_key": key, "hostname": "db1.example"}).encode()
    path = f"/api/v1/tickets/{ticket['id']}/hosts"
    for token in (support.admin_token, engineer["token"]):
        status, _, reply = api(support, "POST", path, token, body, Content_Type="application/json")
        assert "enroll" in assert_one_line_json_error(status, reply, 403)
    as_json = {"Content_Type": "application/json"}
    status, _, reply = api(support, "POST", path, other["upload_token"], body, **as_json)
    assert_one_line_json_error(status, reply, 404)
    audit = json.loads(support.api("GET", f"/api/v1/audit?ticket={ticket['id']}"))
    assert not [e for e in audit if e["action"] == "host.enroll"]
    status, _, reply = api(support, "POST", path, ticket["upload_token"], body, **as_json)
    assert status == 201 and json.loads(reply)["already_enrolled"] is False


# -- helpers ------------------------------------------------------------------------------

def create(support: Server, ticket: Dict, length: int) -> str:
    status, headers, body = api(support, "POST", f"/api/v1/tickets/{ticket['id']}/uploads",
                                ticket["upload_token"], Upload_Length=str(length))
    assert status == 201, body
    return urllib.parse.urlsplit(headers["location"]).path


def terminate(support: Server, ticket: Dict, location: str) -> None:
    status, _, body = api(support, "DELETE", location, ticket["upload_token"])
    assert status == 204, body


def wait_verified(support: Server, ticket: Dict) -> None:
    """Until no bundle of the ticket is still waiting for its verification."""
    for _ in range(200):
        if all(b["status"] != "received" for b in support.bundles(ticket["id"])):
            return
        time.sleep(0.1)
    raise AssertionError("bundles still unverified after 20 s")


def set_bundle(support: Server, bundle_id: str, **values: str) -> None:
    """Plant values in a bundle's row, as a verification of any kind could have left them."""
    from server.storage.db import open_database

    url = support.database or f"sqlite:///{(support.data / 'server.db').resolve()}"
    db = open_database(url)
    try:
        with db.tx() as tx:
            for column, value in values.items():
                assert column in ("status", "reason", "host", "signer")
                tx.run(f"UPDATE bundles SET {column} = ? WHERE id = ?", (value, bundle_id))
    finally:
        db.close()


@pytest.mark.parametrize("name", sorted(set(CONTROLS) - {"zero-width"}))
def test_one_line_fields_refuse_each_control_class(support, tmp_path, name):
    from bundle import sign

    body = json.dumps({"customer": "acme", "title": f"lag {CONTROLS[name]} again"}).encode()
    status, _, reply = api(support, "POST", "/api/v1/tickets", support.admin_token, body,
                           Content_Type="application/json")
    assert "printable" in assert_one_line_json_error(status, reply, 400)
    ticket = support.ticket(customer="controls", title="one-line fields")
    key = sign.public_key_text(sign.generate_host_key(Path(tmp_path) / "host.key"))
    body = json.dumps({"public_key": key, "hostname": f"db1{CONTROLS[name]}.example"}).encode()
    status, _, reply = api(support, "POST", f"/api/v1/tickets/{ticket['id']}/hosts", ticket["upload_token"],
                           body, Content_Type="application/json")
    assert "printable" in assert_one_line_json_error(status, reply, 400)
