"""Secrets made up at test time, and every form they could take in a bundle or on a terminal."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.parse
import warnings
from typing import Dict, Iterable, List

import bcrypt
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id


def make(prefix: str = "") -> str:
    """A fresh secret; `prefix` keeps it from starting with a dash."""
    return prefix + secrets.token_urlsafe(18)


def forms(secret: str) -> List[bytes]:
    """Raw, JSON-escaped, base64 (any alignment), hex (either case) and URL-encoded forms."""
    raw = secret.encode()
    found = {
        raw,
        json.dumps(secret)[1:-1].encode(),
        json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
        raw.hex().encode(),
        raw.hex().upper().encode(),
        urllib.parse.quote(secret, safe="").encode(),
        urllib.parse.quote_plus(secret).encode(),
    }
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw)
        core = encoded[(shift * 4 + 2) // 3 + 1:-4]
        if len(core) >= 8:
            found.add(core)
            found.add(base64.urlsafe_b64encode(b"\0" * shift + raw)[(shift * 4 + 2) // 3 + 1:-4])
    return sorted(f for f in found if len(f) >= 6)


def leaks(planted: Dict[str, str], blobs: Dict[str, bytes]) -> List[str]:
    """Which planted secrets (by label, never value) show up in which blob, in any form."""
    found: List[str] = []
    for label, secret in planted.items():
        for where, blob in blobs.items():
            if any(form in blob for form in forms(secret)):
                found.append(f"{label} in {where}")
    return found


def files_under(*folders) -> Dict[str, bytes]:
    out: Dict[str, bytes] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out[str(path)] = path.read_bytes()
    return out


def joined(texts: Iterable[str]) -> bytes:
    return "\n".join(texts).encode()


# --- password hashes of every family privacy/shapes.py knows, made fresh ----------------------

_CRYPT64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _crypt_chars(count: int) -> str:
    return "".join(secrets.choice(_CRYPT64) for _ in range(count))


def _libxcrypt(setting: str, width: int) -> str:
    """The system's crypt(3) (libxcrypt on Debian) where Python still has it, else the shape."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # removed in Python 3.13
    except ImportError:
        return f"{setting}${_crypt_chars(width)}"
    made = crypt.crypt(make(), setting)
    assert made and made.startswith(setting[:3]), f"crypt(3) cannot make {setting[:4]}…"
    return made


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def password_hashes() -> Dict[str, str]:
    """family → a hash of a fresh password, in the form its software writes it."""
    password = make().encode()
    salt = secrets.token_bytes(16)
    argon = Argon2id(salt=salt, length=32, iterations=2, lanes=1, memory_cost=64).derive(password)
    stage = hashlib.sha1(password).digest()
    return {
        "mysql_native": "*" + hashlib.sha1(stage).hexdigest().upper(),
        "caching_sha2": "$A$005$" + _crypt_chars(20) + _crypt_chars(43),
        "caching_sha2_hex": "0x" + ("$A$005$" + _crypt_chars(63)).encode().hex().upper(),
        "md5crypt": _libxcrypt("$1$" + _crypt_chars(8), 22),
        "apr1": f"$apr1${_crypt_chars(8)}${_crypt_chars(22)}",
        "bcrypt": bcrypt.hashpw(password, bcrypt.gensalt(rounds=4)).decode(),
        "bcrypt_2a": bcrypt.hashpw(password, bcrypt.gensalt(rounds=4, prefix=b"2a")).decode(),
        "bcrypt_2y": "$2y$10$" + _crypt_chars(53),
        "bcrypt_sha256": f"$bcrypt-sha256$v=2,t=2b,r=12${_crypt_chars(22)}${_crypt_chars(31)}",
        "sha256crypt": _libxcrypt("$5$" + _crypt_chars(16), 43),
        "sha512crypt": _libxcrypt("$6$rounds=5000$" + _crypt_chars(16), 86),
        "sha1crypt": _libxcrypt("$sha1$40000$" + _crypt_chars(8), 28),
        "sunmd5": _libxcrypt("$md5,rounds=5000$" + _crypt_chars(8), 22),
        "yescrypt": _libxcrypt("$y$j9T$" + _crypt_chars(16), 43),
        "gost_yescrypt": _libxcrypt("$gy$j9T$" + _crypt_chars(16), 43),
        "scrypt_crypt": _libxcrypt("$7$CU..../...." + _crypt_chars(16), 43),
        "scrypt_passlib": "$scrypt$ln=14,r=8,p=1$" + _b64(salt) + "$"
        + _b64(hashlib.scrypt(password, salt=salt, n=1 << 14, r=8, p=1, dklen=32)),
        "argon2id": f"$argon2id$v=19$m=64,t=2,p=1${_b64(salt)}${_b64(argon)}",
        "argon2i": f"$argon2i$v=19$m=65536,t=3,p=4${_b64(salt)}${_b64(secrets.token_bytes(32))}",
        "argon2d": f"$argon2d$v=19$m=65536,t=3,p=4${_b64(salt)}${_b64(secrets.token_bytes(32))}",
        "pbkdf2_passlib": "$pbkdf2-sha256$29000$" + _b64(salt).replace("+", ".") + "$"
        + _b64(hashlib.pbkdf2_hmac("sha256", password, salt, 1000)).replace("+", "."),
        "pbkdf2_django": "pbkdf2_sha256$600000$" + secrets.token_hex(11) + "$"
        + base64.b64encode(hashlib.pbkdf2_hmac("sha256", password, salt, 1000)).decode(),
        "django_sha1": "sha1$" + secrets.token_hex(6) + "$" + hashlib.sha1(salt + password).hexdigest(),
        "ldap_ssha": "{SSHA}" + base64.b64encode(hashlib.sha1(password + salt).digest() + salt).decode(),
        "dovecot_crypt": "{SHA512-CRYPT}" + _libxcrypt("$6$" + _crypt_chars(16), 86),
    }


def tokens() -> Dict[str, str]:
    """format → a fresh token in that format (the project's own first)."""
    bech32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
    return {
        "mydiag_upload": "mdu_" + secrets.token_urlsafe(32),
        "mydiag_engineer": "mde_" + secrets.token_urlsafe(32),
        "mydiag_admin": "mda_" + secrets.token_urlsafe(32),
        "age_identity": "AGE-SECRET-KEY-1" + "".join(secrets.choice(bech32) for _ in range(58)).upper(),
        "github": "ghp_" + secrets.token_hex(18),
        "slack": "xoxb-" + secrets.token_hex(12),
        "jwt": ".".join(("eyJ" + secrets.token_urlsafe(12), "eyJ" + secrets.token_urlsafe(16),
                         secrets.token_urlsafe(20))),
    }
