"""The collector side of `mydiag share` (issue 16) on a real private MariaDB with
performance_schema on: `mydiag collect --for-share` writes mysql/share.json (the slowest
SELECT digests with a sample, EXPLAIN FORMAT=JSON, the DDL and optimizer statistics of
every table and view they touch, the optimizer settings); the full profile without it
writes DDL and statistics but no EXPLAIN and no literals; the other profiles nothing. A
hostile sample (SELECT … INTO OUTFILE, a multi-statement, SLEEP in a subquery, an
executable comment, a locking read) is never explained, and an EXPLAIN that would run
long is cut by its time limit.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pymysql
import pytest
from pymysql.constants import CLIENT

from tests import servers
from tests.helpers import bundle_files, by_name, collect_json

PS_ARGS = [
    "--performance-schema=ON",
    "--performance-schema-consumer-events-statements-current=ON",
    "--performance-schema-consumer-events-statements-history=ON",
    "--performance-schema-consumer-events-statements-history-long=ON",
]


def _server(tmp_path_factory, name: str) -> servers.Instance:
    try:
        return servers.create(tmp_path_factory.mktemp(name), PS_ARGS)
    except servers.ServerUnavailable as exc:
        if os.environ.get("MYDIAG_REQUIRE_SERVER") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    instance = _server(tmp_path_factory, "share-collect")
    try:
        outfile = _fill(instance, tmp_path_factory)
    except BaseException:
        instance.stop()
        raise
    yield instance, outfile
    instance.stop()


def _fill(instance: servers.Instance, tmp_path_factory) -> Path:
    outfile = tmp_path_factory.mktemp("share-outfile") / "rows.txt"
    instance.sql(
        "CREATE DATABASE shop", "USE shop",
        "CREATE TABLE shop.customers (id INT PRIMARY KEY, email VARCHAR(64) NOT NULL,"
        " city VARCHAR(20), KEY k_email (email), KEY k_city (city)) ENGINE=InnoDB",
        "INSERT INTO shop.customers SELECT seq, CONCAT('user', seq, '@example.test'),"
        " CONCAT('city', seq % 10) FROM seq_1_to_2000",
        "CREATE TABLE shop.orders (customer_id INT NOT NULL, n INT NOT NULL, total INT,"
        " PRIMARY KEY (customer_id, n)) ENGINE=InnoDB",
        "INSERT INTO shop.orders SELECT seq % 2000 + 1, seq, seq % 97 FROM seq_1_to_6000",
        "CREATE TABLE shop.canary (i INT) ENGINE=InnoDB",
        "CREATE VIEW shop.big_spenders AS SELECT c.id, c.email FROM shop.customers c"
        " JOIN shop.orders o ON o.customer_id = c.id WHERE o.total > 90",
        "CREATE VIEW shop.sleepy AS SELECT SLEEP(6) AS s",
        "ANALYZE TABLE shop.customers, shop.orders PERSISTENT FOR ALL",
    )
    conn = instance.connect(database="shop", client_flag=CLIENT.MULTI_STATEMENTS)
    with conn, conn.cursor() as cur:
        for sql in (
            "SELECT COUNT(*) FROM customers WHERE email > 'user5' AND email LIKE '%9%'",
            "SELECT * FROM big_spenders WHERE id < 40",
            "SELECT o.n FROM orders o JOIN customers c ON c.id = o.customer_id"
            " WHERE c.city = 'city3' AND o.total BETWEEN 10 AND 20",
            f"SELECT id FROM customers WHERE id = 3 INTO OUTFILE '{outfile}'",
            "SELECT id FROM customers WHERE id = (SELECT SLEEP(0))",
            "SELECT id FROM customers WHERE id = 7 FOR UPDATE",
            "SELECT /*!50000 id, */ email FROM customers WHERE id = 9",
            "SELECT id FROM customers WHERE id = 11; INSERT INTO canary VALUES (1)",
        ):
            cur.execute(sql)
            while cur.nextset():
                pass
    # The slow view, sampled once with a short sleep of its own (its EXPLAIN would sleep 6 s).
    with pytest.raises(pymysql.err.OperationalError, match="max_statement_time"):
        instance.sql("SET SESSION max_statement_time=0.3", "SELECT * FROM shop.sleepy")
    assert outfile.exists()
    outfile.unlink()
    return outfile


def _collect(instance, out, *args):
    done, summary = collect_json("--host", "127.0.0.1", "--port", str(instance.port), "--user",
                                 "root", "--output", str(out), "--samples", "1", "--interval", "0",
                                 *args)
    assert summary is not None, done.stderr
    return done, summary


@pytest.fixture(scope="module")
def shared(server, tmp_path_factory):
    instance, _ = server
    begun = time.monotonic()
    done, summary = _collect(instance, tmp_path_factory.mktemp("for-share"), "--profile", "quick",
                             "--for-share")
    took = time.monotonic() - begun
    files = bundle_files(summary["bundle"])
    return summary, json.loads(files["mysql/share.json"]), took, files


def _statement(member, needle):
    found = [s for s in member["statements"] if needle in (s.get("sample_sql") or "")]
    assert found, [s.get("sample_sql") for s in member["statements"]]
    return found[0]


def _object(member, name):
    return next(o for o in member["objects"] if o["name"] == name)


def test_for_share_writes_the_member_in_the_contract_shape(shared):
    summary, member, _, _ = shared
    entry = by_name(summary)["mysql.share"]
    assert entry["status"] == "ok", entry
    assert entry["files"] == ["mysql/share.json"]
    assert member["format"] == 1 and member["flavor"] == "mariadb"
    assert "MariaDB" in member["version"]
    assert {"optimizer_switch", "eq_range_index_dive_limit", "sql_mode", "join_buffer_size",
            "use_stat_tables", "histogram_type", "optimizer_use_condition_selectivity"} \
        <= set(member["settings"])
    assert all(isinstance(v, str) for v in member["settings"].values())
    assert member["cost_tables"] == {}
    assert 1 <= len(member["statements"]) <= 10 and len(member["objects"]) <= 30
    for item in member["statements"]:
        assert set(item) >= {"digest", "schema", "digest_text", "sql", "explain", "explain_error",
                             "tables"}
        assert all(schema not in ("mysql", "performance_schema", "information_schema", "sys")
                   for schema, _ in item["tables"])


def test_the_range_query_has_its_sample_and_its_explain(shared):
    _, member, _, _ = shared
    item = _statement(member, "email > 'user5'")
    assert item["schema"] == "shop" and item["tables"] == [["shop", "customers"]]
    assert item["explain_error"] is None
    table = item["explain"]["query_block"]["nested_loop"][0]["table"]
    assert table["table_name"] == "customers" and table["access_type"] in ("range", "index", "ALL")
    # The pipeline fingerprints every `sql` of a MySQL member; the consented sample stays.
    assert "user5" not in (item["sql"] or "") and "?" in item["sql"]


def test_views_are_expanded_to_their_base_tables(shared):
    _, member, _, _ = shared
    item = _statement(member, "FROM big_spenders")
    assert item["tables"] == [["shop", "big_spenders"], ["shop", "customers"], ["shop", "orders"]]
    assert item["explain"] is not None, item["explain_error"]
    view = _object(member, "big_spenders")
    assert view["kind"] == "view" and "VIEW `shop`.`big_spenders` AS select" in view["create"]
    assert view["innodb_index_stats"] == [] and view["table_stats"] is None


def test_tables_carry_ddl_innodb_and_engine_independent_statistics(server, shared):
    instance, _ = server
    _, member, _, _ = shared
    orders = _object(member, "orders")
    assert orders["kind"] == "table" and orders["create"].startswith("CREATE TABLE `orders`")
    assert orders["innodb_table_stats"]["n_rows"] > 0
    pfx = {(r["index_name"], r["stat_name"]): r for r in orders["innodb_index_stats"]}
    assert pfx[("PRIMARY", "n_diff_pfx02")]["stat_description"] == "customer_id,n"
    assert isinstance(pfx[("PRIMARY", "n_diff_pfx01")]["stat_value"], int)
    assert orders["table_stats"]["cardinality"] == 6000
    assert {r["prefix_arity"] for r in orders["index_stats"] if r["index_name"] == "PRIMARY"} == {1, 2}
    customers = _object(member, "customers")
    email = next(c for c in customers["column_stats"] if c["column_name"] == "email")
    assert email["hist_type"] in ("DOUBLE_PREC_HB", "SINGLE_PREC_HB")
    raw = instance.sql("SELECT HEX(histogram), min_value FROM mysql.column_stats WHERE db_name='shop'"
                       " AND table_name='customers' AND column_name='email'")[0]
    assert base64.b64decode(email["histogram_b64"]).hex().upper() == raw[0]
    assert email["min_value"] == raw[1].decode() and "histogram" not in email
    assert isinstance(email["avg_frequency"], str)  # DECIMAL as text, as the contract says


def test_hostile_samples_are_never_explained(server, shared):
    instance, outfile = server
    _, member, _, _ = shared
    by_sample = {s.get("sample_sql"): s for s in member["statements"]}
    multi = _statement(member, "INSERT INTO canary")
    assert multi["explain"] is None
    assert "more than one statement" in multi["explain_error"] or "not a SELECT" in multi["explain_error"]
    sleep = _statement(member, "SLEEP(0)")
    assert sleep["explain"] is None and "SLEEP" in sleep["explain_error"]
    locking = _statement(member, "FOR UPDATE")
    assert locking["explain"] is None and "locking" in locking["explain_error"]
    versioned = _statement(member, "/*!50000")
    assert versioned["explain"] is None and "executable comment" in versioned["explain_error"]
    # INTO OUTFILE does not parse as a plain SELECT: listed as skipped, never explained.
    assert not any("INTO OUTFILE" in (s or "") for s in by_sample)
    assert any("does not parse" in s["why"] for s in member["skipped"])
    assert not outfile.exists()
    assert instance.sql("SELECT COUNT(*) FROM shop.canary")[0][0] == 1
    for item in member["statements"]:
        assert (item["explain"] is None) != (item["explain_error"] is None)
        assert "\n" not in (item["explain_error"] or "")


def test_a_long_explain_is_cut_by_its_time_limit(shared):
    _, member, took, _ = shared
    slow = _statement(member, "shop.sleepy")
    assert slow["explain"] is None and "limit" in slow["explain_error"], slow["explain_error"]
    assert took < 20


def test_full_profile_without_for_share_has_no_explain_and_no_literals(server, tmp_path):
    instance, _ = server
    _, summary = _collect(instance, tmp_path, "--profile", "full")
    assert by_name(summary)["mysql.share"]["status"] == "ok"
    raw = bundle_files(summary["bundle"])["mysql/share.json"]
    member = json.loads(raw)
    assert member["statements"] and member["objects"]
    for item in member["statements"]:
        assert item["explain"] is None and item["sample_sql"] is None
        assert "--for-share" in item["explain_error"]
    assert b"user5" not in raw and b"city3" not in raw
    assert _object(member, "orders")["innodb_index_stats"]


def test_other_profiles_without_for_share_collect_nothing_for_it(server, tmp_path):
    instance, _ = server
    _, summary = _collect(instance, tmp_path, "--profile", "quick")
    assert "mysql.share" not in by_name(summary)
    assert "mysql/share.json" not in bundle_files(summary["bundle"])


def test_inspect_lists_the_member(shared):
    from tests.helpers import mydiag

    summary, _, _, _ = shared
    done = mydiag("inspect", summary["bundle"])
    assert done.returncode == 0, done.stderr
    assert "mysql/share.json" in done.stdout


def test_without_performance_schema_the_collector_says_why(tmp_path_factory, tmp_path):
    try:
        instance = servers.create(tmp_path_factory.mktemp("share-nops"), [])
    except servers.ServerUnavailable as exc:
        pytest.skip(str(exc))
    try:
        _, summary = _collect(instance, tmp_path, "--profile", "quick", "--for-share")
        entry = by_name(summary)["mysql.share"]
        assert entry["status"] == "skipped" and "performance_schema is OFF" in entry["error"]
    finally:
        instance.stop()


def test_a_digest_with_system_tables_only_is_not_shared(shared):
    _, member, _, _ = shared
    assert not any("performance_schema" in (s["digest_text"] or "") for s in member["statements"])



@pytest.mark.parametrize("sql, refused", [
    ("SELECT a FROM t WHERE b = 'x;y'", None),
    ("SELECT `se``lect` FROM `we'ird` WHERE `ünï` = 'it''s' /* plain comment */", None),
    ("(SELECT 1 FROM a) UNION (SELECT 2 FROM b)", None),
    ("WITH c AS (SELECT * FROM s.t) SELECT * FROM c", None),
    ("SELECT `select`, `from` FROM `order` WHERE `where` = 1", None),
    ("SELECT a FROM t; DROP TABLE t", "more than one statement"),
    ("SELECT a INTO @v FROM t", "INTO"),
    ("SELECT a FROM t INTO OUTFILE '/tmp/x'", "does not parse"),
    ("SELECT a FROM t LOCK IN SHARE MODE", "locking"),
    ("SELECT a FROM t FOR UPDATE SKIP LOCKED", "locking"),
    ("SELECT /*! 1; DROP TABLE t; */ a FROM t", "executable comment"),
    ("SELECT /*M!100000 SLEEP(9), */ a FROM t", "executable comment"),
    ("SELECT a FROM t --\u00a0x\nWHERE 1", "comment the parser and the server read differently"),
    ("SELECT a FROM t WHERE a = (SELECT BENCHMARK(1e9, MD5(1)))", "BENCHMARK"),
    ("SELECT LOAD_FILE('/etc/shadow') FROM t", "LOAD_FILE"),
    ("UPDATE t SET a = 1", "not a SELECT"),
    ("SHOW TABLES", "not a SELECT"),
    ("SELECT a FROM t WHERE b = 'unterminated", "does not parse"),
])
def test_only_a_single_plain_select_is_explainable(sql, refused):
    from collectors.mysql.share import explainable

    why = explainable(sql)
    if refused is None:
        assert why is None, why
    else:
        assert why is not None and refused in why and "\n" not in why


def test_tables_of_leaves_out_ctes_and_into_targets_and_qualifies_the_rest():
    from collectors.mysql.share import tables_of

    found = tables_of("WITH c AS (SELECT * FROM s.t) SELECT * FROM c JOIN `u``x` ON 1", "d")
    assert sorted(found) == [("d", "u`x"), ("s", "t")]
    assert tables_of("SELECT a INTO @v FROM Big", "d", lower=True) == [("d", "big")]
    assert tables_of("SELECT 1", "d") == []
    assert tables_of("SELECT * FROM t", None) == []
    with pytest.raises(ValueError):
        tables_of("SELECT FROM WHERE (", "d")
