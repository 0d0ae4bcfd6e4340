"""Every password-hash family, token format and context secret, in every place a bundle
carries text: each is redacted, and the final lint alone (no rule run first) flags it.

Hashes are made at test time by the software that writes them where it is at hand
(crypt(3) for the libxcrypt families, bcrypt, Argon2id, hashlib's scrypt and PBKDF2),
tokens by secrets.token_*; nothing here is a committed secret."""

from __future__ import annotations

import json
import secrets

import pytest

from privacy.lint import lint_bytes, lint_line
from privacy.redact import Redactor
from tests import secretkit

HASHES = secretkit.password_hashes()
TOKENS = secretkit.tokens()
FAMILIES = {**HASHES, **TOKENS}
#: A second value of each, for lines holding two.
SECONDS = {**secretkit.password_hashes(), **secretkit.tokens()}

#: (member path, text around the value `{v}`): the places a bundle carries text.
PLACES = [
    ("config/files/etc/mysql/my.cnf", "[mysqld]\nsome_setting = {v}\n"),
    ("config/files/etc/app.ini", "[auth]\nHASH: '{v}'\n"),
    ("mysql/accounts.json", '{{"user": "app", "stored": "{v}"}}'),
    ("logs/error.log", "2026-12-01 10:00:00 7 [Warning] value was {v} for user app\n"),
    ("os/notes.txt", "https://example.invalid/reset?h={v}&next=/home\n"),
    ("os/ps.txt", "root  4242  0.0  0.1 9876 543 ?  S  10:00  0:00 /usr/local/bin/tool --stored {v} -v\n"),
    ("os/environ.txt", "PATH=/usr/bin\x00APP_STORED={v}\x00HOME=/root\n"),
    ("os/notes.txt", 'payload {{\\"stored\\": \\"{v}\\"}} sent\n'),
    ("os/notes.txt", "first {v} and then {v2} on one line\n"),
    ("os/notes.txt", "password={pw};{v}\n"),
    ("os/notes.txt", "STORED=\"{v}\" # from the vault\n"),
]


def _fill(template: str, value: str, second: str) -> str:
    return template.format(v=value, v2=second, pw=secretkit.make("p"))


def _redacted(path: str, text: str) -> str:
    return Redactor().apply(path, text.encode()).decode()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("path,template", PLACES)
def test_every_family_is_redacted_everywhere_and_the_lint_alone_flags_it(family, path, template):
    value = FAMILIES[family]
    second = SECONDS[family]
    text = _fill(template, value, second)
    assert lint_bytes(path, text.encode()), f"{family}: the lint alone misses it in {path}"
    out = _redacted(path, text)
    assert value not in out and second not in out, f"{family} survived in {path}"
    assert not lint_bytes(path, out.encode()), f"{family}: the lint still flags {path} after redaction"


@pytest.mark.parametrize("family", ["yescrypt", "argon2id", "mydiag_upload", "sha512crypt"])
def test_a_family_value_right_after_another_secret_is_still_found(family):
    value = FAMILIES[family]
    for line in (f"--password={secretkit.make('p')} {value}",
                 f"IDENTIFIED BY '{secretkit.make('p')}' {value}",
                 f"Authorization: Bearer {secretkit.make('t')}x {value}"):
        out = _redacted("os/notes.txt", line + "\n")
        assert value not in out, line.split()[0]


# --- secrets known by their context -----------------------------------------------------------

def _contexts(pw: str) -> list:
    """(label, text holding `pw`) in the shapes they take in logs, ps entries and dumps."""
    return [
        ("mysql temporary password",
         f"2026-12-01T10:00:00.000000Z 6 [Note] [MY-010454] [Server] A temporary password is "
         f"generated for root@localhost: {pw}\n"),
        ("mysql 5.7 temporary password",
         "2026-12-01T10:00:00.000000Z 1 [Note] A temporary password is generated for "
         f"root@localhost: {pw}\n"),
        ("name: password=value", f"name: password={pw}\n"),
        ("Name: PASSWORD=value", f"Name: PASSWORD={pw}\n"),
        ("label=password:value", f"label=password:{pw}\n"),
        ("json comment holds token=", f'{{"comment": "token={pw}", "id": 3}}\n'),
        ("dsn: password=", f"dsn: host=db1 user=app password={pw} dbname=shop\n"),
        ("curl -u", f"curl -sS -u backup:{pw} https://files.example.invalid/upload\n"),
        ("curl --user=", f"/usr/bin/curl --user=backup:{pw} https://x.example.invalid\n"),
        ("curl -uuser:pw", f"curl -ubackup:{pw} https://x.example.invalid\n"),
        ("curl --proxy-user", f"curl --proxy-user 'px:{pw}' https://x.example.invalid\n"),
        ("sshpass -p", f"sshpass -p {pw} ssh -p 2222 backup@db2\n"),
        ("sshpass -p quoted", f"sshpass -p '{pw}' rsync -a /var/backups db2:/b\n"),
        ("sshpass -v -p", f"sshpass -v -p{pw} scp dump.sql db2:\n"),
        ("ps entry sshpass",
         f"root  1201  0.0  0.0  2468  880 ?  S  10:00  0:00 sshpass -p {pw} ssh db2 mysqldump\n"),
        ("redis-cli -a", f"redis-cli -h cache1 -a {pw} ping\n"),
        ("mongo -p", f"mongosh --host db3 -u admin -p {pw}\n"),
        ("env SSHPASS", f"SSHPASS={pw}\x00HOME=/root\n"),
        ("two on one line", f"curl -u a:{pw} https://x; sshpass -p {pw} ssh h\n"),
    ]


@pytest.mark.parametrize("label", [label for label, _ in _contexts("x")])
def test_context_secrets_are_redacted_and_the_lint_alone_flags_them(label):
    pw = secretkit.make("s")
    text = dict(_contexts(pw))[label]
    assert lint_bytes("os/notes.txt", text.encode()), f"the lint alone misses {label}"
    out = _redacted("os/notes.txt", text)
    assert pw not in out, label
    assert not lint_bytes("os/notes.txt", out.encode()), label


def test_the_user_stays_where_a_tool_takes_user_and_password():
    pw = secretkit.make("s")
    out = _redacted("os/notes.txt", f"curl -u backup:{pw} https://x.example.invalid\n")
    assert "curl -u backup:<redacted> https://x.example.invalid" in out


@pytest.mark.parametrize("argv,kept", [
    (["sshpass", "-p", "{pw}", "ssh", "-p", "2222", "db2"], ["2222"]),
    (["/usr/bin/sshpass", "-p{pw}", "ssh", "db2"], []),
    (["sshpass", "-f", "/etc/pw", "ssh", "-p", "22", "db2"], ["22", "/etc/pw"]),
    (["curl", "-u", "backup:{pw}", "https://x.example.invalid"], ["backup:<redacted>"]),
    (["curl", "--user=backup:{pw}", "https://x.example.invalid"], ["--user=backup:<redacted>"]),
    (["redis-cli", "-a", "{pw}", "ping"], ["ping"]),
])
def test_tool_secrets_in_an_argv_list(argv, kept):
    pw = secretkit.make("s")
    doc = {"cmdline": [a.format(pw=pw) for a in argv]}
    out = Redactor().apply("os/processes.json", json.dumps(doc).encode()).decode()
    assert pw not in out
    for item in kept:
        assert json.dumps(item) in out


@pytest.mark.parametrize("line", [
    "ssh -p 2222 backup@db2",
    "docker run -u 1000:1000 mariadb:10.11",
    "sudo -u mysql mariadb-admin status",
    "curl -u backup https://x.example.invalid/prompted",
    "mysql -u root -p shop",
    "ED25519 fingerprint is SHA256:" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0u1V",
    "host key mydiag-ed25519 " + "A" * 43 + "=",
    "Access denied for user 'app'@'10.0.0.5' (using password: YES)",
    "price: $5$ off, then $1$2 and $y$",
    "password_lifetime: 0",
    "name: password_history=5",
    "2026-12-01 10:00:00 0 [Note] InnoDB: Buffer pool(s) load completed",
])
def test_ordinary_lines_stay_and_the_lint_passes_them(line):
    assert _redacted("os/notes.txt", line + "\n") == line + "\n"
    assert lint_line(line) == [], line


def test_ed25519_auth_strings_in_their_contexts():
    auth = secretkit._b64(secrets.token_bytes(32))
    for text in (f"CREATE USER app IDENTIFIED VIA ed25519 USING '{auth}'",
                 f"ALTER USER app IDENTIFIED WITH ed25519 AS '{auth}'",
                 f'{{"plugin": "ed25519", "authentication_string": "{auth}"}}'):
        assert lint_line(text), text
        assert auth not in _redacted("os/notes.txt", text + "\n"), text
