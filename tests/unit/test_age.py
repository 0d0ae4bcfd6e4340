"""age v1 in bundle/age.py: the public CCTV test vectors, round trips, and every failure."""

from __future__ import annotations

import hashlib
import io
import os
import random
import zlib
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundle import age
from bundle.age import CHUNK, AgeError

ROOT = Path(__file__).resolve().parents[2]
CCTV = Path(os.environ.get("MYDIAG_AGE_CCTV", ROOT.parent / "shared" / "testdata" / "age-cctv"))
MIB = 1024 * 1024
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 7, 5 * MIB + 3]


# -- the C2SP CCTV vectors -----------------------------------------------------------------


def _vector(path: Path) -> Tuple[Dict[str, str], List[str], bytes]:
    raw = path.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    meta: Dict[str, str] = {}
    identities: List[str] = []
    for line in head.decode().splitlines():
        key, _, value = line.partition(": ")
        if key == "identity":
            identities.append(value)
        else:
            meta[key] = value
    if meta.get("compressed") == "zlib":
        body = zlib.decompress(body)
    return meta, identities, body


def _unsupported(meta: Dict[str, str], identities: List[str]) -> str:
    """Why a vector is outside what mydiag implements ('' when it is an X25519 vector)."""
    if meta.get("armored") == "yes":
        return "armor"
    if any(i.startswith("AGE-SECRET-KEY-1") for i in identities):
        return ""
    if "passphrase" in meta:
        return "passphrase"
    if identities:
        return "hybrid"
    return ""


def _all_vectors() -> List[Path]:
    if not CCTV.is_dir():
        return []
    return sorted(p for p in CCTV.iterdir() if p.is_file() and p.name != "README.md")


def _x25519_vectors() -> list:
    if not CCTV.is_dir():
        return [pytest.param(None, id="cctv-absent")]
    return [p for p in _all_vectors() if not _unsupported(*_vector(p)[:2])]


def _outcome(body: bytes, identities: List[str]) -> Tuple[str, bytes, str]:
    out = io.BytesIO()
    try:
        age.decrypt(io.BytesIO(body), out, identities)
    except AgeError as exc:
        if exc.stage == "payload":
            result = "payload failure"
        elif exc.kind == AgeError.NO_MATCH:
            result = "no match"
        elif exc.kind == AgeError.HMAC:
            result = "HMAC failure"
        else:
            result = "header failure"
        return result, out.getvalue(), str(exc)
    return "success", out.getvalue(), ""


@pytest.mark.parametrize("path", _x25519_vectors(), ids=lambda p: p.name if p else "absent")
def test_every_x25519_cctv_vector_gives_its_expected_result(path):
    if path is None:
        pytest.skip(f"age CCTV test vectors not found at {CCTV} (set MYDIAG_AGE_CCTV to their folder)")
    meta, identities, body = _vector(path)
    x25519 = [i for i in identities if i.startswith("AGE-SECRET-KEY-1")]
    result, released, message = _outcome(body, x25519)
    assert result == meta["expect"], message
    if "payload" in meta:
        assert hashlib.sha256(released).hexdigest() == meta["payload"]
    assert "\n" not in message
    assert not any(i in message for i in identities)


def test_cctv_vectors_outside_x25519_are_counted_not_silently_dropped():
    if not CCTV.is_dir():
        pytest.skip(f"age CCTV test vectors not found at {CCTV} (set MYDIAG_AGE_CCTV to their folder)")
    counts: Dict[str, int] = {}
    for path in _all_vectors():
        reason = _unsupported(*_vector(path)[:2]) or "x25519"
        counts[reason] = counts.get(reason, 0) + 1
    print(f"age CCTV vectors: {counts}")
    assert counts.get("x25519", 0) >= 60, counts
    assert set(counts) <= {"x25519", "armor", "passphrase", "hybrid"}
    assert sum(counts.values()) == len(_all_vectors())


# -- keys ----------------------------------------------------------------------------------


def test_generated_identity_and_recipient_use_age_text_encodings():
    identity, recipient = age.generate_identity()
    assert identity.startswith("AGE-SECRET-KEY-1") and identity == identity.upper()
    assert recipient.startswith("age1") and len(recipient) == 62
    assert age.recipient_of(identity) == recipient
    assert age.recipient_of(identity.lower()) == recipient
    assert age.parse_recipient(recipient.upper()) == recipient


def test_a_damaged_key_is_refused_without_echoing_it():
    identity, recipient = age.generate_identity()
    flipped = identity[:-3] + ("Q" if identity[-3] != "Q" else "P") + identity[-2:]
    with pytest.raises(AgeError) as caught:
        age.recipient_of(flipped)
    assert identity[20:] not in str(caught.value) and caught.value.kind == AgeError.KEY
    with pytest.raises(AgeError):
        age.parse_recipient(recipient[:-1] + ("q" if recipient[-1] != "q" else "p"))
    with pytest.raises(AgeError):
        age.parse_recipient(identity)


def test_identity_file_reads_like_age_keygen_output(tmp_path):
    identity, recipient = age.generate_identity()
    other, _ = age.generate_identity()
    keyfile = tmp_path / "key.txt"
    keyfile.write_text(f"# created: now\n# public key: {recipient}\n\n{identity}\n  {other}  \n")
    assert age.read_identities(keyfile) == [identity, other]
    keyfile.write_text(f"{identity}\nAGE-SECRET-KEY-1NOTAKEY{identity[30:]}\n")
    with pytest.raises(AgeError) as caught:
        age.read_identities(keyfile)
    assert "line 2" in str(caught.value) and identity[30:] not in str(caught.value)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(AgeError, match="no identity"):
        age.read_identities(empty)


def test_recipients_file_skips_comments(tmp_path):
    _, one = age.generate_identity()
    _, two = age.generate_identity()
    path = tmp_path / "recipients.txt"
    path.write_text(f"# support team\n{one}\n\n{two}\n")
    assert age.read_recipients(path) == [one, two]
    path.write_text("ssh-ed25519 AAAAC3Nza\n")
    with pytest.raises(AgeError, match="line 1"):
        age.read_recipients(path)


# -- round trips ---------------------------------------------------------------------------


def _seal(data: bytes, recipients: List[str]) -> bytes:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(data), out, recipients)
    return out.getvalue()


def _open(sealed: bytes, identities: List[str]) -> bytes:
    out = io.BytesIO()
    age.decrypt(io.BytesIO(sealed), out, identities)
    return out.getvalue()


@pytest.fixture(scope="module")
def keypair() -> Tuple[str, str]:
    return age.generate_identity()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.sampled_from(SIZES) | st.integers(0, 4 * CHUNK + 3), seed=st.integers(0, 2**32))
def test_round_trip_at_every_size_around_the_chunk_boundaries(keypair, size, seed):
    identity, recipient = keypair
    data = random.Random(seed).randbytes(size)
    sealed = _seal(data, [recipient])
    chunks = max(1, -(-size // CHUNK))
    header = sealed.index(b"\n---") + len("\n--- ") + 43 + 1
    assert len(sealed) == header + 16 + size + 16 * chunks
    assert _open(sealed, [identity]) == data


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.sampled_from(SIZES[:-1]),
    cuts=st.lists(st.integers(0, 4 * CHUNK), max_size=8),
    seed=st.integers(0, 2**32),
)
def test_writer_output_does_not_depend_on_how_the_input_is_split(keypair, size, cuts, seed):
    identity, recipient = keypair
    data = random.Random(seed).randbytes(size)
    out = io.BytesIO()
    writer = age.AgeWriter(out, [recipient])
    start = 0
    for cut in sorted(c for c in cuts if c <= size) + [size]:
        writer.write(data[start:cut])
        start = cut
    writer.close()
    assert _open(out.getvalue(), [identity]) == data


BATCH = age._BATCH_CHUNKS * CHUNK


@pytest.mark.parametrize("size", [0, 1, CHUNK, CHUNK + 1, BATCH - 1, BATCH, BATCH + 1, 2 * BATCH,
                                  3 * BATCH + CHUNK, 7 * BATCH + 5])
def test_sealing_a_file_on_two_threads_gives_the_stream_format(keypair, tmp_path, size):
    identity, recipient = keypair
    data = os.urandom(size)
    (tmp_path / "plain").write_bytes(data)
    sealed = age.seal_file(tmp_path / "plain", tmp_path / "plain.age", [recipient]).read_bytes()
    chunks = max(1, -(-size // CHUNK))
    header = sealed.index(b"\n---") + len("\n--- ") + 43 + 1
    assert len(sealed) == header + 16 + size + 16 * chunks
    assert _open(sealed, [identity]) == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "plain.age"]


def test_several_recipients_each_open_the_same_file():
    keys = [age.generate_identity() for _ in range(3)]
    data = os.urandom(CHUNK + 5)
    sealed = _seal(data, [r for _, r in keys])
    for identity, _ in keys:
        assert _open(sealed, [identity]) == data
    stranger, _ = age.generate_identity()
    assert _open(sealed, [stranger, keys[2][0]]) == data


def test_reader_streams_plaintext_in_pieces(keypair):
    identity, recipient = keypair
    data = os.urandom(3 * CHUNK + 11)
    reader = age.AgeReader(io.BytesIO(_seal(data, [recipient])), [identity])
    got = bytearray()
    while True:
        piece = reader.read(1000)
        if not piece:
            break
        got += piece
    assert bytes(got) == data


def test_sealing_to_nobody_is_refused():
    with pytest.raises(AgeError, match="no recipient"):
        _seal(b"x", [])


# -- failures: one line, the right kind, no partial output --------------------------------


@pytest.fixture(scope="module")
def sealed_sample(keypair) -> Tuple[bytes, bytes]:
    data = os.urandom(3 * CHUNK + 100)
    return data, _seal(data, [keypair[1]])


def _error(sealed: bytes, identities: List[str]) -> AgeError:
    with pytest.raises(AgeError) as caught:
        _open(sealed, identities)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 200
    return caught.value


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def test_wrong_key_says_so(sealed_sample):
    stranger, _ = age.generate_identity()
    error = _error(sealed_sample[1], [stranger])
    assert error.kind == AgeError.NO_MATCH and "wrong key" in str(error)


@pytest.mark.parametrize("where", ["in the header", "before the nonce", "after a full chunk",
                                   "inside the last chunk", "inside a middle chunk"])
def test_truncated_file_is_refused(keypair, sealed_sample, where):
    sealed = sealed_sample[1]
    header_end = sealed.index(b"\n---") + len("\n--- ") + 44
    cut = {
        "in the header": header_end - 20,
        "before the nonce": header_end + 5,
        "after a full chunk": header_end + 16 + 2 * (CHUNK + 16),
        "inside the last chunk": len(sealed) - 30,
        "inside a middle chunk": header_end + 16 + CHUNK,
    }[where]
    error = _error(sealed[:cut], [keypair[0]])
    assert "truncated" in str(error)


@pytest.mark.parametrize("where", ["stanza", "mac", "nonce", "first chunk", "last chunk",
                                   "last byte"])
def test_a_flipped_byte_anywhere_is_detected(keypair, sealed_sample, where):
    sealed = sealed_sample[1]
    header_end = sealed.index(b"\n---") + len("\n--- ") + 44
    at = {
        "stanza": sealed.index(b"-> X25519 ") + 15,
        "mac": header_end - 10,
        "nonce": header_end + 3,
        "first chunk": header_end + 16 + 100,
        "last chunk": len(sealed) - 60,
        "last byte": len(sealed) - 1,
    }[where]
    error = _error(_flip(sealed, at), [keypair[0]])
    if where in ("stanza", "mac"):
        assert error.stage == "header" and "header" in str(error) or error.kind == AgeError.NO_MATCH
    else:
        assert error.stage == "payload" and "corrupted" in str(error)


def test_a_file_that_is_not_age_says_so(keypair, tmp_path):
    for junk in (b"", b"PK\x03\x04 a zip file", b"\x28\xb5\x2f\xfd" + os.urandom(200)):
        error = _error(junk, [keypair[0]])
        assert error.kind == AgeError.NOT_AGE and "not an age file" in str(error)
    armored = b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n"
    assert "armored" in str(_error(armored, [keypair[0]]))
    assert not age.is_age_file(b"hello") and age.is_age_file(_seal(b"", [keypair[1]]))


def test_failed_unseal_leaves_no_output_and_keeps_an_older_file(keypair, sealed_sample, tmp_path):
    data, sealed = sealed_sample
    damaged = tmp_path / "bundle.tar.zst.age"
    damaged.write_bytes(_flip(sealed, len(sealed) - 60))
    target = tmp_path / "bundle.tar.zst"
    with pytest.raises(AgeError):
        age.unseal_file(damaged, target, [keypair[0]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.tar.zst.age"]
    target.write_bytes(b"older")
    with pytest.raises(AgeError):
        age.unseal_file(damaged, target, [keypair[0]])
    assert target.read_bytes() == b"older"
    damaged.write_bytes(sealed)
    age.unseal_file(damaged, target, [keypair[0]])
    assert target.read_bytes() == data
    assert oct(target.stat().st_mode & 0o777) == "0o600"
