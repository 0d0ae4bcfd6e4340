"""Every always-on rule, with secrets made up at test time, in the shapes customers write them."""

from __future__ import annotations

import base64
import io
import json
import secrets
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.redact import Redactor, kind_of, redact_stream
from privacy.rules import NEEDLES, RULES, is_secret_name
from tests import secretkit


def _secret(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(18)


def assert_gone(secret: str, text: str) -> None:
    survived = any(form.decode() in text for form in secretkit.forms(secret))
    assert not survived, "a planted secret survived (the value is not shown)"


def redact_text(text: str, path: str = "config/files/etc/mysql/my.cnf") -> tuple:
    redactor = Redactor()
    out = redactor.apply(path, text.encode()).decode()
    return out, redactor.file_report(path)


# --- option files ------------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "password = {s}",
    "password={s}",
    'password = "{s}"',
    "password = '{s}'",
    "loose-password = {s}",
    "loose_password={s}",
    "pass = {s}",
    "  ssl-passphrase = {s}",
    "report_password = {s}",
    "master-password = {s}",
    "file_key_management_filekey = {s}",
    "aws_key_management_secret_access_key = {s}",
    "vault_token = {s}",
    "password = {s} # a comment",
])
def test_option_file_secrets_in_any_section(line):
    secret = _secret()
    text = f"[client]\nuser = app\n[mysqld]\n{line.format(s=secret)}\n[mariadb-10.11]\nport = 3306\n"
    out, counts = redact_text(text)
    assert_gone(secret, out)
    assert "user = app" in out and "port = 3306" in out
    assert counts.get("option_file_secret") == 1


def test_user_password_pairs_keep_the_user():
    secret = _secret()
    out, _ = redact_text(f"[galera]\nwsrep_sst_auth = sstuser:{secret}\n")
    assert_gone(secret, out)
    assert "wsrep_sst_auth = sstuser:<redacted>" in out


def test_quotes_and_backslashes_inside_a_password():
    secret = 'a"b\\c\'' + _secret()
    out, _ = redact_text(f'[client]\npassword = "{secret}"\n')
    assert secret[4:] not in out


@pytest.mark.parametrize("line", [
    "key_buffer_size = 128M",
    "ssl-key = /etc/mysql/server-key.pem",
    "default_password_lifetime = 0",
    "max_seeks_for_key = 4294967295",
    "innodb_encryption_rotate_key_age = 1",
    "plugin_load_add = auth_socket",
    "disconnect_on_expired_password = ON",
    "simple_password_check_minimal_length = 8",
])
def test_settings_about_secrets_stay(line):
    out, counts = redact_text(f"[mysqld]\n{line}\n")
    assert line in out and not counts


def test_secret_names():
    for name in ("password", "MYSQL_PWD", "AWS_SECRET_ACCESS_KEY", "api_key", "clientSecret",
                 "GITHUB_TOKEN", "wsrep_sst_auth", "loose-mydiag-test-password", "db_passwd",
                 "authentication_string", "X-Amz-Credential"):
        assert is_secret_name(name), name
    for name in ("key_buffer_size", "ssl_key", "primary_key", "SSH_AUTH_SOCK", "key",
                 "password_expired", "password_lifetime", "token_file", "PWD_PATH"):
        assert not is_secret_name(name), name


# --- SQL ---------------------------------------------------------------------------------

@pytest.mark.parametrize("statement,rule", [
    ("CREATE USER 'u'@'%' IDENTIFIED BY '{s}'", "identified_by"),
    ("ALTER USER u IDENTIFIED BY PASSWORD '{s}'", "identified_by"),
    ("CREATE USER u IDENTIFIED WITH caching_sha2_password BY '{s}'", "identified_by"),
    ("CREATE USER u IDENTIFIED WITH 'mysql_native_password' AS '{s}'", "identified_by"),
    ("CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('{s}')", "identified_by"),
    ("CREATE USER u IDENTIFIED VIA unix_socket OR mysql_native_password USING '{s}'",
     "identified_by"),
    ("SET PASSWORD FOR 'u'@'h' = PASSWORD('{s}')", "password_function"),
    ("SELECT OLD_PASSWORD(\"{s}\")", "password_function"),
    ("SET PASSWORD = '{s}'", "set_password"),
    ("CHANGE MASTER TO MASTER_HOST='h', MASTER_PASSWORD='{s}', MASTER_PORT=3306",
     "replication_password"),
    ("CHANGE MASTER 'c2' TO master_password = \"{s}\"", "replication_password"),
    ("CHANGE REPLICATION SOURCE TO SOURCE_USER='r', SOURCE_PASSWORD='{s}'", "replication_password"),
    ("START SLAVE USER='r' PASSWORD='{s}'", "server_password"),
    ("CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (USER 'f', PASSWORD '{s}', HOST 'h')",
     "server_password"),
])
def test_sql_secrets(statement, rule):
    secret = _secret()
    out, counts = redact_text(statement.format(s=secret) + ";\n", "mysql/innodb_status.txt")
    assert_gone(secret, out)
    assert counts.get(rule, 0) >= 1, counts


def test_two_authentications_in_one_statement():
    first, second = _secret(), _secret()
    out, _ = redact_text(
        f"CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('{first}') "
        f"OR mysql_native_password USING PASSWORD('{second}')\n", "logs/error.log")
    assert_gone(first, out)
    assert_gone(second, out)


def test_password_hashes():
    native = "*" + secrets.token_hex(20).upper()
    alphabet = "./" + string.digits + string.ascii_letters
    sha2 = "$A$005$" + secrets.token_hex(10) + "".join(secrets.choice(alphabet) for _ in range(43))
    crypt = "$6$" + secrets.token_hex(8) + "$" + "".join(secrets.choice(alphabet) for _ in range(86))
    text = f"hash1 {native}\nauthentication_string: {sha2}\nshadow {crypt}\n"
    out, counts = redact_text(text, "logs/error.log")
    for value in (native, sha2, crypt):
        assert value not in out
    assert counts.get("password_hash", 0) >= 2


def test_a_replication_error_keeps_the_statement_shape_only():
    literal = _secret()
    out, counts = redact_text(
        "Last_SQL_Error: Error 'Duplicate' on query. Default database: 'shop'. "
        f"Query: 'INSERT INTO t VALUES (1, '{literal}')'\n", "mysql/replication/x.txt")
    assert_gone(literal, out)
    assert "INSERT INTO t VALUES (?+)" in out and counts.get("error_statement") == 1


def test_replication_errors_in_the_error_log_lose_statement_literals_and_key_values():
    literal, key = _secret(), _secret()
    lines = (
        # MariaDB 10.11, as its error log writes it.
        f"2026-11-27  3:00:00 12 [ERROR] Slave SQL: Error 'Duplicate entry '{key}' for key "
        f"'PRIMARY'' on query. Default database: 'shop'. Query: 'INSERT INTO users VALUES "
        f"('{literal}', 1)', Gtid 0-1-5, Internal MariaDB error code: 1062\n"
        # MySQL 8.0.
        f"2026-11-27T03:00:00.000000Z 14 [ERROR] [MY-010584] [Repl] Replica SQL for channel '': "
        f"Worker 1 failed executing transaction 'ANONYMOUS' at source log binlog.000002, "
        f"end_log_pos 900; Error 'Duplicate entry '{key}' for key 'users.PRIMARY'' on query. "
        f"Default database: 'shop'. Query: 'insert into users values ('{literal}')', "
        f"Error_code: MY-001062\n"
    )
    out, counts = redact_text(lines, "logs/error.log")
    assert_gone(literal, out)
    assert_gone(key, out)
    assert "Query: 'INSERT INTO users VALUES (?+)', Gtid 0-1-5" in out
    assert "Query: 'insert into users values (?)', Error_code: MY-001062" in out
    assert counts.get("error_statement") == 2 and counts.get("duplicate_entry_value") == 2


def test_an_unsafe_statement_warning_keeps_the_statement_shape_only():
    literal = _secret()
    line = ("2026-11-27  3:00:00 5 [Note] Unsafe statement written to the binary log using "
            "statement format since BINLOG_FORMAT = STATEMENT. The statement is unsafe because "
            f"it uses a LIMIT clause. Statement: UPDATE users SET email='{literal}' LIMIT 1\n")
    out, counts = redact_text(line, "logs/error.log")
    assert_gone(literal, out)
    assert "Statement: UPDATE users SET email=? LIMIT ?" in out
    assert counts.get("error_statement") == 1


# --- keys, URLs, cloud, tokens -----------------------------------------------------------

def _pem(kind: str) -> str:
    body = base64.b64encode(secrets.token_bytes(300)).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"


@pytest.mark.parametrize("kind", ["PRIVATE KEY", "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY",
                                  "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY"])
def test_pem_blocks_go_whole(kind):
    pem = _pem(kind)
    body_line = pem.splitlines()[1]
    out, counts = redact_text(f"before\n{pem}after\n", "logs/error.log")
    assert body_line not in out and "-----BEGIN" not in out
    assert out.startswith("before\n") and out.endswith("after\n")
    assert counts == {"pem_block": 1}


def test_a_pem_block_split_across_stream_blocks(monkeypatch):
    import privacy.redact as redact

    monkeypatch.setattr(redact, "BLOCK", 97)
    pem = _pem("PRIVATE KEY")
    src = io.BytesIO(("x\n" * 40 + pem + "tail\n").encode())
    dst = io.BytesIO()
    counts = redact_stream(src, dst)
    out = dst.getvalue().decode()
    for line in pem.splitlines()[1:-1]:
        assert line not in out
    assert out.endswith("tail\n") and counts == {"pem_block": 1}


def test_a_pem_key_inside_json_text_escaped():
    pem = _pem("PRIVATE KEY")
    line = json.dumps({"private_key": pem})
    out, _ = redact_text(line + "\n", "logs/error.log")
    assert pem.splitlines()[1] not in out


def test_key_files_lose_their_contents():
    key = secrets.token_hex(32)
    for path in ("config/extra/etc/mysql/encryption/keyfile", "config/extra/etc/mysql/server-key.pem",
                 "config/extra/root/.ssh/id_ed25519", "config/extra/keys.txt"):
        assert kind_of(path) == "keyfile"
        out, counts = redact_text(f"1;{key}\n", path)
        assert key not in out and counts == {"key_file": 1}
    assert kind_of("config/extra/etc/mysql/conf.d/keyring.cnf") == "text"
    assert kind_of("config/extra/etc/mysql/conf.d/slow-log.cnf") == "text"
    assert kind_of("logs/slow.log") == "slowlog"
    out, counts = redact_text(f"1;{key}\n2;{secrets.token_hex(32)}\n", "config/extra/etc/enc.txt")
    assert key not in out and counts == {"encryption_key_file": 2}


def test_url_credentials():
    secret, token = _secret(), "ghp_" + secrets.token_hex(18)
    out, _ = redact_text(
        f"CONNECTION='mysql://fed:{secret}@10.0.0.2:3306/db/t'\nclone https://{token}@github.com/x\n",
        "logs/error.log")
    assert_gone(secret, out)
    assert token not in out
    assert "mysql://fed:<redacted>@10.0.0.2:3306/db/t" in out


def test_cloud_keys_and_tokens():
    access = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    secret_key = base64.b64encode(secrets.token_bytes(30)).decode()
    gcp = "AIza" + secrets.token_urlsafe(27)[:35]
    azure = base64.b64encode(secrets.token_bytes(64)).decode()
    bearer = secrets.token_urlsafe(30)
    jwt = ".".join(("eyJ" + secrets.token_urlsafe(12), "eyJ" + secrets.token_urlsafe(20),
                    secrets.token_urlsafe(20)))
    text = (
        f"aws {access} {secret_key}\n"
        f"key={gcp}\n"
        f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={azure};EndpointSuffix=x\n"
        f"Authorization: Bearer {bearer}\n"
        f"cookie {jwt}\n"
    )
    out, counts = redact_text(text, "logs/error.log")
    for value in (access, secret_key, gcp, azure, bearer, jwt):
        assert value not in out
    assert {"aws_key", "azure_key", "bearer_token", "known_token"} <= set(counts)


# --- environment and command lines -------------------------------------------------------

def test_environment_variables():
    values = {name: _secret() for name in (
        "MYSQL_PWD", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "GITHUB_TOKEN", "API_KEY",
        "SERVICE_CREDENTIALS")}
    text = "".join(f"{k}={v}\n" for k, v in values.items()) + "PWD=/root\nHOME=/root\n"
    out, _ = redact_text(text, "os/environ.txt")
    for value in values.values():
        assert_gone(value, out)
    assert "PWD=/root" in out and "HOME=/root" in out
    nul = "\0".join(f"{k}={v}" for k, v in values.items()) + "\0LANG=C\0"
    out, _ = redact_text(nul, "os/environ.txt")
    for value in values.values():
        assert_gone(value, out)
    assert "LANG=C" in out


@pytest.mark.parametrize("command", [
    "mysql -uroot -p{s} shop",
    "mysqldump --password={s} --all-databases",
    "mysqladmin --password {s} status",
    "xtrabackup --backup --password='{s}'",
    "/usr/sbin/mariadbd --loose-mydiag-test-password={s} --datadir=/var/lib/mysql",
    "pt-stalk --password={s}",
    "MYSQL_PWD={s} mysql -e 'select 1'",
])
def test_command_lines(command):
    secret = _secret()
    out, counts = redact_text(command.format(s=secret) + "\n", "os/processes.txt")
    assert_gone(secret, out)
    assert counts


def test_command_line_as_a_json_list():
    # A value after `--password` that starts with a dash would be the next option.
    first, second, third = _secret(), _secret("v"), _secret()
    redactor = Redactor()
    data = json.dumps({"cmdline": ["/usr/sbin/mariadbd", f"--loose-mydiag-test-password={first}",
                                   "--password", second, f"-p{third}", "--port=3306"]})
    out = redactor.apply("os/mysqld_process.json", data.encode()).decode()
    for value in (first, second, third):
        assert_gone(value, out)
    assert '"--port=3306"' in out


def test_find_print_is_not_a_password():
    out, counts = redact_text("find / -name x -print\n", "os/processes.txt")
    assert "-print" in out and not counts


# --- JSON --------------------------------------------------------------------------------

def test_json_keys_named_like_secrets_lose_their_values():
    secret = 'q"uo\\te' + _secret()
    doc = {"password": secret, "nested": {"apiToken": secret, "port": 3306},
           "rows": [{"Variable_name": "report_password", "Value": secret},
                    {"Variable_name": "port", "Value": "3306"}],
           "switch": {"password_expired": "N", "require_secure_transport": "OFF"}}
    redactor = Redactor()
    out = redactor.apply("mysql/x.json", json.dumps(doc, indent=2).encode()).decode()
    assert_gone(secret, out)
    assert secret[10:] not in out
    parsed = json.loads(out)
    assert parsed["nested"]["port"] == 3306 and parsed["rows"][1]["Value"] == "3306"
    assert parsed["switch"]["password_expired"] == "N"
    assert redactor.file_report("mysql/x.json") == {"secret_field": 3}


def test_statement_fields_become_fingerprints():
    literal = _secret()
    rows = [{"id": 5, "info": f"SELECT SLEEP(30), '{literal}'", "user": "app"}]
    redactor = Redactor()
    out = redactor.apply("mysql/processlist.json", json.dumps(rows).encode()).decode()
    assert_gone(literal, out)
    assert json.loads(out)[0]["info"] == "SELECT SLEEP(?), ?"


def test_jsonl_and_broken_json():
    secret = _secret()
    redactor = Redactor()
    jsonl = (json.dumps({"password": secret}) + "\n" + json.dumps({"ok": 1}) + "\n").encode()
    assert secret not in redactor.apply("mysql/samples.jsonl", jsonl).decode()
    broken = ('{"password": "' + secret + '", "x": ').encode()
    assert secret not in redactor.apply("mysql/broken.json", broken).decode()


# --- slow log and streaming --------------------------------------------------------------

def test_slow_log_statements_become_fingerprints():
    literal, comment = _secret(), _secret()
    log = (
        "# Time: 240105 10:00:01\n# User@Host: app[app] @ web1 [10.0.0.5]\n"
        "# Query_time: 2.0  Lock_time: 0.0  Rows_sent: 1  Rows_examined: 9\n"
        "SET timestamp=1704448801;\n"
        f"SELECT * FROM t\n# {comment}\n WHERE a = '{literal}';\n"
        "# Time: 240105 10:00:02\n"
        f"CREATE USER x IDENTIFIED BY '{literal}';\n"
    )
    out, counts = redact_text(log, "logs/slow.log")
    assert_gone(literal, out)
    assert_gone(comment, out)
    assert "SELECT * FROM t WHERE a = ?;" in out and "SET timestamp=1704448801;" in out
    assert counts.get("statement_fingerprint") == 2


def test_an_overlong_line_is_left_out_in_bounded_memory(monkeypatch):
    import privacy.redact as redact

    monkeypatch.setattr(redact, "MAX_LINE", 1000)
    monkeypatch.setattr(redact, "BLOCK", 256)
    secret = _secret()
    src = io.BytesIO(f"head\npassword={secret}{'x' * 5000}\ntail\n".encode())
    dst = io.BytesIO()
    counts = redact_stream(src, dst)
    out = dst.getvalue().decode()
    assert secret not in out and out.startswith("head\n") and out.endswith("tail\n")
    assert counts == {"overlong_line": 1}


def test_non_utf8_bytes_pass_through_and_secrets_still_go():
    secret = _secret()
    data = b"caf\xe9 \xff\xfe\npassword = " + secret.encode() + b"\n"
    out = Redactor().apply("logs/error.log", data)
    assert b"caf\xe9 \xff\xfe" in out and secret.encode() not in out


# --- the invariant that keeps big logs fast ----------------------------------------------

def test_every_rule_is_reachable_through_its_needles():
    for rule in RULES:
        assert rule.needles or rule.probe is not None, rule.name
        for needle in rule.needles:
            assert any(n in needle for n in NEEDLES), (rule.name, needle)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r'\"\\"),
               min_size=8, max_size=40).filter(
                   lambda s: s.strip() == s and s not in "CREATE USER 'u'@'h' IDENTIFIED BY '<redacted>';"))
def test_any_quoted_password_in_create_user_goes(password):
    text = f"CREATE USER 'u'@'h' IDENTIFIED BY '{password}';\n"
    out = Redactor().apply("logs/error.log", text.encode("utf-8", "surrogateescape")).decode(
        "utf-8", "surrogateescape")
    assert password not in out


@pytest.mark.parametrize("command", [
    "mysqladmin --password {s} status", "mysql --password\t{s} shop", "sshpass -p {s} ssh db1",
    "redis-cli -a {s} ping",
])
@pytest.mark.parametrize("lead", ["-", "--", "-A", "-h", "--x"])
def test_a_value_that_starts_with_a_dash_is_still_the_value(command, lead):
    """A generated secret can start with a dash (token_urlsafe does, one time in 32)."""
    secret = lead + _secret()
    out, _ = redact_text(command.format(s=secret) + "\n", "os/processes.txt")
    assert_gone(secret[len(lead):], out)
    argv = command.replace("\t", " ").format(s=secret).split(" ")
    redactor = Redactor()
    data = redactor.apply("os/mysqld_process.json", json.dumps({"cmdline": argv}).encode()).decode()
    assert_gone(secret[len(lead):], data)


@pytest.mark.parametrize("line, kept", [
    ("mysql --password --host=db1 shop", "--host=db1 shop"),
    ("mysql --password -h db1 shop", "-h db1 shop"),
    ("mysqldump --password --single-transaction shop", "--single-transaction shop"),
])
def test_the_next_option_after_a_bare_password_flag_stays(line, kept):
    out, _ = redact_text(line + "\n", "os/processes.txt")
    assert out.endswith(kept + "\n"), out
