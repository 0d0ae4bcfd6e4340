"""Host keys and manifest signatures (bundle/sign.py), and the agent's state directory."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import threading

import pytest

from agent import home
from bundle import sign


def test_host_key_is_created_private_and_never_replaced(tmp_path):
    path = tmp_path / "state" / "host_ed25519.key"
    key = sign.generate_host_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sign.public_key_text(sign.load_host_key(path)) == sign.public_key_text(key)
    with pytest.raises(sign.SignError, match="already exists"):
        sign.generate_host_key(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["host_ed25519.key"]
    assert b"PRIVATE KEY" in path.read_bytes()


def test_openssl_reads_the_host_key(tmp_path):
    path = tmp_path / "host_ed25519.key"
    sign.generate_host_key(path)
    done = subprocess.run(["openssl", "pkey", "-in", str(path), "-noout", "-text"],
                          capture_output=True, text=True)
    if done.returncode == 127:
        pytest.fail("openssl is needed for this test")
    assert done.returncode == 0 and "ED25519" in done.stdout


def test_concurrent_key_creation_leaves_exactly_one_key(tmp_path):
    path = tmp_path / "host_ed25519.key"
    made, refused = [], []

    def create() -> None:
        try:
            made.append(sign.public_key_text(sign.generate_host_key(path)))
        except sign.SignError:
            refused.append(1)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) >= 1 and len(made) + len(refused) == 8
    assert sign.public_key_text(sign.load_host_key(path)) in made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host_ed25519.key"]


def test_a_key_others_can_read_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "host_ed25519.key"
    sign.generate_host_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(sign.SignError, match="chmod 600"):
        sign.load_host_key(path)
    path.write_text("not a key\n")
    path.chmod(0o600)
    with pytest.raises(sign.SignError, match="not a valid host key"):
        sign.load_host_key(path)
    with pytest.raises(sign.SignError, match="mydiag keys init"):
        sign.load_host_key(tmp_path / "absent.key")


def test_signature_holds_only_for_the_exact_bytes(tmp_path):
    key = sign.generate_host_key(tmp_path / "k")
    public = sign.public_key_text(key)
    assert public.startswith("mydiag-ed25519 ") and len(public.split()) == 2
    data = b'{"host": "db1"}\n'
    signature = sign.sign(key, data)
    assert sign.verify(public, data, signature)
    assert not sign.verify(public, data.replace(b"db1", b"db2"), signature)
    assert not sign.verify(public, data, bytes(64))
    other = sign.public_key_text(sign.generate_host_key(tmp_path / "other"))
    assert not sign.verify(other, data, signature)
    assert not sign.verify("mydiag-ed25519 not-base64!", data, signature)
    assert sign.fingerprint(public).startswith("SHA256:")


def test_signature_document_names_the_signer_and_round_trips(tmp_path):
    key = sign.generate_host_key(tmp_path / "k")
    manifest = b'{"files": []}\n'
    document = sign.signature_document(key, manifest)
    fields = json.loads(document)
    assert fields["algorithm"] == "ed25519" and fields["signed"] == "manifest.json"
    public, signature = sign.parse_signature_document(document)
    assert public == sign.public_key_text(key) and sign.verify(public, manifest, signature)
    fields["algorithm"] = "rsa"
    with pytest.raises(sign.SignError, match="unknown algorithm"):
        sign.parse_signature_document(json.dumps(fields).encode())
    with pytest.raises(sign.SignError, match="malformed"):
        sign.parse_signature_document(b"[1, 2]")
    fields.update(algorithm="ed25519", signature=base64.b64encode(b"x").decode() + "!")
    with pytest.raises(sign.SignError, match="malformed"):
        sign.parse_signature_document(json.dumps(fields).encode())


def test_home_follows_mydiag_home_then_the_user(monkeypatch, tmp_path):
    monkeypatch.setenv("MYDIAG_HOME", str(tmp_path / "state"))
    assert home.home() == tmp_path / "state"
    assert home.host_key_path() == tmp_path / "state" / "host_ed25519.key"
    monkeypatch.delenv("MYDIAG_HOME")
    expected = "/var/lib/mydiag" if os.geteuid() == 0 else os.path.expanduser("~/.local/share/mydiag")
    assert str(home.home()) == expected
