"""The server facts a support engineer asks first, on real private servers (issue 12):
accounts with an empty password and anonymous accounts, tables without a primary key,
MyISAM/Aria tables, crashed and unreadable tables with the server's reason, stored
objects whose definer no longer exists, utf8mb3 use, and the replicas a primary sees.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest

from tests import servers
from tests.helpers import bundle_files, bundle_json, by_name, collect_json

_MYI_STATE = 26  # the .MYI state-flags byte; 0x02 marks the table crashed


def _server(tmp_path_factory, name: str, *args: str) -> servers.Instance:
    try:
        return servers.create(tmp_path_factory.mktemp(name), list(args))
    except servers.ServerUnavailable as exc:
        if os.environ.get("MYDIAG_REQUIRE_SERVER") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def _fill(instance: servers.Instance, password: str) -> None:
    instance.sql(
        "CREATE DATABASE facts",
        "CREATE TABLE facts.keyed (id INT PRIMARY KEY) ENGINE=InnoDB",
        "CREATE TABLE facts.heap (a INT, b INT) ENGINE=InnoDB",
        "CREATE TABLE facts.unique_nn (a INT NOT NULL, UNIQUE KEY (a)) ENGINE=InnoDB",
        "CREATE TABLE facts.parted (id INT, v INT) ENGINE=InnoDB PARTITION BY HASH(id) PARTITIONS 3",
        "CREATE TABLE facts.legacy (id INT PRIMARY KEY, v TEXT) ENGINE=MyISAM",
        "CREATE TABLE facts.legacy_heap (v INT) ENGINE=MyISAM",
        "CREATE TABLE facts.aria (id INT PRIMARY KEY) ENGINE=Aria",
        "CREATE TABLE facts.crashed (id INT PRIMARY KEY, v VARCHAR(50)) ENGINE=MyISAM",
        "INSERT INTO facts.crashed VALUES (1, 'a'), (2, 'b')",
        "CREATE TABLE facts.broken (id INT PRIMARY KEY) ENGINE=MyISAM",
        "CREATE TABLE facts.old_text (id INT PRIMARY KEY, name VARCHAR(20) CHARACTER SET utf8mb3,"
        " note TEXT CHARACTER SET utf8mb3 COLLATE utf8mb3_unicode_ci, wide CHAR(2) CHARACTER SET"
        " ucs2, fine VARCHAR(9) CHARACTER SET utf8mb4) ENGINE=InnoDB",
        "CREATE DATABASE old_schema CHARACTER SET utf8mb3",
        "CREATE VIEW facts.v_ok AS SELECT 1 AS x",
        "CREATE DEFINER='ghost'@'%' VIEW facts.v_ghost AS SELECT 1 AS x",
        "CREATE DEFINER='ghost'@'%' TRIGGER facts.trg BEFORE INSERT ON facts.heap"
        " FOR EACH ROW SET NEW.b = 1",
        "CREATE DEFINER='gone'@'localhost' PROCEDURE facts.p() SELECT 1",
        "CREATE DEFINER='root'@'localhost' FUNCTION facts.f() RETURNS INT DETERMINISTIC RETURN 1",
        "CREATE DEFINER='ghost'@'%' EVENT facts.e ON SCHEDULE EVERY 1 DAY DISABLE DO SELECT 1",
        "CREATE USER ''@'localhost'",
        "CREATE USER 'nopass'@'127.0.0.1'",
        f"CREATE USER 'haspass'@'127.0.0.1' IDENTIFIED BY '{password}'",
        "CREATE USER 'locked_nopass'@'127.0.0.1' ACCOUNT LOCK",
        "FLUSH TABLES",
    )
    data = instance.datadir / "facts"
    with open(data / "crashed.MYI", "r+b") as index:  # what a mysqld crash mid-write leaves
        index.seek(_MYI_STATE)
        state = index.read(1)[0]
        index.seek(_MYI_STATE)
        index.write(bytes([state | 0x02]))
    (data / "broken.frm").write_bytes(b"not a table definition" * 8)
    instance.sql("FLUSH TABLES")


@pytest.fixture(scope="module")
def facts_bundle(tmp_path_factory):
    """One server with every fact, collected once (default myisam_recover_options)."""
    password = secrets.token_urlsafe(12)
    instance = _server(tmp_path_factory, "facts")
    _fill(instance, password)
    out = tmp_path_factory.mktemp("facts-out")
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(instance.port),
                                 "--user", "root", "--output", str(out), "--samples", "2",
                                 "--interval", "0.5", "--allow-findings")
    assert summary is not None, done.stderr
    yield instance, summary, bundle_files(Path(summary["bundle"])), password
    instance.stop()


def test_accounts_flag_empty_passwords_and_anonymous_accounts_never_a_hash(facts_bundle):
    instance, _, files, password = facts_bundle
    accounts = bundle_json(files, "mysql/accounts.json")
    flags = {(a["user"], a["host"]): a for a in accounts["accounts"]}
    assert flags[("nopass", "127.0.0.1")]["empty_authentication"] is True
    assert flags[("haspass", "127.0.0.1")]["empty_authentication"] is False
    assert flags[("locked_nopass", "127.0.0.1")]["empty_authentication"] is False
    assert flags[("", "localhost")]["anonymous"] is True
    assert flags[("", "localhost")]["empty_authentication"] is True
    summary = accounts["summary"]
    expected = sum(1 for a in flags.values() if a["empty_authentication"])
    assert summary["empty_authentication"] == expected >= 2
    assert summary["has_empty_authentication"] is True
    assert summary["anonymous"] == 1 and summary["has_anonymous"] is True
    assert all(isinstance(n, int) for n in summary["by_plugin"].values())
    hashed = instance.sql(f"SELECT PASSWORD('{password}')")[0][0]
    everything = b"".join(files.values())
    assert hashed.encode() not in everything and password.encode() not in everything
    assert b"authentication_string" not in files["mysql/accounts.json"]


def test_tables_without_a_primary_key_in_every_engine(facts_bundle):
    _, _, files, _ = facts_bundle
    facts = bundle_json(files, "mysql/table_facts.json")
    keyless = {(t["schema"], t["table"]): t["engine"] for t in facts["without_primary_key"]}
    assert keyless == {("facts", "heap"): "InnoDB", ("facts", "parted"): "InnoDB",
                       ("facts", "legacy_heap"): "MyISAM"}
    assert facts["counts"]["without_primary_key"] == 3


def test_myisam_and_aria_tables_are_listed_by_engine(facts_bundle):
    _, _, files, _ = facts_bundle
    facts = bundle_json(files, "mysql/table_facts.json")
    engines = {t["table"]: t["engine"] for t in facts["non_innodb"]}
    assert engines == {"legacy": "MyISAM", "legacy_heap": "MyISAM", "aria": "Aria",
                       "crashed": "MyISAM", "broken": "unreadable"}
    overview = bundle_json(files, "mysql/schema_overview.json")
    shop = next(s for s in overview["schemas"] if s["schema"] == "facts")
    assert shop["engines"] == {"InnoDB": 5, "MyISAM": 3, "Aria": 1, "VIEW": 2, "unreadable": 1}


def test_a_crashed_myisam_table_is_reported_and_left_unrepaired(facts_bundle):
    instance, _, files, _ = facts_bundle
    facts = bundle_json(files, "mysql/table_facts.json")
    problems = {t["table"]: t for t in facts["unopenable"]}
    assert problems["crashed"]["engine"] == "MyISAM"
    assert "marked as crashed" in problems["crashed"]["reason"]
    assert problems["crashed"]["source"] == "file header"
    # Opening it would have made the server repair it (myisam_recover_options=BACKUP,QUICK).
    data = instance.datadir / "facts"
    assert not list(data.glob("crashed.MYD*BAK"))
    with open(data / "crashed.MYI", "rb") as index:
        index.seek(_MYI_STATE)
        assert index.read(1)[0] & 0x02
    assert "Recovering table" not in instance.error_log.read_text(errors="replace")


def test_an_unreadable_definition_keeps_the_servers_reason(facts_bundle):
    _, _, files, _ = facts_bundle
    facts = bundle_json(files, "mysql/table_facts.json")
    broken = next(t for t in facts["unopenable"] if t["table"] == "broken")
    assert broken["source"] == "definition" and broken["engine"] is None
    assert "BASE TABLE" not in broken["reason"] and "broken" in broken["reason"]
    assert "BASE TABLE" not in str(bundle_json(files, "mysql/schema_overview.json"))


def test_stored_objects_counted_and_missing_definers_named(facts_bundle):
    _, _, files, _ = facts_bundle
    objects = bundle_json(files, "mysql/stored_objects.json")
    counts = objects["counts"]
    assert (counts["PROCEDURE"], counts["FUNCTION"], counts["TRIGGER"], counts["VIEW"],
            counts["EVENT"]) == (1, 1, 1, 2, 1)
    missing = {(m["type"], m["name"]): m["definer"] for m in objects["missing_definers"]}
    assert missing == {("VIEW", "v_ghost"): "ghost@%", ("TRIGGER", "trg"): "ghost@%",
                       ("PROCEDURE", "p"): "gone@localhost", ("EVENT", "e"): "ghost@%"}
    assert objects["missing_definer_count"] == 4


def test_utf8mb3_and_deprecated_charsets_found_without_opening_tables(facts_bundle):
    _, _, files, _ = facts_bundle
    charsets = bundle_json(files, "mysql/table_facts.json")["deprecated_charsets"]
    columns = {(c["table"], c["collation"]): c["columns"] for c in charsets["innodb_columns"]}
    assert columns == {("old_text", "utf8mb3_general_ci"): 1,
                       ("old_text", "utf8mb3_unicode_ci"): 1, ("old_text", "ucs2_general_ci"): 1}
    assert charsets["utf8mb3_columns"] == 2
    assert [s["schema"] for s in charsets["schema_defaults"]] == ["old_schema"]


def test_with_recovery_off_a_crashed_table_is_opened_and_the_server_says_why(tmp_path_factory):
    instance = _server(tmp_path_factory, "norecover", "--myisam-recover-options=OFF")
    try:
        _fill(instance, secrets.token_urlsafe(12))
        done, summary = collect_json("--host", "127.0.0.1", "--port", str(instance.port),
                                     "--user", "root", "--output",
                                     str(tmp_path_factory.mktemp("norecover-out")),
                                     "--samples", "1", "--allow-findings")
        assert summary is not None, done.stderr
        facts = bundle_json(bundle_files(Path(summary["bundle"])), "mysql/table_facts.json")
        crashed = next(t for t in facts["unopenable"] if t["table"] == "crashed")
        assert crashed["source"] == "server"
        assert "crashed" in crashed["reason"] and "repaired" in crashed["reason"]
        assert {t["table"] for t in facts["unopenable"]} == {"crashed", "broken"}
        assert by_name(summary)["mysql.table_facts"]["status"] == "ok"
    finally:
        instance.stop()


def test_a_primary_lists_its_replica(replica_pair, tmp_path):
    primary, replica = replica_pair
    server_id = int(replica.sql("SELECT @@server_id")[0][0])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not primary.sql("SHOW SLAVE HOSTS"):
        time.sleep(0.2)
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(primary.port),
                                 "--user", "root", "--output", str(tmp_path), "--samples", "1",
                                 "--allow-findings")
    assert summary is not None, done.stderr
    files = bundle_files(Path(summary["bundle"]))
    hosts = bundle_json(files, "mysql/replication/replica_hosts.json")
    assert hosts["statement"] == "SHOW REPLICA HOSTS"
    assert [int(r["Server_id"]) for r in hosts["replicas"]] == [server_id]
    # On the replica itself nothing registers with it: said, not an empty "ok".
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(replica.port),
                                 "--user", "root", "--output", str(tmp_path), "--samples", "1",
                                 "--allow-findings")
    notes = by_name(summary)["mysql.replicas"]["notes"]
    assert any("no replica is registered" in n for n in notes), notes
