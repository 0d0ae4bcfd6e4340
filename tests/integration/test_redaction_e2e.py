"""Secrets planted everywhere a customer keeps them; none may reach the bundle or the terminal.

A private MariaDB is started with a secret on its command line and in its environment,
with the slow log on; secrets then go into accounts, a replication channel, a federated
server, the processlist, the error and slow logs, option files with includes, key files
and mydiag's own environment. One collection must hold none of them in any form (raw,
JSON-escaped, base64, hex, URL-encoded), and say which rules fired.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import threading
import time
from pathlib import Path

import pymysql
import pytest

from tests import secretkit, servers
from tests.helpers import bundle_files, by_name, mydiag

REQUIRE = os.environ.get("MYDIAG_REQUIRE_SERVER") == "1"


def _pem(secret_body: bytes) -> str:
    body = base64.b64encode(secret_body).decode()
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN PRIVATE KEY-----\n{lines}\n-----END PRIVATE KEY-----\n"


class Planted:
    """Every secret of the run by label, plus what the test needs to find them."""

    def __init__(self) -> None:
        make = secretkit.make
        self.values = {label: make("s") for label in (
            "mysqld_argv", "mysqld_env", "mydiag_env", "aws_env", "account", "account_quote",
            "replication", "federated", "processlist", "slow_select", "slow_comment",
            "error_identified", "error_option", "error_url", "error_bearer", "optfile_main",
            "optfile_include", "optfile_includedir", "wsrep_auth", "filekey", "notes_url",
            "notes_env", "admin_password",
        )}
        self.values["optfile_special"] = 'Sp"ec\\ial-' + make("q")
        self.values["key_file_hex"] = secrets.token_hex(32)
        self.values["enc_file_hex"] = secrets.token_hex(32)
        key_body = secrets.token_bytes(600)
        self.pem = _pem(key_body)
        self.values["pem_line"] = self.pem.splitlines()[3]
        self.values["aws_secret"] = base64.b64encode(secrets.token_bytes(30)).decode()


@pytest.fixture(scope="module")
def planted() -> Planted:
    return Planted()


@pytest.fixture(scope="module")
def target(tmp_path_factory, planted):
    """A private server started with a secret in argv and in its environment, slow log on."""
    base = tmp_path_factory.mktemp("e2e-server")
    values = planted.values
    os.environ["MYDIAG_E2E_SERVER_SECRET"] = values["mysqld_env"]
    try:
        instance = servers.create(base, [
            f"--loose-mydiag-test-password={values['mysqld_argv']}", "--server-id=21",
            "--log-bin=binlog", "--slow-query-log=1", "--long-query-time=0",
            f"--slow-query-log-file={base / 'slow.log'}",
        ])
    except servers.ServerUnavailable as exc:
        if REQUIRE:
            pytest.fail(f"real server required (MYDIAG_REQUIRE_SERVER=1): {exc}")
        pytest.skip(str(exc))
    finally:
        del os.environ["MYDIAG_E2E_SERVER_SECRET"]
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def world(target, planted, tmp_path_factory):
    """Plant every secret on the server and on disk; hold a sleeping statement open."""
    v = planted.values
    folder = tmp_path_factory.mktemp("e2e-files")
    target.sql(
        f"CREATE USER 'e2e_admin'@'127.0.0.1' IDENTIFIED BY '{v['admin_password']}'",
        "GRANT ALL ON *.* TO 'e2e_admin'@'127.0.0.1'",
        f"CREATE USER 'e2e_shopper'@'%' IDENTIFIED BY '{v['account']}'",
        f"CREATE USER 'e2e_quote'@'%' IDENTIFIED BY 'it''s-{v['account_quote']}'",
        "CREATE DATABASE e2e_shopdb",
        "CREATE TABLE e2e_shopdb.orders (id INT PRIMARY KEY, card VARCHAR(64))",
        "GRANT ALL ON e2e_shopdb.* TO 'e2e_shopper'@'%'",
        f"CHANGE MASTER 'ext' TO MASTER_HOST='10.77.12.34', MASTER_PORT=3306, MASTER_USER='r',"
        f" MASTER_PASSWORD='{v['replication']}'",
        "CHANGE MASTER 'ext2' TO MASTER_HOST='db-e2e-7.example.internal', MASTER_USER='r'",
        f"CREATE SERVER e2e_fed FOREIGN DATA WRAPPER mysql OPTIONS (USER 'fed', "
        f"PASSWORD '{v['federated']}', HOST '127.0.0.1', DATABASE 'e2e_shopdb')",
        f"SELECT 'card {v['slow_select']}' AS marker /* {v['slow_comment']} */",
    )
    planted.values["account_hash"] = target.sql(f"SELECT PASSWORD('{v['account']}')")[0][0]
    with open(target.error_log, "a") as log:
        log.write(
            f"2026-01-01 0:00:00 0 [Warning] replayed: CREATE USER x IDENTIFIED BY "
            f"'{v['error_identified']}'\n"
            f"2026-01-01 0:00:00 0 [Note] option password={v['error_option']}\n"
            f"2026-01-01 0:00:00 0 [Note] federated mysql://fed:{v['error_url']}@10.0.0.9/db/t\n"
            f"2026-01-01 0:00:00 0 [Note] plugin said Authorization: Bearer {v['error_bearer']}\n"
        )
    (folder / "inc").mkdir()
    (folder / "conf.d").mkdir()
    keys = folder / "keys.txt"
    keys.write_text(f"1;{v['key_file_hex']}\n")
    pem = folder / "client-key.pem"
    pem.write_text(planted.pem)
    enc = folder / "enc.txt"
    enc.write_text(f"2;{v['enc_file_hex']}\n")
    (folder / "inc" / "secret.cnf").write_text(
        f"[galera]\nwsrep_sst_auth = sstuser:{v['wsrep_auth']}\n"
        f"[mysqld]\nloose-password = '{v['optfile_include']}'\n")
    (folder / "conf.d" / "client.cnf").write_text(
        f"[client]\npass={v['optfile_includedir']}\n")
    special = v["optfile_special"].replace("\\", "\\\\").replace('"', '\\"')
    main = folder / "main.cnf"
    main.write_text(
        "[mysqld]\nreport_host = 10.77.12.34\nreport_port = 3306\n"
        f"file_key_management_filename = {keys}\nssl-key = {pem}\n"
        f"loose-file-key-management-filekey = {v['filekey']}\n"
        f"password = {v['optfile_main']}\n"
        "[client]\n"
        f'password = "{special}"\n'
        f"!include {folder / 'inc' / 'secret.cnf'}\n"
        f"!includedir {folder / 'conf.d'}\n"
    )
    notes = folder / "deploy-notes.txt"
    notes.write_text(
        f"backup target https://backup:{v['notes_url']}@storage.example.com/x\n"
        f"export DB_PASSWORD={v['notes_env']}\n"
        f"aws AKIA{''.join(secrets.choice('ABCDEFGHJKLMNPQRSTUVWXYZ234567') for _ in range(16))} "
        f"{v['aws_secret']}\n"
    )
    admin = folder / "admin.cnf"
    admin.write_text(f"[client]\nhost = 127.0.0.1\nport = {target.port}\nuser = e2e_admin\n"
                     f"password = \"{v['admin_password']}\"\n")
    admin.chmod(0o600)
    sleepers = []

    def sleep(user: str, password: str, db, statement: str) -> None:
        conn = target.connect(user=user, password=password, database=db)
        sleepers.append(conn)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
        except Exception:  # noqa: BLE001 - killed at the end of the module
            pass

    threads = [
        threading.Thread(target=sleep, daemon=True, args=(
            "root", "", None, f"SELECT SLEEP(120), '{v['processlist']}'")),
        threading.Thread(target=sleep, daemon=True, args=(
            "e2e_shopper", v["account"], "e2e_shopdb", "SELECT SLEEP(120)")),
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(target.sql(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(120)%'")) < 2:
        time.sleep(0.05)
    yield {"folder": folder, "admin": admin, "main": main,
           "extra": [main, keys, pem, enc, notes, admin]}
    for conn in list(sleepers):
        with contextlib.suppress(Exception):  # already gone
            target.sql(f"KILL {conn.thread_id()}")


def _environment(planted: Planted, home: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "MYDIAG_HOME": str(home),
        "MYDIAG_E2E_API_TOKEN": planted.values["mydiag_env"],
        "AWS_SECRET_ACCESS_KEY": planted.values["aws_env"],
    })
    return env


def _collect(world, planted, out: Path, home: Path, *extra: str, **kwargs):
    args = ["collect", "--defaults-file", str(world["admin"]), "--output", str(out),
            "--samples", "2", "--interval", "0.3", "--json", "--yes"]
    for path in world["extra"]:
        args += ["--config-file", str(path)]
    return mydiag(*args, *extra, env=_environment(planted, home), timeout=180, **kwargs)


@pytest.fixture(scope="module")
def collected(world, planted, tmp_path_factory):
    out, home = tmp_path_factory.mktemp("e2e-out"), tmp_path_factory.mktemp("e2e-home")
    done = _collect(world, planted, out, home)
    assert done.returncode in (0, 3), done.stderr
    summary = json.loads(done.stdout)
    return {"done": done, "summary": summary, "files": bundle_files(Path(summary["bundle"])),
            "out": out, "home": home}


def test_no_planted_secret_reaches_bundle_output_or_state(collected, planted):
    files = collected["files"]
    done = collected["done"]
    blobs = {f"bundle:{name}": data for name, data in files.items()}
    blobs["stdout"] = done.stdout.encode()
    blobs["stderr"] = done.stderr.encode()
    for path, data in secretkit.files_under(collected["out"], collected["home"]).items():
        if not path.endswith(".tar.zst"):
            blobs[path] = data
    assert secretkit.leaks(planted.values, blobs) == []


def test_the_leak_check_finds_what_was_planted(world, planted):
    """The control: the same check does see the secrets where they were planted."""
    found = secretkit.leaks(planted.values, secretkit.files_under(world["folder"]))
    for label in ("optfile_main", "optfile_include", "optfile_includedir", "optfile_special",
                  "wsrep_auth", "key_file_hex", "enc_file_hex", "pem_line", "notes_url",
                  "admin_password"):
        assert any(item.startswith(label + " ") for item in found), label


def test_the_secrets_were_really_collected_and_redacted(collected):
    files, summary = collected["files"], collected["summary"]
    status = {name: entry["status"] for name, entry in by_name(summary).items()}
    for name in ("mysql.processlist", "mysql.replication", "os.mysqld_process",
                 "config.extra_files", "logs.error_log", "logs.slow_log"):
        assert status.get(name) in ("ok", "partial"), (name, status.get(name))
    process = json.loads(files["os/mysqld_process.json"])
    assert "--loose-mydiag-test-password=<redacted>" in process["cmdline"]
    statements = [row["statement"] for row in json.loads(files["mysql/processlist.json"])]
    assert "SELECT SLEEP(?), ?" in statements
    extra = {name: data.decode() for name, data in files.items() if name.startswith("config/extra/")}
    main = next(text for name, text in extra.items() if name.endswith("/main.cnf"))
    assert "password = <redacted>" in main and 'password = "<redacted>"' in main
    assert next(text for name, text in extra.items() if name.endswith("/secret.cnf")).count(
        "sstuser:<redacted>") == 1
    assert next(text for name, text in extra.items() if name.endswith("/keys.txt")).startswith(
        "<redacted> contents of a key file")
    assert next(text for name, text in extra.items() if name.endswith("/client-key.pem")).startswith(
        "<redacted> contents of a key file")
    assert "<redacted>" in files["logs/error.log"].decode()
    assert "SELECT ? AS marker" in files["logs/slow.log"].decode()
    manifest = json.loads(files["manifest.json"])
    fired = set(manifest["redaction"])
    assert {"command_line_secret", "option_file_secret", "key_file", "encryption_key_file",
            "identified_by", "url_credentials", "bearer_token", "aws_key"} <= fired, fired
    for entry in manifest["files"]:
        assert set(entry["redactions"]) <= fired
    assert sum(sum(e["redactions"].values()) for e in manifest["files"]) <= sum(
        manifest["redaction"].values())


def test_replication_password_on_a_real_replica(replica_pair, planted, tmp_path):
    primary, replica = replica_pair
    secret = secretkit.make("r")
    primary.sql(f"ALTER USER 'repl'@'127.0.0.1' IDENTIFIED BY '{secret}'")
    replica.sql("STOP SLAVE", f"CHANGE MASTER TO MASTER_PASSWORD='{secret}'", "START SLAVE")
    done = mydiag("collect", "--host", replica.host, "--port", str(replica.port), "--user", "root",
                  "--profile", "quick", "--samples", "1", "--output", str(tmp_path), "--json",
                  env=dict(os.environ, MYDIAG_HOME=str(tmp_path / "home")), timeout=120)
    assert done.returncode in (0, 3), done.stderr
    files = bundle_files(Path(json.loads(done.stdout)["bundle"]))
    channels = json.loads(files["mysql/replication/replica_status.json"])["channels"]
    assert channels and channels[0].get("Slave_IO_Running") in ("Yes", "Connecting")
    blobs = {name: data for name, data in files.items()}
    blobs["stdout"], blobs["stderr"] = done.stdout.encode(), done.stderr.encode()
    assert secretkit.leaks({"replication": secret}, blobs) == []


def test_pseudonyms_are_consistent_across_the_bundle(world, planted, tmp_path):
    home = tmp_path / "home"
    done = _collect(world, planted, tmp_path / "out", home, "--pseudonymize",
                    "hosts,ips,users,schemas")
    assert done.returncode in (0, 3), done.stderr
    files = bundle_files(Path(json.loads(done.stdout)["bundle"]))
    everything = b"\n".join([name.encode() for name in files] + list(files.values()))
    for name in (b"e2e_shopper", b"e2e_shopdb", b"10.77.12.34", b"db-e2e-7.example.internal"):
        assert name not in everything, name
    shopper = next(row for row in json.loads(files["mysql/processlist.json"])
                   if row["statement"] == "SELECT SLEEP(?)")
    user, schema = shopper["user"], shopper["db"]
    assert user.startswith("user-") and schema.startswith("schema-")
    accounts = json.loads(files["mysql/accounts.json"])["accounts"]
    assert any(row.get("user") == user for row in accounts)
    overview = json.loads(files["mysql/schema_overview.json"])
    assert schema in overview["tables_per_schema"]
    channels = {c.get("Connection_name"): c for c in
                json.loads(files["mysql/replication/replica_status.json"])["channels"]}
    ip, host = channels["ext"]["Master_Host"], channels["ext2"]["Master_Host"]
    assert ip.startswith("ip-") and host.startswith("host-")
    main = next(data.decode() for name, data in files.items() if name.endswith("/main.cnf"))
    assert f"report_host = {ip}" in main
    manifest = json.loads(files["manifest.json"])
    identity = json.loads(files["mysql/identity.json"])
    assert manifest["host"] == identity["hostname"] and manifest["host"].startswith("host-")
    assert {"pseudonym_user", "pseudonym_schema", "pseudonym_ip", "pseudonym_host"} <= set(
        manifest["redaction"])
    lookup = mydiag("pseudonyms", "lookup", "--json", user, schema, ip, host,
                    env=dict(os.environ, MYDIAG_HOME=str(home)))
    assert lookup.returncode == 0, lookup.stderr
    names = {token: entry["name"] for token, entry in json.loads(lookup.stdout).items()}
    assert names == {user: "e2e_shopper", schema: "e2e_shopdb", ip: "10.77.12.34",
                     host: "db-e2e-7.example.internal"}
    assert secretkit.leaks(planted.values, {"bundle": everything, "stdout": done.stdout.encode(),
                                            "stderr": done.stderr.encode()}) == []


def test_lint_refuses_an_unredactable_secret_and_names_file_and_line(world, planted, tmp_path):
    stray = secretkit.make("k") + "9Zq"
    note = tmp_path / "handover.txt"
    note.write_text("handover notes\nthe vault key for the cluster is " + stray + " today\n")
    out = tmp_path / "out"
    done = _collect(world, planted, out, tmp_path / "home", "--config-file", str(note))
    assert done.returncode == 17, done.stderr
    assert f"config/extra{note}:2" in done.stderr and stray not in done.stderr + done.stdout
    assert "\n" not in done.stderr.strip() and "Traceback" not in done.stderr
    assert not out.exists() or list(out.iterdir()) == []
    allowed = _collect(world, planted, out, tmp_path / "home", "--config-file", str(note),
                       "--allow-findings")
    assert allowed.returncode in (0, 3), allowed.stderr
    files = bundle_files(Path(json.loads(allowed.stdout)["bundle"]))
    assert json.loads(files["manifest.json"])["redaction"]["lint_finding_allowed"] >= 1


def test_review_no_leaves_nothing_and_yes_writes(world, planted, tmp_path):
    out = tmp_path / "out"
    args = ["collect", "--defaults-file", str(world["admin"]), "--output", str(out),
            "--samples", "1", "--profile", "quick", "--review",
            "--config-file", str(world["main"])]
    env = _environment(planted, tmp_path / "home")
    declined = mydiag(*args, input="n\n", env=env)
    assert declined.returncode == 18, declined.stderr
    assert "config/extra" in declined.stderr and "option_file_secret x" in declined.stderr
    assert not out.exists()
    accepted = mydiag(*args, "--yes", env=env)
    assert accepted.returncode in (0, 3), accepted.stderr
    assert len(list(out.glob("*.tar.zst"))) == 1
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    assert secretkit.leaks(planted.values, {"stdout": (declined.stdout + accepted.stdout).encode(),
                                            "stderr": (declined.stderr + accepted.stderr).encode()}
                           ) == []


def _pair(base: Path, stack: contextlib.ExitStack) -> tuple:
    """A primary and a replica of this test's own (this one breaks replication)."""
    made = []
    try:
        for name, server_id in (("p", 31), ("r", 32)):
            instance = servers.create(base / name, ["--log-bin=binlog", f"--server-id={server_id}"])
            stack.callback(instance.stop)
            made.append(instance)
    except servers.ServerUnavailable as exc:
        if REQUIRE:
            pytest.fail(f"real server required (MYDIAG_REQUIRE_SERVER=1): {exc}")
        pytest.skip(str(exc))
    servers.make_replica(made[0], made[1], secretkit.make("r"))
    return made[0], made[1]


def _replica_status(replica) -> dict:
    with replica.connect(cursorclass=pymysql.cursors.DictCursor) as conn, conn.cursor() as cur:
        cur.execute("SHOW SLAVE STATUS")
        return cur.fetchone() or {}


def test_a_broken_replica_s_error_quotes_no_row_data(tmp_path):
    """A real duplicate-key stop on a replica: the error log line and Last_SQL_Error quote
    the key value and the statement; the bundle holds neither."""
    with contextlib.ExitStack() as stack:
        primary, replica = _pair(tmp_path, stack)
        key, literal = secretkit.make("k"), secretkit.make("l")
        primary.sql("CREATE DATABASE shop",
                    "CREATE TABLE shop.users (email VARCHAR(64) PRIMARY KEY, note TEXT)")
        deadline = time.monotonic() + 30
        while not replica.sql("SHOW DATABASES LIKE 'shop'") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # the CREATE TABLE after the CREATE DATABASE
        replica.sql("SET sql_log_bin = 0", f"INSERT INTO shop.users VALUES ('{key}', 'replica only')")
        primary.sql(f"INSERT INTO shop.users VALUES ('{key}', '{literal}')")
        status = _replica_status(replica)
        while status.get("Last_SQL_Errno") != 1062 and time.monotonic() < deadline:
            time.sleep(0.1)
            status = _replica_status(replica)
        assert status.get("Last_SQL_Errno") == 1062, status
        assert key in status["Last_SQL_Error"] and literal in status["Last_SQL_Error"]
        assert key in replica.error_log.read_text(errors="replace")
        done = mydiag("collect", "--host", "127.0.0.1", "--port", str(replica.port), "--user", "root",
                      "--samples", "1", "--interval", "0.2", "--output", str(tmp_path / "out"), "--json",
                      env=dict(os.environ, MYDIAG_HOME=str(tmp_path / "home")), timeout=120)
    assert done.returncode in (0, 3), done.stderr
    files = bundle_files(Path(json.loads(done.stdout)["bundle"]))
    assert "1062" in files["logs/error.log"].decode()
    blobs = dict(files, stdout=done.stdout.encode(), stderr=done.stderr.encode())
    assert secretkit.leaks({"duplicate key": key, "statement literal": literal}, blobs) == []
    report = json.loads(files["manifest.json"])["redaction"]
    assert report.get("duplicate_entry_value", 0) >= 2 and report.get("error_statement", 0) >= 2
