"""Key-based redaction takes secrets, never numbers, switches or the names of plugins and settings.

A key named like a secret (`password`, `db_password`, `wsrep_sst_auth` …) loses a string
value; a number, a count, a boolean or null under it stays, in a JSON member and in JSON
text inside any other member; so does a value that names an authentication plugin; and a
key that *is* a plugin's name (`"by_plugin": {"mysql_native_password": 3}`) names no
secret at all. The lint, the last look, agrees with each of these.
"""

from __future__ import annotations

import json
import secrets

import pytest

from privacy.lint import lint_bytes
from privacy.names import AUTH_PLUGINS
from privacy.redact import MASK, Redactor
from privacy.rules import benign_value, is_secret_name

#: Names that say "my value is a secret", in the spellings collectors meet.
SECRET_KEYS = [
    "password", "Password", "PASSWORD", "db_password", "masterPassword", "passwd", "pwd",
    "secret", "client_secret", "api_key", "apiKey", "token", "access_token", "x-auth-token",
    "credentials", "wsrep_sst_auth", "authentication_string", "master_password",
    "MYSQL_ROOT_PASSWORD", "passphrase",
]
#: Values that are no secret by their JSON type.
TYPED_VALUES = [0, 1, 3, 42, 123456, 12345678901234, -1, 0.5, 3.25, 1e-3, True, False, None]
#: Plugins as accounts, summaries and settings name them.
PLUGINS = sorted(AUTH_PLUGINS) + ["MYSQL_NATIVE_PASSWORD", "Caching_Sha2_Password"]


def _counter_like(key: str) -> bool:
    """Secret only by its last word (`api_key`, `wsrep_sst_auth`): digits there are a counter
    (`Handler_read_key`), even as text."""
    return key.lower().endswith(("key", "auth"))


def _secret() -> str:
    return f"hX{secrets.token_urlsafe(12)}9"


def _json(doc, path: str = "mysql/accounts.json"):
    redactor = Redactor()
    out = redactor.apply(path, json.dumps(doc, indent=2).encode())
    return json.loads(out), out, redactor.report()


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_numbers_switches_and_null_under_a_secret_key_stay_in_json(key):
    assert is_secret_name(key)
    doc = {"stats": {key: 7, "total": 9},
           "rows": [{key: value} for value in TYPED_VALUES],
           "settings": [{"variable_name": key, "value": value} for value in TYPED_VALUES]}
    clean, out, report = _json(doc)
    assert clean == doc and "secret_field" not in report
    assert lint_bytes("mysql/accounts.json", out) == []


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_a_string_under_a_secret_key_is_still_masked(key):
    secret = _secret()
    digits = "123456" if not _counter_like(key) else secret
    doc = {key: secret, "nested": [{key: secret, "total": 3}],
           "settings": [{"variable_name": key, "value": secret}], "digits_as_text": {key: digits}}
    clean, out, report = _json(doc)
    assert secret.encode() not in out and b"123456" not in out
    assert clean[key] == MASK and clean["nested"] == [{key: MASK, "total": 3}]
    assert clean["settings"][0]["value"] == MASK and clean["digits_as_text"][key] == MASK
    assert report["secret_field"] == 4


@pytest.mark.parametrize("plugin", PLUGINS)
def test_a_plugins_name_is_no_secret_as_a_value_or_as_a_key(plugin):
    doc = {"password": plugin, "auth": plugin, "rows": [{"secret": plugin}],
           "by_plugin": {plugin: 3}, "plugins": {plugin: "ACTIVE"}}
    clean, out, report = _json(doc)
    assert clean == doc and "secret_field" not in report
    assert lint_bytes("mysql/accounts.json", out) == []


def test_the_accounts_summary_keeps_its_counts():
    secret = _secret()
    doc = {"accounts": 5, "by_plugin": {"mysql_native_password": 3, "unix_socket": 1,
                                         "caching_sha2_password": 1, "ed25519": 0},
           "without_password": 2, "password_expired": False, "password_lifetime": None,
           "rows": [{"user": "app", "plugin": "mysql_native_password", "password": secret}]}
    clean, out, _ = _json(doc)
    assert clean["by_plugin"] == doc["by_plugin"] and clean["accounts"] == 5
    assert clean["without_password"] == 2 and clean["password_expired"] is False
    assert clean["rows"][0]["password"] == MASK and secret.encode() not in out


# --- the same in text: JSON inside a log, a report, a summary -----------------------------


def _text(text: str, path: str = "os/notes.txt") -> str:
    return Redactor().apply(path, text.encode()).decode()


@pytest.mark.parametrize("key", SECRET_KEYS)
@pytest.mark.parametrize("value", TYPED_VALUES)
def test_a_json_typed_value_in_text_stays(key, value):
    line = f'event {json.dumps({key: value, "n": 1})} at noon\n'
    assert _text(line) == line
    escaped = json.dumps({"payload": json.dumps({key: value})}) + "\n"
    assert _text(escaped) == escaped
    assert lint_bytes("os/notes.txt", line.encode()) == []


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_a_quoted_or_bare_secret_in_text_is_masked(key):
    secret = _secret()
    digits = "123456" if not _counter_like(key) else secret
    for line in (f'{json.dumps({key: secret})}\n', f'{json.dumps({key: digits})}\n',
                 f"{key}={secret}\n", f"{key}: {secret}\n"):
        out = _text(line)
        assert secret not in out and "123456" not in out, line


@pytest.mark.parametrize("key", ["password", "db_password", "pass", "secret", "MYSQL_PWD"])
def test_an_unquoted_number_after_a_bare_name_in_text_may_be_a_password(key):
    # Only JSON says a bare 123456 is a number: in an option file or a log it is a value.
    out = _text(f"{key}=123456\n")
    assert "123456" not in out


@pytest.mark.parametrize("plugin", PLUGINS)
def test_a_plugins_name_in_text_stays(plugin):
    for line in (f"password = {plugin}\n", f"default_auth: {plugin}\n",
                 f'{{"password": "{plugin}", "{plugin}": 3}}\n', f"--password={plugin}\n",
                 f"  {plugin}: 3\n"):
        assert _text(line) == line, line
        assert lint_bytes("os/notes.txt", line.encode()) == []
    assert benign_value(plugin) and not is_secret_name(plugin)
