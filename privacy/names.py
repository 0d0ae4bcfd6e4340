"""Secret names and harmless values: what the rules, the JSON walker and the lint share.

`is_secret_name` decides, for option files, environment variables, command-line flags
and JSON keys alike, whether a name says "my value is a secret"; `benign_value` and
`placeholder` say when the value under such a name is nothing to hide; `mask_groups`
replaces a rule's secret groups (`v…`) in its match and keeps the rest. The value
shapes (`QUOTED`, `SQL_VALUE`, `INLINE_VALUE`, `ARG_VALUE`) are the ones every rule uses.
"""

from __future__ import annotations

import functools
import re
from typing import List

MASK = "<redacted>"

# A quoted value: single or double quotes (doubled or backslash-escaped quotes inside),
# the backslash-escaped quotes of JSON text, or an unterminated quote up to the line end.
_Q1 = r"'[^'\\\n]*(?:(?:\\.|'')[^'\\\n]*)*(?:'|$)"
_Q2 = r"\"[^\"\\\n]*(?:(?:\\.|\"\")[^\"\\\n]*)*(?:\"|$)"
# Inside JSON text an escaped quote is \" and a quote escaped twice is \\\".
_QE = (
    r"\\\"(?:[^\"\\\n]|\\\\\\\"|\\\\|\\(?!\"))*(?:\\\"|$)"
    r"|\\'(?:[^'\\\n]|\\\\\\'|\\\\|\\(?!'))*(?:\\'|$)"
)
QUOTED = f"(?:{_QE}|{_Q1}|{_Q2})"
#: A value in SQL text: quoted, or a bare word up to a delimiter.
SQL_VALUE = f"(?:{QUOTED}|[^\\s\"',;)]+)"
#: A value inside a line of prose, a URL query or a connection string.
INLINE_VALUE = f"(?:{QUOTED}|[^\\s,;&\"'}}\\])\\x00]+)"
#: A command-line argument: quoted, or everything up to the next blank.
ARG_VALUE = f"(?:{QUOTED}|[^\\s\"'\\x00]+)"


# --- names ----------------------------------------------------------------------------

#: A name with one of these words is a secret's name.
_SECRET_WORDS = frozenset({
    "password", "passwords", "passwd", "pass", "passw", "passwo", "passwor", "pwd", "pw",
    "passphrase", "secret", "secrets", "token", "tokens", "credential", "credentials",
    "creds", "apikey", "privatekey", "secretkey", "accesskey", "filekey", "signature", "sig",
    "authorization", "cookie", "sshpass", "passin", "passout", "pgpass", "rediscli_auth",
})
#: Words that make a secret's name only as its last word (`wsrep_sst_auth`, `api_key`),
#: not in front (`key_buffer_size`, `auth_socket`).
_LAST_WORDS = frozenset({"key", "auth"})
#: Joined spellings (`masterpassword`, `AWSSecretKey` is split by case anyway).
_JOINED = ("password", "passwd", "secret", "token", "apikey", "credential")
#: A last word that makes the name a setting *about* a secret, not a secret.
_BENIGN_LAST = frozenset({
    "path", "file", "filename", "files", "dir", "directory", "sock", "socket", "length",
    "lifetime", "policy", "history", "interval", "rounds", "count", "size", "id", "ids",
    "check", "checks", "plugin", "plugins", "users", "attempts", "time", "timeout", "mode",
    "type", "algorithm", "required", "require", "current", "validation", "enabled", "enable",
    "disabled", "min", "max", "limit", "name", "names", "format", "ttl", "expiry",
    "expiration", "expire", "expired", "strength", "digits", "number", "letters", "level",
    "url", "uri", "host", "port", "user", "username", "prompt", "changed", "last", "reuse",
    "dictionary", "rotation", "age", "version", "label", "list", "store", "source",
    "env", "command", "cmd", "helper", "manager", "location", "method", "methods", "error",
    "errors", "delay", "retries", "tries", "failures", "status", "state", "stats",
})
#: Names that look secret but hold a setting: MySQL and MariaDB password-policy
#: variables and the like (checked after normalizing to lowercase and `_`).
_BENIGN_PREFIXES = (
    "validate_password", "simple_password_check", "strict_password_validation",
    "disconnect_on_expired_password", "password_require", "password_reuse", "old_passwords",
    "max_seeks_for_key", "caching_sha2_password_auto_generate", "sha256_password_auto_generate",
    "check_proxy_users", "mysql_native_password_proxy", "sha256_password_proxy",
    "default_password", "have_", "log_raw",
)
#: Words before a last `key` that make it a data key, not a secret (`primary_key`).
_DATA_KEYS = frozenset({
    "primary", "foreign", "unique", "sort", "partition", "shard", "sharding", "cache",
    "index", "distribution", "row", "lookup", "group", "join", "hash", "range", "max", "min",
    "read", "write", "next", "prev", "first", "last", "buffer",
})
#: Key and certificate *paths* of TLS settings (`ssl_key`, `master_ssl_key`).
_PATH_WORDS = frozenset({"ssl", "tls", "rsa", "x509"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)
def _secrecy(name: str) -> int:
    """2: the name says secret; 1: only its last word does (`*_key`, `*_auth`); 0: not secret."""
    name = name.strip().strip("\"'\\").lstrip("-")
    low = _CAMEL.sub("_", name).lower()
    for prefix in ("loose-", "loose_", "export "):
        if low.startswith(prefix):
            low = low[len(prefix):]
    words = [w for w in _SPLIT.split(low) if w]
    if not words:
        return 0
    flat = "_".join(words)
    if flat in ("authentication_string", "auth_string"):
        return 2
    if flat in AUTH_PLUGINS:
        return 0
    if flat.startswith(_BENIGN_PREFIXES):
        return 0
    if len(words) > 1 and words[-1] in _BENIGN_LAST:
        return 0
    if _PATH_WORDS.intersection(words) and words[-1] in ("key", "cert", "ca", "crl"):
        return 0
    if any(w in _SECRET_WORDS for w in words):
        return 2
    if len(words) > 1 and words[-1] in _LAST_WORDS:
        return 0 if words[-1] == "key" and words[-2] in _DATA_KEYS else 1
    joined = "".join(words)
    return 2 if any(j in joined for j in _JOINED) else 0


def is_secret_name(name: str) -> bool:
    """True when `name` (an option, variable, flag or JSON key) names a secret."""
    return _secrecy(name) > 0


_BENIGN_VALUES = frozenset({
    "", "?", "on", "off", "true", "false", "yes", "no", "none", "null", "0", "1",
    "basic", "bearer", "digest", "negotiate",
})
#: Authentication plugins of MySQL, MariaDB and Percona Server (server and client side):
#: as a value (`"plugin": "caching_sha2_password"`, `password = pam` in a summary) and
#: as a key (`"by_plugin": {"mysql_native_password": 3}`) each names a method, no secret.
AUTH_PLUGINS = frozenset({
    "mysql_native_password", "mysql_old_password", "mysql_clear_password",
    "caching_sha2_password", "sha256_password", "sha2_password", "ed25519", "client_ed25519",
    "auth_ed25519", "unix_socket", "auth_socket", "named_pipe", "auth_named_pipe", "pam",
    "auth_pam", "auth_pam_compat", "auth_pam_v1", "authentication_pam", "dialog", "gssapi",
    "auth_gssapi", "auth_gssapi_client", "authentication_kerberos",
    "authentication_kerberos_client", "authentication_ldap_simple", "authentication_ldap_sasl",
    "authentication_ldap_sasl_client", "authentication_windows", "authentication_windows_client",
    "authentication_fido", "authentication_fido_client", "authentication_webauthn",
    "authentication_webauthn_client", "authentication_oci", "authentication_oci_client",
    "authentication_openid_connect", "authentication_openid_connect_client", "parsec",
    "auth_parsec", "mysql_no_login", "no_login", "auth_test_plugin", "test_plugin_server",
})


def benign_value(value: str, name: str = "") -> bool:
    """A value no one would use as a secret: a switch, empty, already masked, a placeholder,
    the name of an authentication plugin.

    Under a name that is secret only by its last word (`Handler_read_key`), a plain
    number is a counter, not a key.
    """
    bare = value.strip().strip("\"'\\").strip()
    if bare.lower() in _BENIGN_VALUES or MASK in bare or set(bare) <= {"*"}:
        return True
    if bare.lower() in AUTH_PLUGINS:
        return True
    if name and bare.isdigit() and len(bare) <= 20 and _secrecy(name) == 1:
        return True
    # `PWD` is the working directory in an environment, a password in ODBC strings.
    return name.strip().lower() in ("pwd", "oldpwd") and bare.startswith(("/", "~"))


#: A value JSON writes without quotes: a number, true, false or null.
_JSON_LITERAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null")


def json_literal(match: re.Match[str]) -> bool:
    """A `"name": value` in JSON text whose value is no string (`"mysql_native_password": 3`):
    its type says it is a number, a switch or null, so it is no secret. The name must be
    quoted (group `q`): `password=123456` in an option file or a log may well be one."""
    groups = match.re.groupindex
    return ("q" in groups and bool(match.group("q")) and "v" in groups
            and _JSON_LITERAL.fullmatch(match.group("v")) is not None)


def placeholder(value: str) -> bool:
    """Nothing to hide: empty, a `?` of a fingerprint, or already masked."""
    bare = value.strip().strip("\"'\\").strip()
    return bare in ("", "?") or MASK in bare or set(bare) <= {"*"}


def mask_groups(match: re.Match[str], keep_user: bool = False) -> str:
    """The match with every `v…` group that took part replaced by MASK, quotes kept."""
    text = match.group()
    base = match.start()
    spans = sorted(
        match.span(name) for name in match.re.groupindex
        if name.startswith("v") and match.group(name) is not None
    )
    out: List[str] = []
    pos = 0
    for start, end in spans:
        value = text[start - base:end - base]
        quote = value[:2] if value[:2] in ('\\"', "\\'") else value[:1] if value[:1] in "'\"" else ""
        closed = bool(quote) and len(value) >= 2 * len(quote) and value.endswith(quote)
        inner = value[len(quote):len(value) - len(quote)] if closed else value[len(quote):]
        secret = inner.split(":", 1)[0] + ":" + MASK if keep_user and ":" in inner else MASK
        out.append(text[pos:start - base])
        out.append(quote + secret + (quote if closed else ""))
        pos = end - base
    out.append(text[pos:])
    return "".join(out)
