"""The support server with real processes over loopback, on SQLite and on PostgreSQL:
tickets, enrollment, uploads by `mydiag upload` and by a tus client that is not ours,
verification and quarantine, limits, tokens, and one customer never seeing another's."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from agent.remote.upload import EARLY_HASH
from tests.serverkit import Server, agent_cli, make_bundle, make_server, seal

pytestmark = pytest.mark.server


def upload(support: Server, ticket: dict, path: Path, *extra: str, home: Path, url: str = "") -> tuple:
    token_file = home / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(ticket["upload_token"])
    done = agent_cli("upload", str(path), "--server", url or support.url, "--ticket", ticket["id"],
                     "--token-file", str(token_file), "--json", *extra, env={"MYDIAG_HOME": str(home)})
    result = json.loads(done.stdout) if done.stdout.strip() else None
    return done, result


def raw(url: str, method: str, path: str, token: str, body: bytes = b"", **headers: str):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.request(method, path, body=body or None,
                 headers={"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0",
                          **{k.replace("_", "-"): v for k, v in headers.items()}})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, {k.lower(): v for k, v in reply.getheaders()}, data


def create(support: Server, ticket: dict, length: int, token: str = "") -> str:
    status, headers, body = raw(support.url, "POST", f"/api/v1/tickets/{ticket['id']}/uploads",
                                token or ticket["upload_token"], Upload_Length=str(length))
    assert status == 201, body
    return urllib.parse.urlsplit(headers["location"]).path


def patch(support: Server, token: str, location: str, offset: int, data: bytes, **headers: str):
    return raw(support.url, "PATCH", location, token, data, Upload_Offset=str(offset),
               Content_Type="application/offset+octet-stream", **headers)


def test_signed_bundle_is_uploaded_verified_listed_and_opened(support, tmp_path):
    ticket = support.ticket()
    home = tmp_path / "agent"
    token_file = tmp_path / "token"
    token_file.write_text(ticket["upload_token"])
    enrolled = agent_cli("enroll", "--server", support.url, "--ticket", ticket["id"],
                         "--token-file", str(token_file), "--hostname", "db1.example", "--json",
                         env={"MYDIAG_HOME": str(home)})
    assert enrolled.returncode == 0, enrolled.stderr
    from bundle.sign import load_host_key

    plain = make_bundle(tmp_path / "out", host="db1", signing_key=load_host_key(home / "host_ed25519.key"))
    done, result = upload(support, ticket, plain, home=home)
    assert done.returncode == 0, done.stderr
    assert result["status"] == "accepted" and result["signer"].startswith("db1.example SHA256:")
    assert not Path(result["file"]).exists(), "the sealed copy is removed once the server confirmed it"
    assert plain.exists(), "the customer's plain bundle is kept"
    assert not list(plain.parent.glob("*.upload.json"))
    [listed] = json.loads(support.cli("bundle", "list", "--ticket", ticket["id"], "--json").stdout)
    assert listed["status"] == "accepted" and listed["host"] == "db1"
    assert listed["sha256"] == result["sha256"]
    opened = support.cli("bundle", "open", listed["id"], "--output", str(tmp_path / "opened"))
    assert "unpacked" in opened.stdout
    assert json.loads(next((tmp_path / "opened").glob("*/mysql/status.json")).read_text()) == {
        "Threads_running": 3}
    audit = json.loads(_get(support.url, "/api/v1/audit", support.admin_token))
    actions = {entry["action"] for entry in audit}
    assert {"ticket.create", "host.enroll", "upload.create", "upload.complete", "bundle.accept",
            "bundle.open"} <= actions
    assert ticket["upload_token"] not in json.dumps(audit) + support.logs()


def test_same_bytes_twice_are_recognized_and_stored_once(support, tmp_path):
    ticket = support.ticket()
    sealed = seal(make_bundle(tmp_path), support.recipient)
    first, one = upload(support, ticket, sealed, "--keep", home=tmp_path / "h")
    second, two = upload(support, ticket, sealed, "--keep", home=tmp_path / "h")
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert two["duplicate"] and two["sent"] == 0 and two["bundle"] == one["bundle"]
    [listed] = support.bundles(ticket["id"])
    assert [b for b in support.blobs() if b.name == listed["sha256"]]
    assert not list((support.data / "blobs" / "staging").glob("*")), "no second copy anywhere"


def test_wrong_and_expired_tokens_are_refused_without_echoing_them(support, tmp_path):
    ticket = support.ticket()
    sealed = seal(make_bundle(tmp_path), support.recipient)
    wrong = dict(ticket, upload_token="mdu_" + "x" * 43)
    done, _ = upload(support, wrong, sealed, "--keep", home=tmp_path / "h")
    assert done.returncode == 14
    assert "token" in done.stderr and wrong["upload_token"] not in done.stderr + done.stdout
    expiring = support.ticket(token_days="0.00001")
    import time

    time.sleep(1.2)
    done, _ = upload(support, expiring, sealed, "--keep", home=tmp_path / "h2")
    assert done.returncode == 14 and "expired" in done.stderr
    assert expiring["upload_token"] not in done.stderr + done.stdout + support.logs()
    status, _, _ = raw(support.url, "GET", f"/api/v1/tickets/{ticket['id']}", "")
    assert status == 401


def test_tampered_truncated_and_foreign_uploads_are_quarantined_with_the_reason(support, tmp_path):
    from bundle import age

    ticket = support.ticket()
    cases = {}
    tampered = seal(make_bundle(tmp_path / "a"), support.recipient)
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    cases["tampered"] = tampered
    truncated = seal(make_bundle(tmp_path / "b"), support.recipient)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size - 1000])
    cases["truncated"] = truncated
    _, other = age.generate_identity()
    cases["foreign"] = seal(make_bundle(tmp_path / "c"), other)
    reasons = {}
    for name, path in cases.items():
        done, result = upload(support, ticket, path, home=tmp_path / "h")
        assert done.returncode == 16, (name, done.stderr)
        assert result["status"] == "quarantined"
        reasons[name] = result["reason"]
    assert "cannot unseal" in reasons["tampered"]
    assert "cannot unseal" in reasons["truncated"] and "trunc" in reasons["truncated"].lower()
    assert "not sealed to this ticket's recipient" in reasons["foreign"]
    listed = support.bundles(ticket["id"])
    assert sorted(b["status"] for b in listed) == ["quarantined"] * 3
    assert all(b["reason"] for b in listed)
    kept = {b.name for b in support.blobs()}
    assert all(b["sha256"] in kept for b in listed), "quarantined bundles are kept, never dropped"


def test_upload_and_ticket_size_limits(tmp_path, own_backend):
    support = make_server(tmp_path, own_backend, "--max-upload-bytes", str(3 << 20),
                          "--max-ticket-bytes", str(5 << 20))
    support.start()
    try:
        ticket = support.ticket()
        big = seal(make_bundle(tmp_path / "big", payload=4 << 20), support.recipient)
        done, _ = upload(support, ticket, big, "--keep", home=tmp_path / "h")
        assert done.returncode == 14 and "limit per upload" in done.stderr
        first = seal(make_bundle(tmp_path / "one", payload=2 << 20), support.recipient)
        second = seal(make_bundle(tmp_path / "two", payload=2 << 20), support.recipient)
        third = seal(make_bundle(tmp_path / "three", payload=2 << 20), support.recipient)
        assert upload(support, ticket, first, home=tmp_path / "h")[0].returncode == 0
        assert upload(support, ticket, second, home=tmp_path / "h")[0].returncode == 0
        done, _ = upload(support, ticket, third, home=tmp_path / "h")
        assert done.returncode == 14 and "limit of" in done.stderr
        assert third.exists()
    finally:
        support.stop()


def test_a_tus_client_that_is_not_ours_uploads(support, tmp_path):
    from tusclient import client as tus

    ticket = support.ticket()
    sealed = seal(make_bundle(tmp_path), support.recipient)
    uploader = tus.TusClient(f"{support.url}/api/v1/tickets/{ticket['id']}/uploads",
                             headers={"Authorization": f"Bearer {ticket['upload_token']}"}).uploader(
        str(sealed), chunk_size=256 * 1024, metadata={"filename": sealed.name})
    uploader.upload()
    [listed] = support.settled(ticket["id"])
    assert listed["status"] == "accepted"
    assert listed["sha256"] == hashlib.sha256(sealed.read_bytes()).hexdigest()


def test_patch_at_a_wrong_offset_or_with_a_bad_checksum_changes_nothing(support):
    ticket = support.ticket()
    token = ticket["upload_token"]
    location = create(support, ticket, 1000)
    status, headers, _ = patch(support, token, location, 0, b"a" * 100)
    assert status == 204 and headers["upload-offset"] == "100"
    status, headers, _ = patch(support, token, location, 50, b"b" * 100)
    assert status == 409 and headers["upload-offset"] == "100"
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    status, _, _ = patch(support, token, location, 100, b"c" * 100, Upload_Checksum=f"sha256 {wrong}")
    assert status == 460
    status, headers, _ = raw(support.url, "HEAD", location, token)
    assert status == 200 and headers["upload-offset"] == "100" and headers["upload-length"] == "1000"
    assert "upload-expires" in headers
    staged = support.data / "blobs" / "staging" / location.rsplit("/", 1)[1]
    assert staged.read_bytes()[:100] == b"a" * 100
    status, _, _ = patch(support, token, location, 100, b"d" * 901)
    assert status == 400, "a body past Upload-Length is refused"
    status, _, _ = raw(support.url, "DELETE", location, token)
    assert status == 204
    status, _, _ = raw(support.url, "HEAD", location, token)
    assert status in (404, 410)
    assert not staged.exists()
    status, headers, _ = raw(support.url, "OPTIONS", f"/api/v1/tickets/{ticket['id']}/uploads", "")
    assert status == 204 and "checksum" in headers["tus-extension"] and "sha256" in headers[
        "tus-checksum-algorithm"]
    status, headers, _ = raw(support.url, "POST", f"/api/v1/tickets/{ticket['id']}/uploads", token,
                             Upload_Length="10", Tus_Resumable="0.2.2")
    assert status == 412 and headers["tus-version"] == "1.0.0"


def test_a_second_customer_cannot_list_read_or_upload_to_the_first_customers_ticket(support, tmp_path):
    first = support.ticket("acme")
    second = support.ticket("globex")
    sealed = seal(make_bundle(tmp_path), support.recipient)
    assert upload(support, first, sealed, "--keep", home=tmp_path / "h")[0].returncode == 0
    location = create(support, first, 10)
    [bundle] = support.bundles(first["id"])
    theirs = second["upload_token"]
    status, _, body = raw(support.url, "GET", "/api/v1/tickets", theirs)
    assert status == 200 and [t["id"] for t in json.loads(body)] == [second["id"]]
    for method, path in [("GET", f"/api/v1/tickets/{first['id']}"),
                         ("GET", f"/api/v1/tickets/{first['id']}/bundles"),
                         ("GET", f"/api/v1/tickets/{first['id']}/bundles/{bundle['id']}"),
                         ("GET", f"/api/v1/tickets/{first['id']}/bundles/{bundle['id']}/sealed"),
                         ("HEAD", location), ("DELETE", location)]:
        status, _, body = raw(support.url, method, path, theirs)
        assert status == 404, (method, path, status)
        assert b"acme" not in body
    status, _, _ = patch(support, theirs, location, 0, b"x" * 10)
    assert status == 404
    status, _, _ = raw(support.url, "POST", f"/api/v1/tickets/{first['id']}/uploads", theirs,
                       Upload_Length="10")
    assert status == 404
    status, _, _ = raw(support.url, "GET", f"/api/v1/tickets/{second['id']}/bundles/{bundle['id']}", theirs)
    assert status == 404, "a bundle id of another ticket is not found through one's own ticket"
    done, _ = upload(support, dict(first, upload_token=theirs), sealed, "--keep", home=tmp_path / "h2")
    assert done.returncode == 14
    status, _, _ = raw(support.url, "GET", "/api/v1/audit", theirs)
    assert status == 403


def test_changed_recipient_is_refused_loudly(support, tmp_path):
    ticket = support.ticket()
    home = tmp_path / "h"
    plain = make_bundle(tmp_path)
    assert upload(support, ticket, plain, home=home)[0].returncode == 0
    pins = home / "pinned_recipients.json"
    data = json.loads(pins.read_text())
    _, other = __import__("bundle.age", fromlist=["x"]).generate_identity()
    for entry in data.values():
        entry["recipients"] = [other]
    pins.write_text(json.dumps(data))
    again = make_bundle(tmp_path / "again")
    done, _ = upload(support, ticket, again, home=home)
    assert done.returncode == 15 and "CHANGED" in done.stderr
    assert len(support.bundles(ticket["id"])) == 1, "nothing was sent"


def test_two_server_processes_on_one_database_never_corrupt_an_upload(tmp_path, own_backend):
    support = make_server(tmp_path, own_backend)
    support.start()
    other = free_port_server(support)
    try:
        ticket = support.ticket()
        token = ticket["upload_token"]
        sealed = seal(make_bundle(tmp_path, payload=2 << 20), support.recipient)
        data = sealed.read_bytes()
        location = create(support, ticket, len(data))
        half = len(data) // 2
        results = []

        def race(url: str) -> None:
            results.append(raw(url, "PATCH", location, token, data[:half], Upload_Offset="0",
                               Content_Type="application/offset+octet-stream")[0])

        threads = [threading.Thread(target=race, args=(u,)) for u in (support.url, other)] * 1
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results)[0] == 204 and sorted(results)[1] in (409, 423), results
        status, _, _ = raw(other, "PATCH", location, token, data[half:], Upload_Offset=str(half),
                           Content_Type="application/offset+octet-stream")
        assert status == 204
        [listed] = support.settled(ticket["id"])
        assert listed["status"] == "accepted"
        assert listed["sha256"] == hashlib.sha256(data).hexdigest()
    finally:
        support.stop()


def free_port_server(support: Server) -> str:
    from tests.servers import free_port

    port = free_port()
    support.start(port)
    return f"http://127.0.0.1:{port}"


def test_the_audit_log_is_append_only(support):
    support.ticket()
    from server.storage.db import open_database

    url = support.database or f"sqlite:///{support.data / 'server.db'}"
    db = open_database(url)
    try:
        with pytest.raises(Exception, match="append-only"), db.tx() as tx:
            tx.run("DELETE FROM audit")
        with db.tx(write=False) as tx:
            assert tx.one("SELECT COUNT(*) AS n FROM audit")["n"] >= 2
    finally:
        db.close()


def _get(url: str, path: str, token: str) -> bytes:
    status, _, body = raw(url, "GET", path, token)
    assert status == 200, body
    return body


def test_server_cli_errors_are_one_line(tmp_path):
    from tests.serverkit import server_cli

    done = server_cli("ticket", "create", "--data", str(tmp_path / "nothing"), "--customer", "a",
                      "--title", "t", check=False)
    assert done.returncode == 3 and len(done.stderr.strip().splitlines()) == 1
    assert "mydiag-server init" in done.stderr
    done = server_cli("init", "--data", str(tmp_path / "d"), "--database",
                      "postgresql://nobody:secretpw@127.0.0.1:1/x", check=False)
    assert done.returncode == 4 and "secretpw" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert os.stat(tmp_path / "d" / "identity.txt").st_mode & 0o077 == 0


def _noise(path: Path, mib: int) -> Path:
    """`mib` MiB of random bytes: past EARLY_HASH, so the agent hashes alongside the chunks."""
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(1 << 20))
    return path


def test_a_large_duplicate_stops_once_its_hash_is_known(support, tmp_path):
    """Past 64 MiB the agent hashes alongside the first chunks; then it stops a duplicate."""
    ticket = support.ticket()
    noise = _noise(tmp_path / "noise.tar.zst", 66)
    first, one = upload(support, ticket, noise, "--keep", home=tmp_path / "h")
    second, two = upload(support, ticket, noise, "--keep", home=tmp_path / "h")
    assert first.returncode == 16 and second.returncode == 16, second.stderr
    assert two["duplicate"] and two["bundle"] == one["bundle"]
    assert two["sent"] <= EARLY_HASH < two["bytes"]  # never more than EARLY_HASH, however slow the hash
    assert len(support.bundles(ticket["id"])) == 1


def test_a_slow_hash_holds_the_upload_at_early_hash_bytes(support, tmp_path, monkeypatch):
    """However slow the hash, a duplicate costs at most EARLY_HASH bytes of sending."""
    from agent.remote import upload as upload_module
    from agent.remote.transport import Client

    ticket = support.ticket()
    noise = _noise(tmp_path / "noise.tar.zst", 66)
    client = Client(support.url, ticket["upload_token"])
    one = upload_module.upload_file(noise, client, ticket["id"], remove=False)
    assert one.sent == one.size and not one.duplicate
    real = upload_module.sha256_file

    def slow(path):
        time.sleep(3)  # longer than sending 64 MiB over loopback
        return real(path)

    monkeypatch.setattr(upload_module, "sha256_file", slow)
    try:
        outcome = upload_module.upload_file(noise, client, ticket["id"], remove=False, chunk_size=4 << 20)
    finally:
        client.close()
    assert outcome.duplicate and outcome.bundle == one.bundle
    assert outcome.sent == EARLY_HASH, outcome.sent
    assert len(support.bundles(ticket["id"])) == 1


def test_an_untouched_upload_expires(tmp_path, own_backend):
    support = make_server(tmp_path, own_backend)
    config = json.loads((support.data / "config.json").read_text())
    config["limits"]["upload_expiry_hours"] = 1 / 3600
    (support.data / "config.json").write_text(json.dumps(config))
    support.start()
    try:
        ticket = support.ticket()
        location = create(support, ticket, 100)
        status, headers, _ = raw(support.url, "HEAD", location, ticket["upload_token"])
        assert status == 200 and "upload-expires" in headers
        import time

        time.sleep(1.5)
        status, _, _ = raw(support.url, "HEAD", location, ticket["upload_token"])
        assert status == 410
        status, _, _ = patch(support, ticket["upload_token"], location, 0, b"x" * 10)
        assert status == 410
    finally:
        support.stop()


def _sent_whole(support: Server, ticket: dict, path: Path) -> tuple:
    """An upload created and sent in one PATCH: (location, the PATCH's reply headers)."""
    data = path.read_bytes()
    location = create(support, ticket, len(data))
    status, headers, body = patch(support, ticket["upload_token"], location, 0, data)
    assert status == 204, body
    return location, headers


def test_a_head_that_prefers_to_wait_is_answered_with_the_verdict(support, tmp_path):
    """`Prefer: wait=N` (RFC 7240): the HEAD right after the last byte is held until the
    bundle is verified and carries the verdict, accepted or quarantined, in one request."""
    ticket = support.ticket()
    good = seal(make_bundle(tmp_path / "good", payload=8 << 20), support.recipient)
    location, last = _sent_whole(support, ticket, good)
    assert last["mydiag-bundle-status"] == "received", "verification runs after the last PATCH"
    status, headers, _ = raw(support.url, "HEAD", location, ticket["upload_token"], Prefer="wait=20")
    assert status == 200 and headers["mydiag-bundle-status"] == "accepted", headers
    assert headers["preference-applied"] == "wait=20"
    bad = tmp_path / "bad.age"
    whole = seal(make_bundle(tmp_path / "b2", payload=8 << 20), support.recipient).read_bytes()
    bad.write_bytes(whole[:-4096])
    location, last = _sent_whole(support, ticket, bad)
    status, headers, _ = raw(support.url, "HEAD", location, ticket["upload_token"],
                             Prefer="respond-async, wait=20")
    assert status == 200 and headers["mydiag-bundle-status"] == "quarantined" and headers["mydiag-reason"]


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-1", "wait=99999999999", "wait=", "wait=5x",
                                    "return=minimal", "wait=1" + "0" * 5000, "\u00e9wait=3"])
def test_a_crafted_prefer_header_never_fails_or_holds_past_the_limit(support, tmp_path, prefer):
    ticket = support.ticket()
    location, _ = _sent_whole(support, ticket, seal(make_bundle(tmp_path / "b", payload=1024),
                                                    support.recipient))
    support.settled(ticket["id"])
    started = time.monotonic()
    try:
        status, headers, _ = raw(support.url, "HEAD", location, ticket["upload_token"], Prefer=prefer)
    except UnicodeEncodeError:
        return  # http.client refuses to send it: nothing reached the server
    assert status in (200, 400, 431), status
    assert time.monotonic() - started < 5
    if status == 200:
        assert headers["mydiag-bundle-status"] == "accepted"
