"""Hostile bundles sent to a real support server over HTTP: bombs, malformed manifests,
bad member paths, a verification that crashes; and the readers on the engineer's side
(`mydiag-server bundle open`, `mydiag verify`, `mydiag inspect`) on the same files.

Every bundle here is made at test time, by hand, with tarfile and zstandard (tar headers
written directly so that a member of 32 GiB of zeros costs seconds, not memory), and
sealed with the project's own age sealer when it goes to the server.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Sequence, Tuple, Union

import pytest
import zstandard

from tests.serverkit import ROOT, Server, agent_cli, make_server

pytestmark = pytest.mark.server

GIB = 1 << 30
ZEROS = bytes(1 << 22)
STAMP = "2026-01-02T03:04:05Z"

#: A member: (name, bytes, or a count of zero bytes to stream, and the tar type).
Member = Tuple[str, Union[bytes, int], bytes]
FILE, DIR, SYMLINK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE


# -- making bundles -------------------------------------------------------------------------


def entry(name: str, data: bytes) -> Dict[str, Any]:
    return {"path": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "redactions": {}}


def manifest(members: Sequence[Tuple[str, bytes]] = (), **changes: Any) -> Dict[str, Any]:
    """A manifest that verifies for `members` (name, bytes), with `changes` applied on top."""
    doc: Dict[str, Any] = {
        "format_version": 1, "tool": "mydiag", "tool_version": "1.0", "host": "db1",
        "profile": "standard", "started": STAMP, "finished": STAMP,
        "mysql": {"flavor": "mariadb", "version": "10.11.6", "label": "MariaDB 10.11.6",
                  "connection": "socket /run/mysqld/mysqld.sock", "statements": 12},
        "collectors": [{"name": "status", "status": "ok", "duration": 0.5, "error": None, "fix": None,
                        "notes": [], "files": [n for n, _ in members]}],
        "files": [entry(n, d) for n, d in members],
        "redaction": {"password": 1}, "options": {"samples": 3}, "trigger": None,
    }
    doc.update(changes)
    return doc


def good_members(files: Sequence[Tuple[str, bytes]], **changes: Any) -> List[Member]:
    body = json.dumps(manifest(files, **changes), indent=2, sort_keys=True).encode()
    return [("manifest.json", body, FILE)] + [(n, d, FILE) for n, d in files]


def header(name: str, size: int, kind: bytes = FILE, linkname: str = "",
           fmt: int = tarfile.PAX_FORMAT) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname, info.mode, info.mtime = size, kind, linkname, 0o600, 0
    return info.tobuf(fmt, "utf-8", "surrogateescape")


def write_plain(path: Path, members: Iterable[Member], fmt: int = tarfile.PAX_FORMAT,
                raw_tail: Iterable[bytes] = ()) -> Path:
    """A zstd tar of `members`; zero-byte bodies are streamed; `raw_tail`: more tar bytes."""
    with open(path, "wb") as out, zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False) as z:
        for name, data, kind in members:
            size = len(data) if isinstance(data, bytes) else data
            z.write(header(name, size if kind == FILE else 0, kind,
                           "/etc/passwd" if kind == SYMLINK else "", fmt))
            if kind != FILE:
                continue
            if isinstance(data, bytes):
                z.write(data)
            else:
                left = data
                while left:
                    z.write(ZEROS if left >= len(ZEROS) else ZEROS[:left])
                    left -= min(left, len(ZEROS))
            z.write(bytes(-size % 512))
        for block in raw_tail:
            z.write(block)
        z.write(bytes(1024))
    return path


def many_headers(count: int) -> Iterator[bytes]:
    """`count` headers of empty members m/<n><9-complement of n>: every name has the same
    byte sum, so one checksum fits all and a header is three slices (2 million in seconds)."""
    template = header("m/" + "0" * 7 + "9" * 7, 0, fmt=tarfile.USTAR_FORMAT)
    head, tail = template[:2], template[16:]
    complement = bytes.maketrans(b"0123456789", b"9876543210")
    batch = []
    for number in range(count):
        digits = b"%07d" % number
        batch.append(head + digits + digits.translate(complement) + tail)
        if len(batch) == 8192:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch)


def seal(plain: Path, recipient: str) -> Path:
    from bundle import age

    return age.seal_file(plain, plain.with_name(plain.name + ".age"), [recipient])


def sealed(folder: Path, members: Iterable[Member], recipient: str, **options: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return seal(write_plain(folder / f"b-{secrets.token_hex(4)}.tar.zst", members, **options), recipient)


# -- talking to the server ------------------------------------------------------------------


def _request(server: Server, method: str, path: str, token: str, body: bytes = b"",
             **headers: str) -> Tuple[int, Dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    conn.request(method, path, body=body or None, headers={
        "Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0",
        **{k.replace("_", "-"): v for k, v in headers.items()}})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, {k.lower(): v for k, v in reply.getheaders()}, data


def send(server: Server, ticket: Dict, path: Path) -> Tuple[str, float, Dict[str, str]]:
    """Upload `path` with two plain tus requests: (bundle id, seconds the last PATCH took,
    its headers, with the upload's path as `location`)."""
    data = path.read_bytes()
    token = ticket["upload_token"]
    status, headers, body = _request(server, "POST", f"/api/v1/tickets/{ticket['id']}/uploads", token,
                                     Upload_Length=str(len(data)))
    assert status == 201, body
    location = urllib.parse.urlsplit(headers["location"]).path
    started = time.monotonic()
    status, headers, body = _request(server, "PATCH", location, token, data, Upload_Offset="0",
                                     Content_Type="application/offset+octet-stream")
    took = time.monotonic() - started
    assert status == 204, (status, body)
    return headers["mydiag-bundle"], took, dict(headers, location=location)


def verdict(server: Server, ticket: Dict, bundle_id: str, timeout: float = 120.0) -> Dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = json.loads(server.api("GET", f"/api/v1/tickets/{ticket['id']}/bundles/{bundle_id}"))
        if found["status"] != "received" or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def judged(server: Server, ticket: Dict, folder: Path, members: Iterable[Member], **options: Any
           ) -> Dict[str, Any]:
    bundle_id, _, _ = send(server, ticket, sealed(folder, members, server.recipient, **options))
    return verdict(server, ticket, bundle_id)


def assert_quarantined(found: Dict[str, Any], *words: str) -> None:
    assert found["status"] == "quarantined", found
    reason = found["reason"]
    assert reason and reason.isprintable() and "\n" not in reason, reason
    for word in words:
        assert word in reason, (word, reason)


def peak_rss_mib(server: Server) -> float:
    status = Path(f"/proc/{server.processes[0].pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def start(tmp_path: Path, **limits: Any) -> Server:
    """A server of its own (SQLite) with some limits changed in its config.json."""
    server = make_server(tmp_path, None)
    config = json.loads((server.data / "config.json").read_text())
    config["limits"].update(limits)
    (server.data / "config.json").write_text(json.dumps(config))
    server.start()
    return server


@pytest.fixture(scope="module")
def support(tmp_path_factory) -> Iterator[Server]:
    """A server with the default limits."""
    server = start(tmp_path_factory.mktemp("defaults"))
    yield server
    server.stop()


#: Small limits, so that a bundle just under and just over each is cheap to make.
SMALL = dict(bundle_member_bytes=256 << 10, bundle_unpacked_bytes=1 << 20, bundle_members=40,
             manifest_bytes=64 << 10, manifest_depth=8, member_path_bytes=100, bundle_ratio=20.0,
             bundle_ratio_floor_bytes=0)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory) -> Iterator[Server]:
    server = start(tmp_path_factory.mktemp("small"), **SMALL)
    yield server
    server.stop()


# -- bombs ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_bombs(tmp_path_factory) -> Dict[str, Path]:
    """The three bombs of the report, as plain bundles: a manifest of 1 GiB of zeros, one
    member of 32 GiB of zeros, and 2 million empty members."""
    folder = tmp_path_factory.mktemp("bombs")
    return {
        "manifest": write_plain(folder / "manifest.tar.zst", [("manifest.json", GIB, FILE)]),
        "member": write_plain(folder / "member.tar.zst",
                              good_members([]) + [("os/zeros.bin", 32 * GIB, FILE)]),
        "members": write_plain(folder / "members.tar.zst", good_members([]),
                               raw_tail=many_headers(2_000_000)),
    }


@pytest.fixture(scope="module")
def bombs(plain_bombs, support) -> Dict[str, Path]:
    """The bombs sealed to the default server."""
    return {name: seal(path, support.recipient) for name, path in plain_bombs.items()}


def test_bombs_are_quarantined_at_once_in_bounded_memory(support, bombs):
    sizes = {name: path.stat().st_size for name, path in bombs.items()}
    assert sizes["manifest"] < 100_000 and sizes["member"] < 2 << 20 and sizes["members"] < 8 << 20
    ticket = support.ticket()
    expected = {"manifest": ("over a limit", "manifest.json", "1073741824"),
                "member": ("over a limit", "os/zeros.bin", "34359738368"),
                "members": ("over a limit", "more than 10000 members")}
    for name, path in bombs.items():
        started = time.monotonic()
        bundle_id, patch_took, headers = send(support, ticket, path)
        found = verdict(support, ticket, bundle_id)
        assert_quarantined(found, *expected[name])
        assert patch_took < 5 and time.monotonic() - started < 10, (name, patch_took)
    assert peak_rss_mib(support) < 200, "no bomb may drive the server's memory up"


def test_the_last_patch_returns_before_verification(tmp_path):
    """Verification runs in the background: the last PATCH of a bundle that takes seconds to
    verify (2 GiB of zeros, allowed by this server's limits) answers at once with `received`."""
    server = start(tmp_path, bundle_ratio=1e9, bundle_member_bytes=8 * GIB)
    try:
        ticket = server.ticket()
        path = sealed(tmp_path / "big", good_members([]) + [("os/zeros.bin", 2 * GIB, FILE)],
                      server.recipient)
        bundle_id, patch_took, headers = send(server, ticket, path)
        assert headers["mydiag-bundle-status"] == "received"
        started = time.monotonic()
        found = verdict(server, ticket, bundle_id)
        verify_took = time.monotonic() - started
        assert patch_took < 1.0 and verify_took > 2 * patch_took, (patch_took, verify_took)
        assert_quarantined(found, "not in the manifest: os/zeros.bin")
        status, later, _ = _request(server, "HEAD", headers["location"], ticket["upload_token"])
        assert status == 200 and later["mydiag-bundle-status"] == "quarantined"
    finally:
        server.stop()


def test_mydiag_upload_of_a_bomb_exits_16_with_the_reason(support, bombs, tmp_path):
    ticket = support.ticket()
    token = tmp_path / "token"
    token.write_text(ticket["upload_token"])
    done = agent_cli("upload", str(bombs["members"]), "--server", support.url, "--ticket", ticket["id"],
                     "--token-file", str(token), "--keep", "--json",
                     env={"MYDIAG_HOME": str(tmp_path / "home")})
    assert done.returncode == 16, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "quarantined" and "more than 10000 members" in result["reason"]


# -- each limit: just under passes, just over is quarantined ---------------------------------


def _random(n: int) -> bytes:
    return os.urandom(n)


def _exactly(total: int, piece: int = 200 << 10) -> List[Member]:
    """Random members (at most `piece` bytes each) whose sizes, manifest included, add up
    to exactly `total`."""
    rest = total
    for _ in range(3):
        files = [(f"os/{i}.bin", b"") for i in range(rest // piece + 1)]
        sizes = [piece] * (rest // piece) + [rest % piece]
        files = [(name, bytes(size)) for (name, _), size in zip(files, sizes)]
        rest = total - len(good_members(files)[0][1])
    files = [(name, _random(len(data))) for name, data in files]
    members = good_members(files)
    assert sum(len(m[1]) for m in members) == total
    return members


def _manifest_of(size: int, depth: int = 1) -> bytes:
    """A valid manifest of exactly `size` bytes (padded in options), nesting `depth` deep in
    options when asked."""
    nested: Any = "x"
    for _ in range(depth):
        nested = [nested]
    base = json.dumps(manifest(options={"deep": nested, "pad": ""})).encode()
    pad = size - len(base)
    assert pad >= 0
    return json.dumps(manifest(options={"deep": nested, "pad": secrets.token_hex(pad)[:pad]})).encode()


def test_each_limit_just_under_is_accepted_and_just_over_is_quarantined(guarded, tmp_path):
    ticket = guarded.ticket()
    limits = SMALL
    cases: Dict[str, Tuple[List[Member], List[Member], Tuple[str, ...]]] = {}
    member = limits["bundle_member_bytes"]
    cases["member bytes"] = (
        good_members([("os/a.bin", _random(member))]), good_members([("os/a.bin", _random(member + 1))]),
        ("os/a.bin", f"the limit per member is {member}"))
    total = limits["bundle_unpacked_bytes"]
    cases["unpacked bytes"] = (_exactly(total), _exactly(total + 1), (f"more than {total} bytes",))
    count = limits["bundle_members"]
    cases["members"] = (good_members([(f"os/{i}", b"x") for i in range(count - 1)]),
                        good_members([(f"os/{i}", b"x") for i in range(count)]),
                        (f"more than {count} members",))
    size = limits["manifest_bytes"]
    cases["manifest bytes"] = ([("manifest.json", _manifest_of(size), FILE)],
                               [("manifest.json", _manifest_of(size + 1), FILE)],
                               ("manifest.json", f"the limit is {size}"))
    depth = limits["manifest_depth"]
    # The manifest itself is depth 1 and options depth 2: a list in it nests from 3.
    cases["manifest depth"] = ([("manifest.json", _manifest_of(2000, depth - 2), FILE)],
                               [("manifest.json", _manifest_of(2000, depth - 1), FILE)],
                               (f"more than {depth} deep",))
    longest = limits["member_path_bytes"]
    cases["path bytes"] = (good_members([("os/" + "p" * (longest - 3), b"x")]),
                           good_members([("os/" + "p" * (longest - 2), b"x")]),
                           (f"longer than {longest} bytes",))
    for name, (under, over, words) in cases.items():
        found = judged(guarded, ticket, tmp_path / name, under)
        assert found["status"] == "accepted", (name, found["reason"])
        assert_quarantined(judged(guarded, ticket, tmp_path / name, over), *words)


def test_the_compression_ratio_limit_just_under_and_just_over(guarded, tmp_path):
    ratio = SMALL["bundle_ratio"]
    ticket = guarded.ticket()
    seed = _random(16 << 10)

    def build(zeros: int) -> Tuple[Path, int, int]:
        piece = 200 << 10
        pieces = [("os/seed.bin", seed)] + [(f"os/zeros-{i}.bin", bytes(min(piece, zeros - i * piece)))
                                           for i in range(-(-zeros // piece))]
        members = good_members(pieces)
        path = sealed(tmp_path / f"r{zeros}", members, guarded.recipient)
        return path, sum(len(m[1]) for m in members), path.stat().st_size

    def over(zeros: int) -> bool:
        _, unpacked, packed = build(zeros)
        return unpacked > int(ratio * packed)

    low, high = 0, 700_000
    assert not over(low) and over(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if over(middle) else (middle, high)
    under_path, _, _ = build(low)
    over_path, unpacked, packed = build(high)
    assert unpacked <= SMALL["bundle_unpacked_bytes"], "the total limit must not be what decides"
    bundle_id, _, _ = send(guarded, ticket, under_path)
    assert verdict(guarded, ticket, bundle_id)["status"] == "accepted"
    bundle_id, _, _ = send(guarded, ticket, over_path)
    assert_quarantined(verdict(guarded, ticket, bundle_id), "compression bomb", f"{packed} bytes received")


# -- malformed manifests --------------------------------------------------------------------


def _document(**changes: Any) -> bytes:
    return json.dumps(manifest([("os/a.txt", b"a")], **changes)).encode()


def _collector(**changes: Any) -> List[Dict[str, Any]]:
    entry_ = {"name": "status", "status": "ok", "duration": 0.5, "notes": [], "files": ["os/a.txt"]}
    entry_.update(changes)
    return [entry_]


def _file(**changes: Any) -> List[Dict[str, Any]]:
    listed = entry("os/a.txt", b"a")
    listed.update(changes)
    return [listed]


#: (what it is, the manifest bytes, words the reason must hold).
MALFORMED: List[Tuple[str, bytes, Tuple[str, ...]]] = [
    ("host a number", _document(host=5), ("host must be text",)),
    ("host a list", _document(host=["db1"]), ("host must be text",)),
    ("host an object", _document(host={"name": "db1"}), ("host must be text",)),
    ("host null", _document(host=None), ("host must be text",)),
    ("host with an escape sequence", _document(host="db1\x1b[2J"), ("host", "control")),
    ("host with a bidi override", _document(host="db\u202e1"), ("host", "control")),
    ("host a lone surrogate", _document(host="\ud800"), ("host", "lone surrogate")),
    ("host with a NUL", _document(host="db\x001"), ("host", "control")),
    ("no host", json.dumps({k: v for k, v in manifest().items() if k != "host"}).encode(), ("no 'host'",)),
    ("profile a number", _document(profile=7), ("profile must be text",)),
    ("started a number", _document(started=1767322800), ("started must be text",)),
    ("started not a time", _document(started="yesterday"), ("started must be a UTC time",)),
    ("finished a list", _document(finished=[]), ("finished must be text",)),
    ("format_version text", _document(format_version="1"), ("format_version",)),
    ("format_version from the future", _document(format_version=2), ("format_version",)),
    ("format_version true", _document(format_version=True), ("format_version",)),
    ("tool an object", _document(tool={}), ("tool must be text",)),
    ("tool_version a number", _document(tool_version=1.5), ("tool_version must be text",)),
    ("mysql text", _document(mysql="MariaDB"), ("mysql must be an object",)),
    ("mysql.label a number", _document(mysql={"label": 5}), ("mysql.label",)),
    ("mysql.statements text", _document(mysql={"statements": "3"}), ("mysql.statements",)),
    ("mysql.connection a number", _document(mysql={"connection": 5}), ("mysql.connection",)),
    ("collectors an object", _document(collectors={}), ("collectors must be an array",)),
    ("a collector text", _document(collectors=["status"]), ("collectors[0] must be an object",)),
    ("collector name a number", _document(collectors=_collector(name=1)), ("collectors[0].name",)),
    ("collector status unknown", _document(collectors=_collector(status="great")), ("collectors[0].status",)),
    ("collector status an object", _document(collectors=_collector(status={})), ("collectors[0].status",)),
    ("collector duration text", _document(collectors=_collector(duration="1s")), ("duration",)),
    ("collector duration negative", _document(collectors=_collector(duration=-1)), ("duration",)),
    ("collector duration too big", _document(collectors=_collector(duration=12345.5)).replace(
        b"12345.5", b"1e999"), ("duration",)),
    ("collector error a number", _document(collectors=_collector(error=5)), ("collectors[0].error",)),
    ("collector error a lone surrogate", _document(collectors=_collector(error="x\udc80")),
     ("collectors[0].error", "lone surrogate")),
    ("collector notes text", _document(collectors=_collector(notes="n")), ("collectors[0].notes",)),
    ("collector note a number", _document(collectors=_collector(notes=[1])), ("collectors[0].notes[0]",)),
    ("collector files hold a number", _document(collectors=_collector(files=[1])),
     ("collectors[0].files[0]",)),
    ("collector file outside", _document(collectors=_collector(files=["../x"])), ("collectors[0].files[0]",)),
    ("files an object", _document(files={}), ("files must be an array",)),
    ("a file a number", _document(files=[3]), ("files[0] must be an object",)),
    ("file path a list", _document(files=_file(path=["os", "a.txt"])), ("files[0].path must be text",)),
    ("file path an object", _document(files=_file(path={"p": 1})), ("files[0].path must be text",)),
    ("file path outside", _document(files=_file(path="../../etc/passwd")), ("files[0].path",)),
    ("file path absolute", _document(files=_file(path="/etc/passwd")), ("files[0].path",)),
    ("file path twice", _document(files=_file() + _file()), ("listed twice",)),
    ("file bytes text", _document(files=_file(bytes="1")), ("files[0].bytes",)),
    ("file bytes negative", _document(files=_file(bytes=-1)), ("files[0].bytes",)),
    ("file bytes true", _document(files=_file(bytes=True)), ("files[0].bytes",)),
    ("file bytes fractional", _document(files=_file(bytes=1.5)), ("files[0].bytes",)),
    ("file sha256 a number", _document(files=_file(sha256=5)), ("files[0].sha256",)),
    ("file sha256 not hex", _document(files=_file(sha256="Z" * 64)), ("files[0].sha256",)),
    ("file redactions a list", _document(files=_file(redactions=[])), ("files[0].redactions",)),
    ("file redaction count text", _document(files=_file(redactions={"pw": "1"})), ("files[0].redactions",)),
    ("redaction a list", _document(redaction=[]), ("redaction must be an object",)),
    ("redaction count fractional", _document(redaction={"pw": 1.5}), ("redaction",)),
    ("options a list", _document(options=[]), ("options must be an object",)),
    ("options key a lone surrogate", _document(options={"\udfff": 1}), ("lone surrogate",)),
    ("options value too big", b'{"host":"h","profile":"p","started":"","options":{"x":1e999}}',
     ("options.x", "too large")),
    ("options NaN", b'{"host":"h","profile":"p","started":"","options":{"x":NaN}}', ("NaN",)),
    ("trigger text", _document(trigger="fired"), ("trigger must be an object",)),
    ("the manifest an array", b"[]", ("an array, not a JSON object",)),
    ("the manifest text", b'"manifest"', ("text, not a JSON object",)),
    ("the manifest empty", b"", ("not JSON",)),
    ("a key twice", b'{"host":"db1","host":"db2","profile":"p","started":""}', ("'host' appears twice",)),
    ("deep nesting", b'{"host":"h","profile":"p","started":"","options":{"x":' + b"[" * 200_000
     + b"]" * 200_000 + b"}}", ("more than 32 deep",)),
    ("deep nesting of objects", b'{"host":"h","profile":"p","started":"","options":'
     + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}", ("more than 32 deep",)),
    ("not UTF-8", b'{"host":"db\xff","profile":"p","started":""}', ("not UTF-8",)),
    ("UTF-16", _document().decode().encode("utf-16"), ("not UTF-8",)),
    ("a lone surrogate written raw", b'{"host":"db\xed\xa0\x80","profile":"p","started":""}',
     ("not UTF-8",)),
]


@pytest.mark.parametrize("what,body,words", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_manifest_is_quarantined_with_the_field_named(support, tmp_path, what, body, words):
    ticket = support.ticket()
    members = [("manifest.json", body, FILE), ("os/a.txt", b"a", FILE)]
    found = judged(support, ticket, tmp_path, members)
    assert_quarantined(found, "manifest.json is not valid", *words)


# -- member paths ---------------------------------------------------------------------------

_A = [("os/a.txt", b"a")]

#: (what it is, the members after a valid manifest for os/a.txt, words in the reason, tar format).
BAD_PATHS: List[Tuple[str, List[Member], Tuple[str, ...], int]] = [
    ("dot-dot", [("../escape", b"x", FILE)], ("'../escape'", "`..`"), tarfile.PAX_FORMAT),
    ("dot-dot inside", [("os/../../escape", b"x", FILE)], ("`..`",), tarfile.PAX_FORMAT),
    ("absolute", [("/etc/cron.d/x", b"x", FILE)], ("absolute",), tarfile.GNU_FORMAT),
    ("dot", [("./os/b", b"x", FILE)], ("`.`",), tarfile.PAX_FORMAT),
    ("dot inside", [("os/./b", b"x", FILE)], ("`.`",), tarfile.PAX_FORMAT),
    ("double slash", [("os//b", b"x", FILE)], ("empty path component",), tarfile.PAX_FORMAT),
    ("backslash", [("os\\..\\..\\b", b"x", FILE)], ("backslash",), tarfile.PAX_FORMAT),
    ("escape sequence", [("os/\x1b[31mb", b"x", FILE)], ("control",), tarfile.PAX_FORMAT),
    ("newline", [("os/b\nc", b"x", FILE)], ("control",), tarfile.PAX_FORMAT),
    ("bidi override", [("os/b\u202etxt.exe", b"x", FILE)], ("control",), tarfile.PAX_FORMAT),
    ("not UTF-8", [("os/\udcff\udcfe", b"x", FILE)], ("not UTF-8",), tarfile.GNU_FORMAT),
    ("too long", [("os/" + "p" * 300, b"x", FILE)], ("longer than 255 bytes",), tarfile.PAX_FORMAT),
    ("a file inside a file", [("os/a.txt/b", b"x", FILE)], ("inside 'os/a.txt', which is a file",),
     tarfile.PAX_FORMAT),
    ("a file over a folder", [("os/b/c", b"x", FILE), ("os/b", b"x", FILE)],
     ("also the folder of another",), tarfile.PAX_FORMAT),
    ("a folder over a file", [("os/a.txt", b"", DIR)], ("a folder and also a file",), tarfile.PAX_FORMAT),
    ("twice", [("os/a.txt", b"a", FILE)], ("appears twice",), tarfile.PAX_FORMAT),
    ("twice by case", [("OS/A.TXT", b"a", FILE)], ("case-insensitive",), tarfile.PAX_FORMAT),
    ("twice by Unicode form", [("os/cafe\u0301", b"a", FILE), ("os/caf\u00e9", b"a", FILE)],
     ("case-insensitive",), tarfile.PAX_FORMAT),
    ("a second manifest", [("manifest.json", b"{}", FILE)], ("a second manifest.json",), tarfile.PAX_FORMAT),
    ("a late signature", [("manifest.sig", b"{}", FILE)], ("manifest.sig as member 3",), tarfile.PAX_FORMAT),
    ("a symlink", [("os/link", b"", SYMLINK)], ("os/link (not a regular file)",), tarfile.PAX_FORMAT),
    ("a sparse member", [("os/sparse", b"", tarfile.GNUTYPE_SPARSE)], ("sparse",), tarfile.GNU_FORMAT),
]


@pytest.mark.parametrize("what,extra,words,fmt", BAD_PATHS, ids=[b[0] for b in BAD_PATHS])
def test_a_member_path_that_breaks_the_format_is_quarantined(support, tmp_path, what, extra, words, fmt):
    ticket = support.ticket()
    members = good_members(_A) + extra
    assert_quarantined(judged(support, ticket, tmp_path, members, fmt=fmt), *words)


def test_the_manifest_must_come_first(support, tmp_path):
    ticket = support.ticket()
    members = good_members(_A)
    found = judged(support, ticket, tmp_path, [members[1], members[0]])
    assert_quarantined(found, "the first member is 'os/a.txt', not manifest.json")
    found = judged(support, ticket, tmp_path, [("manifest.json", b"", DIR)] + members[1:])
    assert_quarantined(found, "the first member")


def test_extension_headers_cannot_make_the_reader_allocate(support, tmp_path):
    """A pax header or GNU long name of 64 MiB (tarfile reads them whole) and a chain of
    thousands of pax headers (tarfile follows them recursively) stop at the header."""
    ticket = support.ticket()
    long_pax = [header("x", 64 << 20, tarfile.XHDTYPE, fmt=tarfile.USTAR_FORMAT)]
    chain = [header("x", 512, tarfile.XGLTYPE, fmt=tarfile.USTAR_FORMAT) + b"20 comment=aaaaaaaa\n".ljust(512)
             for _ in range(5000)]
    long_name = [header("././@LongLink", 64 << 20, tarfile.GNUTYPE_LONGNAME, fmt=tarfile.USTAR_FORMAT)]
    for tail, words in ((long_pax, "extension header of 67108864 bytes"),
                        (chain, "extension headers in a row"),
                        (long_name, "extension header of 67108864 bytes")):
        found = judged(support, ticket, tmp_path, good_members(_A), raw_tail=tail + [bytes(64 << 10)])
        assert_quarantined(found, words)


def test_a_zstd_frame_asking_for_a_huge_window_is_refused(support, tmp_path):
    ticket = support.ticket()
    plain = tmp_path / "window.tar.zst"
    data = b"".join(header(n, len(d)) + d + bytes(-len(d) % 512)
                    for n, d, _ in good_members(_A)) + bytes(1024)
    params = zstandard.ZstdCompressionParameters.from_level(1, window_log=30)
    with open(plain, "wb") as out, zstandard.ZstdCompressor(compression_params=params).stream_writer(
            out, closefd=False) as z:
        z.write(data)  # streamed, so the frame keeps its 1 GiB window (no content size to shrink it)
    bundle_id, _, _ = send(support, ticket, seal(plain, support.recipient))
    assert_quarantined(verdict(support, ticket, bundle_id), "not a readable bundle", "too much memory")


# -- one tenant's crash is not another's problem -------------------------------------------


def test_a_crashing_verification_is_retried_then_quarantined_and_never_blocks_another_tenant(tmp_path):
    """Ticket A's bundle cannot be verified (its blob is gone: a disk fault); ticket B's,
    received after it, is verified at once; A is retried with backoff and then quarantined."""
    from server.intake import bundles
    from server.storage.state import State

    server = make_server(tmp_path, None)
    config = json.loads((server.data / "config.json").read_text())
    config["limits"].update(verify_attempts=2, verify_retry_seconds=0.3)
    (server.data / "config.json").write_text(json.dumps(config))
    first = json.loads(server.cli("ticket", "create", "--customer", "acme", "--title", "a", "--json").stdout)
    second = json.loads(server.cli("ticket", "create", "--customer", "globex", "--title", "b",
                                   "--json").stdout)
    state = State.open(server.data)
    try:
        lost = bundles.register(state, first["id"], secrets.token_hex(32), 1000, "lost.tar.zst.age", "test")
        fine = ""
        # Bundle ids are random and a sweep may go by id: B's must come after A's, so that
        # a sweep that stops at A's crash would never reach it.
        while fine < lost:
            good = sealed(tmp_path / "good", good_members([("os/a.txt", os.urandom(8))]), server.recipient)
            digest = hashlib.sha256(good.read_bytes()).hexdigest()
            state.store.put_file(good, digest)
            fine = bundles.register(state, second["id"], digest, good.stat().st_size, good.name, "test")
    finally:
        state.close()
    server.start()
    try:
        # Within the first sweep after start-up: A's crash does not make B wait for another round.
        found = verdict(server, second, fine, timeout=5)
        assert found["status"] == "accepted", found
        assert all(b["status"] == "accepted" for b in server.settled(second["id"], timeout=5))
        crashed = verdict(server, first, lost, timeout=30)
        assert_quarantined(crashed, "verification failed repeatedly", "2 attempts", "FileNotFoundError")
    finally:
        server.stop()
    assert "Traceback" not in server.logs()


def test_a_hostile_bundle_does_not_hold_up_another_tenants_upload(support, bombs, tmp_path):
    hostile, other = support.ticket("acme"), support.ticket("globex")
    bomb_id, _, _ = send(support, hostile, bombs["member"])
    good_id, _, _ = send(support, other, sealed(tmp_path, good_members(_A), support.recipient))
    started = time.monotonic()
    assert verdict(support, other, good_id)["status"] == "accepted"
    assert time.monotonic() - started < 5
    assert verdict(support, hostile, bomb_id)["status"] == "quarantined"


# -- bundle open ----------------------------------------------------------------------------


def _import(server: Server, ticket: Dict, path: Path) -> Dict[str, Any]:
    done = server.cli("bundle", "import", "--ticket", ticket["id"], str(path), "--json", check=False)
    assert done.returncode in (0, 7), done.stderr
    return json.loads(done.stdout)


def _unpacked(done) -> Path:
    return Path(re.search(r"^unpacked: (.+?) \(", done.stdout, re.M).group(1))


def test_bundle_open_never_touches_what_it_did_not_create(support, tmp_path):
    """The old `bundle open` emptied OUTPUT for a file imported as `.tar.zst.age`."""
    ticket = support.ticket()
    plain = write_plain(tmp_path / "x.tar.zst", good_members([("mysql/status.json", b"{}")]))
    named = tmp_path / "named" / ".tar.zst.age"
    named.parent.mkdir()
    seal(plain, support.recipient).rename(named)
    found = _import(support, ticket, named)
    assert found["status"] == "accepted", found
    output = tmp_path / "output"
    output.mkdir()
    (output / "notes.txt").write_text("the engineer's own notes")
    first = _unpacked(support.cli("bundle", "open", found["id"], "--output", str(output)))
    assert first.parent == output and first.name.startswith(found["id"])
    assert (first / "mysql" / "status.json").read_text() == "{}"
    (first / "mysql" / "status.json").write_text("an earlier look")
    second = _unpacked(support.cli("bundle", "open", found["id"], "--output", str(output)))
    assert second != first and second.parent == output
    assert (output / "notes.txt").read_text() == "the engineer's own notes"
    assert (first / "mysql" / "status.json").read_text() == "an earlier look"
    assert (second / "mysql" / "status.json").read_text() == "{}"
    assert sorted(p.name for p in output.iterdir()) == sorted(
        ["notes.txt", first.name, first.name + ".tar.zst", second.name, second.name + ".tar.zst"])


def test_bundle_open_refuses_quarantined_and_unverified_bundles_unless_forced(support, tmp_path):
    from server.intake import bundles
    from server.storage.state import State

    ticket = support.ticket()
    quarantined = _import(support, ticket, sealed(tmp_path / "q", good_members(_A) + [("../x", b"x", FILE)],
                                                  support.recipient))
    assert quarantined["status"] == "quarantined"
    output = tmp_path / "out"
    done = support.cli("bundle", "open", quarantined["id"], "--output", str(output), check=False)
    assert done.returncode == 7 and "quarantined" in done.stderr and "--force" in done.stderr
    assert not output.exists() or not list(output.iterdir())
    done = support.cli("bundle", "open", quarantined["id"], "--output", str(output), "--force", check=False)
    assert done.returncode == 7 and "stopped unpacking" in done.stderr and "'../x'" in done.stderr
    assert not (tmp_path / "x").exists() and not (output / "x").exists()
    [folder] = [p for p in output.iterdir() if p.is_dir()]
    assert (folder / "os" / "a.txt").read_bytes() == b"a", "what came before the bad member is there"
    state = State.open(support.data)
    try:
        # Registered, never stored: the server's verifier retries it, so it stays `received`.
        waiting = bundles.register(state, ticket["id"], secrets.token_hex(32), 10, "u.tar.zst.age", "test")
    finally:
        state.close()
    done = support.cli("bundle", "open", waiting, "--output", str(tmp_path / "out2"), check=False)
    assert done.returncode == 7 and "not verified yet" in done.stderr


def test_bundle_open_stops_a_bomb_before_it_fills_a_tiny_disk(support, tmp_path, tiny_disk):
    ticket = support.ticket()
    (tiny_disk / "notes.txt").write_text("keep me")
    bomb = _import(support, ticket, sealed(tmp_path / "b", good_members(_A) + [("os/zeros", 200 << 20, FILE)],
                                           support.recipient))
    assert_quarantined(bomb, "compression bomb")
    done = support.cli("bundle", "open", bomb["id"], "--output", str(tiny_disk), "--force", check=False)
    assert done.returncode == 7 and "compression bomb" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    usage = shutil.disk_usage(tiny_disk)
    assert usage.used < 1 << 20, "the bomb was stopped at its header"
    members = good_members([("os/random.bin", _random(6 << 20))])
    big = _import(support, ticket, sealed(tmp_path / "big", members, support.recipient))
    assert big["status"] == "accepted"
    done = support.cli("bundle", "open", big["id"], "--output", str(tiny_disk), check=False)
    assert done.returncode == 6 and "No space left" in done.stderr and "removed what this run" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    left = sorted(p.name for p in tiny_disk.iterdir())
    assert (tiny_disk / "notes.txt").read_text() == "keep me"
    assert [name for name in left if name.startswith(big["id"])] == [], left


# -- the customer's and engineer's own readers ----------------------------------------------


@pytest.fixture(scope="module")
def malformed_plain(tmp_path_factory, plain_bombs) -> Dict[str, Tuple[Path, bool]]:
    """Plain bundles that break the format: (path, whether the manifest itself is bad)."""
    folder = tmp_path_factory.mktemp("plain")
    made: Dict[str, Tuple[Path, bool]] = {
        "manifest bomb": (plain_bombs["manifest"], True), "member bomb": (plain_bombs["member"], False),
        "2 million members": (plain_bombs["members"], False)}

    def add(what: str, members: List[Member], bad_manifest: bool, **options: Any) -> None:
        made[what] = (write_plain(folder / f"{len(made)}.tar.zst", members, **options), bad_manifest)

    for what, body, _ in MALFORMED[::6] + [m for m in MALFORMED if m[0].startswith("deep")]:
        add(what, [("manifest.json", body, FILE), ("os/a.txt", b"a", FILE)], True)
    for what, extra, words, fmt in BAD_PATHS[::4]:
        if "not a regular file" not in words[0]:  # readable, then a failed check: verify exits 10
            add(what, good_members(_A) + extra, False, fmt=fmt)
    garbage = folder / "garbage.tar.zst"
    garbage.write_bytes(os.urandom(4096))
    made["not zstd"] = (garbage, True)
    good = write_plain(folder / "good.tar.zst", good_members(_A))
    cut = folder / "cut.tar.zst"
    cut.write_bytes(good.read_bytes()[:-30])
    made["cut short"] = (cut, False)
    return made


def _measured(*args: str) -> Tuple[subprocess.CompletedProcess, float]:
    """Run `mydiag ARGS` under a small parent that reports the child's peak RSS (MiB)."""
    probe = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True);"
             " sys.stdout.buffer.write(r.stdout); sys.stderr.buffer.write(r.stderr);"
             " sys.stderr.write(f'\\npeak {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}');"
             " sys.exit(r.returncode)")
    done = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "agent.cli", *args],
                          cwd=ROOT, capture_output=True, timeout=120)
    err = done.stderr.decode("utf-8", "replace")
    peak = int(err.rsplit("peak ", 1)[1]) / 1024
    text = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode("utf-8", "replace"),
                                       err.rsplit("\npeak ", 1)[0])
    return text, peak


def test_mydiag_verify_and_inspect_give_documented_exit_codes_on_malformed_bundles(malformed_plain):
    for what, (path, bad_manifest) in malformed_plain.items():
        for command in (["verify"], ["inspect"], ["inspect", "--show", "os/zeros.bin"]):
            started = time.monotonic()
            done, peak = _measured(*command, str(path))
            expected = (7,) if command != ["inspect"] or bad_manifest else (0, 7)
            assert done.returncode in expected, (what, command, done.returncode, done.stderr)
            assert "internal error" not in done.stderr and "Traceback" not in done.stderr
            assert (done.stdout + done.stderr).replace("\n", "").isprintable(), (what, done.stdout)
            assert peak < 200 and time.monotonic() - started < 20, (what, command, peak)


def test_inspect_show_streams_a_big_member(tmp_path):
    data = _random(3 << 20)
    path = write_plain(tmp_path / "ok.tar.zst", good_members([("os/big.bin", data)]))
    done = subprocess.run([sys.executable, "-m", "agent.cli", "inspect", str(path), "--show", "os/big.bin"],
                          cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout == data
    listed = agent_cli("inspect", str(path))
    assert listed.returncode == 0 and "os/big.bin" in listed.stdout
