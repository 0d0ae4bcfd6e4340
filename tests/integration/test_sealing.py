"""Sealed and signed bundles, end to end: the stock `age` tool both ways, `mydiag seal`,
`unseal`, `verify`, `keys`, and a real collection sealed to the support side.

These tests need Debian's `age` and `age-keygen` (scripts/system-deps.sh installs them);
without them they fail, never skip.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Dict, Tuple

import pytest
import zstandard

from bundle import age, sign
from bundle.manifest import Manifest
from bundle.writer import BundleWriter
from tests.helpers import bundle_files, mydiag

MIB = 1024 * 1024


@pytest.fixture(scope="session")
def age_tool() -> str:
    for name in ("age", "age-keygen"):
        if shutil.which(name) is None:
            pytest.fail(f"`{name}` is not installed: apt-get install age (scripts/system-deps.sh)")
    return shutil.which("age") or "age"


@pytest.fixture()
def keygen(age_tool, tmp_path) -> Tuple[Path, str]:
    """An identity made by the stock `age-keygen`: (key file, its age1… recipient)."""
    keyfile = tmp_path / "support-key.txt"
    subprocess.run(["age-keygen", "-o", str(keyfile)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(keyfile)], check=True,
                               capture_output=True, text=True).stdout.strip()
    return keyfile, recipient


@pytest.fixture()
def state(tmp_path, monkeypatch) -> Dict[str, str]:
    """An agent state directory of this test's own, for `mydiag` child processes."""
    env = dict(os.environ, MYDIAG_HOME=str(tmp_path / "state"))
    monkeypatch.setenv("MYDIAG_HOME", env["MYDIAG_HOME"])
    return env


def _plain_bundle(folder: Path, key=None, recipients=None, files=None) -> Path:
    """A bundle made by the real writer, without a server: a few members of known content."""
    writer = BundleWriter(folder)
    for path, data in (files or {
        "mysql/variables.json": json.dumps({"max_connections": 151}).encode(),
        "mysql/status-samples.jsonl": b'{"Threads_running": 3}\n' * 5000,
        "os/cpu.json": b'{"cores": 2}',
    }).items():
        writer.add(path, data)
    manifest = Manifest(host="db1", profile="standard", started="2026-01-02T03:04:05Z",
                        finished="2026-01-02T03:04:09Z")
    return writer.finish(manifest, "mydiag-db1-20260102T030405Z.tar.zst", signing_key=key,
                         recipients=recipients)


def _tar_members(data: bytes) -> Dict[str, bytes]:
    out = {}
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data))
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for info in tar:
            handle = tar.extractfile(info)
            out[info.name] = handle.read() if handle else b""
    return out


def _rewrite(bundle: Path, change) -> None:
    """Rewrite a plain bundle member by member, letting `change(name, data)` alter each one."""
    members = _tar_members(bundle.read_bytes())
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as zout, tarfile.open(
        fileobj=zout, mode="w|", format=tarfile.PAX_FORMAT
    ) as tar:
        for name, data in members.items():
            data = change(name, data)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bundle.write_bytes(out.getvalue())


def _one_line_error(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


# -- interoperability with the stock age tool ---------------------------------------------


def test_sealed_bundle_opens_with_stock_age(age_tool, keygen, tmp_path):
    keyfile, recipient = keygen
    host_key = sign.generate_host_key(tmp_path / "host.key")
    sealed = _plain_bundle(tmp_path / "out", key=host_key, recipients=[recipient])
    assert sealed.name.endswith(".tar.zst.age")
    assert sorted(p.name for p in sealed.parent.iterdir()) == [sealed.name]
    plain = tmp_path / "opened.tar.zst"
    subprocess.run([age_tool, "-d", "-i", str(keyfile), "-o", str(plain), str(sealed)], check=True)
    extract = tmp_path / "extract"
    extract.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(plain), "-C", str(extract)], check=True)
    names = [m.name for m in subprocess_list(plain)]
    assert names[:2] == ["manifest.json", "manifest.sig"]
    manifest = json.loads((extract / "manifest.json").read_bytes())
    for entry in manifest["files"]:
        data = (extract / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    public, signature = sign.parse_signature_document((extract / "manifest.sig").read_bytes())
    assert public == sign.public_key_text(host_key)
    assert sign.verify(public, (extract / "manifest.json").read_bytes(), signature)


def subprocess_list(plain: Path):
    with open(plain, "rb") as raw, tarfile.open(
        fileobj=zstandard.ZstdDecompressor().stream_reader(raw), mode="r|"
    ) as tar:
        return list(tar)


# Around the chunk (64 KiB) and around the batch `seal_file` hands between its threads.
@pytest.mark.parametrize("size", [0, 1, 64 * 1024 - 1, 64 * 1024, 64 * 1024 + 1, MIB - 1, MIB, MIB + 1,
                                  2 * MIB, 5 * MIB + 3])
def test_round_trip_both_ways_with_stock_age(age_tool, keygen, tmp_path, size):
    keyfile, recipient = keygen
    original = tmp_path / "data.bin"
    original.write_bytes(os.urandom(size))
    # mydiag seals, age opens.
    done = mydiag("seal", str(original), "--recipient", recipient)
    assert done.returncode == 0, done.stderr
    opened = subprocess.run([age_tool, "-d", "-i", str(keyfile), str(original) + ".age"],
                            check=True, capture_output=True).stdout
    assert opened == original.read_bytes()
    # age seals, mydiag opens.
    by_age = tmp_path / "by-age.bin.age"
    subprocess.run([age_tool, "-r", recipient, "-o", str(by_age), str(original)], check=True)
    done = mydiag("unseal", str(by_age), "--identity", str(keyfile))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "by-age.bin").read_bytes() == original.read_bytes()


def test_age_multi_recipient_file_opens_with_either_key(age_tool, keygen, tmp_path):
    keyfile, recipient = keygen
    identity, other = age.generate_identity()
    mine = tmp_path / "mine.txt"
    mine.write_text(f"# a key made by mydiag\n{identity}\n")
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"# the ticket's keys\n{recipient}\n\n{other}\n")
    original = tmp_path / "notes.txt"
    original.write_bytes(b"hello\n" * 30000)
    done = mydiag("seal", str(original), "--recipients-file", str(recipients),
                  "--output", str(tmp_path / "notes.age"))
    assert done.returncode == 0, done.stderr
    for key in (keyfile, mine):
        opened = subprocess.run([age_tool, "-d", "-i", str(key), str(tmp_path / "notes.age")],
                                check=True, capture_output=True).stdout
        assert opened == original.read_bytes()
    by_age = tmp_path / "multi.age"
    subprocess.run([age_tool, "-r", recipient, "-r", other, "-o", str(by_age), str(original)],
                   check=True)
    done = mydiag("unseal", str(by_age), "-i", str(mine), "-o", str(tmp_path / "multi.out"))
    assert done.returncode == 0 and (tmp_path / "multi.out").read_bytes() == original.read_bytes()


# -- errors a user can meet: one line, a documented exit code, no partial output -----------


@pytest.fixture()
def sealed_file(age_tool, keygen, tmp_path) -> Tuple[Path, Path, bytes]:
    keyfile, recipient = keygen
    original = os.urandom(3 * 64 * 1024 + 500)
    sealed = tmp_path / "bundle.tar.zst.age"
    subprocess.run([age_tool, "-r", recipient, "-o", str(sealed)], input=original, check=True)
    return sealed, keyfile, original


def _unseal_fails(sealed: Path, keyfile: Path, code: int) -> str:
    done = mydiag("unseal", str(sealed), "--identity", str(keyfile))
    assert done.returncode == code, done.stderr
    assert not sealed.with_name("bundle.tar.zst").exists()
    assert [p.name for p in sealed.parent.iterdir() if p.name.startswith(".")] == []
    assert done.stdout == ""
    return _one_line_error(done)


def test_unseal_with_the_wrong_key_says_so(sealed_file, tmp_path):
    sealed, _, _ = sealed_file
    identity, _ = age.generate_identity()
    stranger = tmp_path / "stranger.txt"
    stranger.write_text(identity + "\n")
    line = _unseal_fails(sealed, stranger, 8)
    assert "wrong key" in line and identity not in line


def test_unseal_of_a_truncated_file_says_so(sealed_file):
    sealed, keyfile, _ = sealed_file
    data = sealed.read_bytes()
    for cut in (len(data) - 100, len(data) - (64 * 1024 + 16) - 200, 40):
        sealed.write_bytes(data[:cut])
        assert "truncated" in _unseal_fails(sealed, keyfile, 9)


@pytest.mark.parametrize("where", ["header", "body", "last chunk"])
def test_unseal_detects_a_flipped_byte(sealed_file, where):
    sealed, keyfile, _ = sealed_file
    data = bytearray(sealed.read_bytes())
    at = {"header": data.index(b"\n--- ") + 10, "body": len(data) // 2,
          "last chunk": len(data) - 3}[where]
    data[at] ^= 0x20
    sealed.write_bytes(bytes(data))
    line = _unseal_fails(sealed, keyfile, 9)
    assert ("header is corrupted" if where == "header" else "corrupted") in line


def test_unseal_of_something_that_is_not_age(sealed_file, tmp_path):
    sealed, keyfile, _ = sealed_file
    sealed.write_bytes(zstandard.ZstdCompressor().compress(b"a plain bundle" * 100))
    assert "not an age file" in _unseal_fails(sealed, keyfile, 9)


def test_bad_recipient_and_bad_identity_file_are_one_line_errors(tmp_path, keygen):
    keyfile, recipient = keygen
    target = tmp_path / "f.txt"
    target.write_text("x")
    done = mydiag("seal", str(target), "--recipient", recipient[:-2] + "zz")
    assert done.returncode == 12 and "not an age X25519 recipient" in _one_line_error(done)
    assert not (tmp_path / "f.txt.age").exists()
    done = mydiag("seal", str(target))
    assert done.returncode == 2 and "--recipient" in _one_line_error(done)
    secret = keyfile.read_text().strip().splitlines()[-1]
    keyfile.write_text(secret[:-1] + "\n")
    done = mydiag("unseal", str(target), "--output", str(tmp_path / "o"), "-i", str(keyfile))
    assert done.returncode == 12 and secret[:-1] not in done.stderr
    _one_line_error(done)


# -- host keys and verify ------------------------------------------------------------------


def test_keys_init_creates_a_private_key_once_and_show_prints_it(state, tmp_path):
    done = mydiag("keys", "show", env=state)
    assert done.returncode == 12 and "mydiag keys init" in _one_line_error(done)
    first = mydiag("keys", "init", env=state)
    assert first.returncode == 0, first.stderr
    public = first.stdout.strip()
    assert public.startswith("mydiag-ed25519 ")
    key = Path(state["MYDIAG_HOME"]) / "host_ed25519.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = mydiag("keys", "init", env=state)
    assert again.returncode == 0 and again.stdout.strip() == public
    assert "already exists" in again.stderr
    shown = mydiag("keys", "show", env=state)
    assert shown.returncode == 0 and shown.stdout.strip() == public


def _signed_bundle(tmp_path: Path, state) -> Tuple[Path, str]:
    done = mydiag("keys", "init", env=state)
    assert done.returncode == 0, done.stderr
    key = sign.load_host_key(Path(state["MYDIAG_HOME"]) / "host_ed25519.key")
    return _plain_bundle(tmp_path / "out", key=key), done.stdout.strip()


def test_verify_says_what_holds_for_an_intact_signed_bundle(state, tmp_path):
    bundle, public = _signed_bundle(tmp_path, state)
    done = mydiag("verify", str(bundle), "--signer", public)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"valid, by {public}" in done.stdout
    assert "all 3 match their sha256" in done.stdout
    assert "matches --signer" in done.stdout
    signer_file = tmp_path / "signer.pub"
    signer_file.write_text(public + "\n")
    assert mydiag("verify", str(bundle), "--signer", str(signer_file)).returncode == 0


def test_verify_detects_a_changed_member(state, tmp_path):
    bundle, public = _signed_bundle(tmp_path, state)
    _rewrite(bundle, lambda name, data: data.replace(b"151", b"999")
             if name == "mysql/variables.json" else data)
    done = mydiag("verify", str(bundle), "--signer", public)
    assert done.returncode == 10
    assert "changed (sha256 differs): mysql/variables.json" in done.stdout
    assert f"valid, by {public}" in done.stdout


def test_verify_detects_a_bad_signature(state, tmp_path):
    bundle, public = _signed_bundle(tmp_path, state)
    _rewrite(bundle, lambda name, data: data.replace(b'"host": "db1"', b'"host": "db9"')
             if name == "manifest.json" else data)
    done = mydiag("verify", str(bundle))
    assert done.returncode == 10
    assert "signature: FAILED: the signature does not match manifest.json" in done.stdout


def test_verify_detects_a_bundle_re_signed_by_another_key(state, tmp_path):
    bundle, public = _signed_bundle(tmp_path, state)
    intruder = sign.generate_host_key(tmp_path / "intruder.key")

    def resign(name: str, data: bytes) -> bytes:
        if name == "manifest.json":
            resign.manifest = data  # type: ignore[attr-defined]
        if name == "manifest.sig":
            return sign.signature_document(intruder, resign.manifest)  # type: ignore[attr-defined]
        return data

    _rewrite(bundle, resign)
    done = mydiag("verify", str(bundle), "--signer", public)
    assert done.returncode == 10
    assert "signer:    FAILED: not by --signer" in done.stdout


def test_verify_of_an_unsigned_bundle_says_it_proves_nothing_about_origin(tmp_path):
    bundle = _plain_bundle(tmp_path)
    done = mydiag("verify", str(bundle))
    assert done.returncode == 11
    assert "not signed" in done.stdout and "all 3 match" in done.stdout


def test_verify_opens_a_sealed_bundle_without_writing_plaintext(state, keygen, tmp_path):
    keyfile, recipient = keygen
    mydiag("keys", "init", env=state)
    key = sign.load_host_key(Path(state["MYDIAG_HOME"]) / "host_ed25519.key")
    sealed = _plain_bundle(tmp_path / "out", key=key, recipients=[recipient])
    done = mydiag("verify", str(sealed), "--identity", str(keyfile),
                  "--signer", sign.public_key_text(key))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"opened with the identity of {recipient}" in done.stdout
    assert sorted(p.name for p in sealed.parent.iterdir()) == [sealed.name]
    done = mydiag("verify", str(sealed))
    assert done.returncode == 2 and "--identity" in _one_line_error(done)
    data = bytearray(sealed.read_bytes())
    data[-5] ^= 1
    sealed.write_bytes(bytes(data))
    done = mydiag("verify", str(sealed), "--identity", str(keyfile))
    assert done.returncode == 9 and "sealed:    FAILED" in done.stdout


# -- a real collection, sealed ------------------------------------------------------------


@pytest.fixture(scope="module")
def defaults(server, tmp_path_factory) -> Path:
    return server.defaults_file(tmp_path_factory.mktemp("sealing-client"))


def _collect(defaults: Path, out: Path, env, *extra: str) -> dict:
    done = mydiag("collect", "--json", "--defaults-file", str(defaults), "--output", str(out),
                  "--profile", "quick", "--samples", "2", "--interval", "0.2", *extra, env=env)
    assert done.returncode in (0, 3), done.stderr
    return json.loads(done.stdout)


def test_collection_is_sealed_signed_and_leaves_no_plaintext(
    server, defaults, age_tool, keygen, state, tmp_path
):
    keyfile, recipient = keygen
    public = mydiag("keys", "init", env=state).stdout.strip()
    out = tmp_path / "bundles"
    summary = _collect(defaults, out, state, "--recipient", recipient)
    assert summary["sealed"] and summary["signed"]
    sealed = Path(summary["bundle"])
    assert sealed.name.endswith(".tar.zst.age")
    assert sorted(p.name for p in out.iterdir()) == [sealed.name]
    opened = subprocess.run([age_tool, "-d", "-i", str(keyfile), str(sealed)], check=True,
                            capture_output=True).stdout
    extract = tmp_path / "extract"
    extract.mkdir()
    subprocess.run(["tar", "--zstd", "-x", "-C", str(extract)], input=opened, check=True)
    manifest = json.loads((extract / "manifest.json").read_bytes())
    assert manifest["mysql"]["flavor"] and manifest["files"]
    for entry in manifest["files"]:
        assert hashlib.sha256((extract / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]
    done = mydiag("verify", str(sealed), "-i", str(keyfile), "--signer", public)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"all {len(manifest['files'])} match" in done.stdout


def test_collection_keeps_the_plain_bundle_only_when_asked(server, defaults, keygen, state, tmp_path):
    keyfile, recipient = keygen
    out = tmp_path / "bundles"
    summary = _collect(defaults, out, state, "--recipient", recipient, "--keep-plain")
    plain = Path(summary["plain_bundle"])
    assert not summary["signed"]
    assert sorted(p.name for p in out.iterdir()) == sorted([plain.name, plain.name + ".age"])
    unsealed = tmp_path / "unsealed.tar.zst"
    done = mydiag("unseal", summary["bundle"], "-i", str(keyfile), "-o", str(unsealed))
    assert done.returncode == 0, done.stderr
    assert bundle_files(unsealed) == bundle_files(plain)
    done = mydiag("verify", str(plain))
    assert done.returncode == 11 and "not signed" in done.stdout


def test_collect_refuses_a_bad_recipient_before_touching_the_server(defaults, state, tmp_path):
    out = tmp_path / "bundles"
    done = mydiag("collect", "--defaults-file", str(defaults), "--output", str(out),
                  "--recipient", "age1notarecipient", env=state)
    assert done.returncode == 12 and "not an age X25519 recipient" in _one_line_error(done)
    assert not out.exists() or not any(out.iterdir())
