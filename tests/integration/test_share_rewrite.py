"""The share rewriters on a real MariaDB: SHOW CREATE TABLE/VIEW of hostile names and
every kind of definition, rewritten, runs on the same server under the mapped names with
the same types, nullability, key parts, prefix lengths and partitioning; the rewritten
query runs there; no original name is left as a token, and no original value as text."""

from __future__ import annotations

import re
import secrets

import pytest

from report.share import ddl, query
from report.share.errors import ShareError
from report.share.names import NameMap
from report.share.sqltext import tokenize
from report.share.values import ValueMaps
from tests import servers

KEY = secrets.token_bytes(32)
SCHEMA = "acme_" + secrets.token_hex(3)
#: Hostile names: a doubled backquote, a space, a quote, Unicode, keywords, prefixes.
T_MAIN, T_REF = "cust`omer orders", "Kunden_Übersicht"
COLS = {"id": "id", "key": "key", "order": "order", "email": "e-mail's", "state": "státus",
        "made": "made", "made2": "made_at", "total": "total"}
EMAIL = f"{secrets.token_hex(4)}@example.org"


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


CREATE_REF = f"""CREATE TABLE {q(T_REF)} ({q('id')} int NOT NULL, {q('key')} varchar(32) NOT NULL,
  PRIMARY KEY ({q('id')}, {q('key')})) ENGINE=InnoDB"""
CREATE_MAIN = f"""CREATE TABLE {q(T_MAIN)} (
  {q('id')} int(11) NOT NULL,
  {q('key')} varchar(32) NOT NULL DEFAULT 'k-{secrets.token_hex(3)}' COMMENT 'secret {secrets.token_hex(3)}',
  {q("e-mail's")} varchar(100) COLLATE utf8mb4_unicode_ci DEFAULT '{EMAIL}',
  {q('státus')} enum('new-{secrets.token_hex(2)}','paid','gone') NOT NULL DEFAULT 'paid',
  {q('made')} date NOT NULL DEFAULT '2021-03-04',
  {q('made_at')} datetime(6) DEFAULT NULL,
  {q('total')} decimal(10,2) DEFAULT 12.50 CHECK ({q('total')} >= 0),
  {q('order')} int GENERATED ALWAYS AS ({q('id')} * 2) VIRTUAL,
  PRIMARY KEY ({q('id')}, {q('made')}),
  UNIQUE KEY {q('by mail')} ({q("e-mail's")}(20), {q('key')}),
  KEY {q('made')} ({q('made')}, {q('total')}),
  CONSTRAINT {q('fk to ' + T_REF)} FOREIGN KEY ({q('id')}, {q('key')})
    REFERENCES {q(T_REF)} ({q('id')}, {q('key')})
) ENGINE=InnoDB AUTO_INCREMENT=9876 ROW_FORMAT=DYNAMIC COMMENT='table of {secrets.token_hex(3)}'"""
CREATE_PARTS = f"""CREATE TABLE {q('events')} ({q('id')} int NOT NULL, {q('made')} date NOT NULL,
  PRIMARY KEY ({q('id')})) ENGINE=InnoDB
  PARTITION BY RANGE ({q('id')}) (PARTITION {q('old ones')} VALUES LESS THAN (4711),
  PARTITION {q('rest')} VALUES LESS THAN MAXVALUE)"""
VIEW = (f"CREATE DEFINER=`root`@`localhost` VIEW {q('v of ' + T_MAIN)} AS SELECT o.{q('id')} AS {q('ident')},"
        f" r.{q('key')} FROM {q(T_MAIN)} o JOIN {q(T_REF)} r ON r.{q('id')} = o.{q('id')}"
        f" WHERE o.{q('total')} > 5")
QUERY = (f"SELECT o.{q('key')}, COUNT(*) AS {q('how many')} FROM {SCHEMA}.{q(T_MAIN)} AS o"
         f" JOIN {q(T_REF)} r ON r.{q('id')} = o.{q('id')} AND r.{q('key')} = o.{q('key')}"
         f" WHERE o.{q('made')} BETWEEN '2021-01-01' AND '2021-06-30' AND {q('státus')} IN ('paid', 'gone')"
         f" AND o.{q(chr(101) + '-mail' + chr(39) + 's')} LIKE '{EMAIL[:5]}%' AND -- a comment {EMAIL}\n"
         f" o.{q('total')} > -3.5 /* {EMAIL} */ GROUP BY o.{q('key')} ORDER BY 2 LIMIT 10")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    instance = servers.create(tmp_path_factory.mktemp("share-rewrite"))
    try:
        instance.sql(f"CREATE DATABASE {SCHEMA}", f"USE {SCHEMA}", CREATE_REF, CREATE_MAIN, CREATE_PARTS,
                     VIEW)
        creates = {name: instance.sql(f"SHOW CREATE TABLE {SCHEMA}.{q(name)}")[0][1]
                   for name in (T_REF, T_MAIN, "events", "v of " + T_MAIN)}
    except BaseException:
        instance.stop()
        raise
    yield instance, creates
    instance.stop()


def _build(creates):
    shapes = {(SCHEMA, name): ddl.shape(text, SCHEMA) for name, text in creates.items()}
    names, values = NameMap(KEY), ValueMaps(KEY)
    for key, shape in shapes.items():
        for column in shape.columns.values():
            if shape.kind == "table":
                values.declare(key, column.name, column.sql_type, column.collation, column.labels)
    for key, shape in shapes.items():
        if shape.kind == "table":
            for column, value in ddl.literals(creates[key[1]], shape):
                values.learn(key, column, value)
    for value, target in query.literal_columns(QUERY, shapes, SCHEMA):
        values.learn(*(target or (None, None)), value)
    values.freeze()
    return shapes, names, values


#: Originals that are also SQL words (a bare KEY or ORDER in the output is the keyword).
KEYWORDS = {"key", "order"}


def _leaked(text: str) -> set:
    found = set()
    for t in tokenize(text):
        folded = t.value.casefold()
        if (t.kind == "name" or (t.kind == "word" and folded not in KEYWORDS)) and \
                folded in {o.casefold() for o in _originals()}:
            found.add(folded)
    return found


def _originals():
    return {T_MAIN, T_REF, SCHEMA, "by mail", "fk to " + T_REF, "old ones", "v of " + T_MAIN, "ident",
            "how many", *COLS.values()}


def test_the_shapes_hold_the_keys_the_types_and_the_partitioning(server):
    _instance, creates = server
    main = ddl.shape(creates[T_MAIN], SCHEMA)
    assert main.primary == ["id", "made"]
    assert main.indexes["by mail"] == [("e-mail's", 20), ("key", None)]
    assert main.columns["státus"].labels[1:] == ("paid", "gone")
    assert main.columns["e-mail's"].collation == "utf8mb4_unicode_ci"
    assert not main.columns["id"].nullable and main.columns["made_at"].nullable
    assert main.columns["order"].generated
    parts = ddl.shape(creates["events"], SCHEMA)
    assert parts.partition_columns == ["id"] and parts.partition_plain
    assert ddl.shape(creates["v of " + T_MAIN], SCHEMA).kind == "view"


def test_the_rewritten_schema_runs_and_keeps_its_structure(server):
    instance, creates = server
    shapes, names, values = _build(creates)
    mapped_schema = names.name("schema", SCHEMA)
    statements = [f"CREATE DATABASE {q(mapped_schema)}"]
    for name in (T_REF, T_MAIN, "events"):
        statements.append(ddl.rewrite_table(creates[name], shapes[(SCHEMA, name)], names, values))
    view = "v of " + T_MAIN
    statements.append(ddl.rewrite_view(creates[view], shapes[(SCHEMA, view)], names, values, shapes))
    instance.sql(*statements)
    text = "\n".join(statements)
    mapped_main = instance.sql(f"SHOW CREATE TABLE {q(mapped_schema)}.{q(names.name('table', T_MAIN))}")[0][1]
    original = creates[T_MAIN]
    # The same structure: the type words and key shapes, with the names swapped.
    def skeleton(sql: str) -> list:
        return [t.value for t in tokenize(sql) if t.kind in ("word", "op") and t.value.upper() not in
                ("COMMENT", "AUTO_INCREMENT", "STATS_PERSISTENT", "STATS_AUTO_RECALC")]
    assert [w for w in skeleton(mapped_main) if w not in "=-"] == \
        [w for w in skeleton(original) if w not in "=-"]
    assert "(20)" in mapped_main and "ROW_FORMAT=DYNAMIC" in mapped_main
    assert "STATS_AUTO_RECALC=0" in mapped_main
    parts = instance.sql(f"SHOW CREATE TABLE {q(mapped_schema)}.{q(names.name('table', 'events'))}")[0][1]
    assert "PARTITION BY RANGE" in parts and names.name("partition", "old ones") in parts
    assert not _leaked(text)
    assert EMAIL.casefold() not in text.casefold() and "secret" not in text and "9876" not in text
    assert "root" not in text and "DEFINER" not in text


def test_the_rewritten_query_runs_on_the_rewritten_schema(server):
    instance, creates = server
    shapes, names, values = _build(creates)
    mapped = query.rewrite(QUERY, shapes, SCHEMA, names, values)
    with instance.connect() as conn, conn.cursor() as cur:
        cur.execute(f"USE {q(names.name('schema', SCHEMA))}")
        cur.execute(mapped)
        cur.execute("EXPLAIN " + mapped)
    assert not _leaked(mapped)
    assert EMAIL[:5].casefold() not in mapped.casefold() and "comment" not in mapped.casefold()
    assert "LIMIT 10" in mapped and "ORDER BY 2" in mapped and "%'" in mapped
    assert query.tables_of(QUERY, SCHEMA) == [(SCHEMA, T_MAIN), (SCHEMA, T_REF)]


def test_each_literal_is_tied_to_its_column():
    shape = ddl.TableShape(SCHEMA, "t", columns={c: ddl.ColumnShape(c, "int") for c in ("a", "b")})
    shapes = {(SCHEMA, "t"): shape}
    sql = ("SELECT a FROM t x WHERE x.a = 1 AND 2 < b AND b BETWEEN 3 AND 4 AND a IN (5, 6)"
           " AND a + 7 > 0 LIMIT 8")
    tied = query.literal_columns(sql, shapes, SCHEMA)
    assert [(v, c[1] if c else None) for v, c in tied] == [
        (1, "a"), (2, "b"), (3, "b"), (4, "b"), (5, "a"), (6, "a"), (7, None), (0, None)]


def test_one_name_gives_one_pseudonym_and_a_collision_is_never_silent():
    names = NameMap(KEY)
    assert names.name("column", "Email") == names.name("column", "email")
    assert names.name("table", "x") != names.name("column", "x")
    assert names.name("index", "PRIMARY") == "PRIMARY"
    assert NameMap(KEY).name("table", "x") == names.name("table", "x")
    assert NameMap(b"other").name("table", "x") != names.name("table", "x")
    publics = [names.name("column", f"c{i}") for i in range(3000)]
    assert len(set(publics)) == 3000 and all(re.fullmatch(r"c_[0-9a-f]{10,}", p) for p in publics)


@pytest.mark.parametrize("text", [
    "CREATE TABLE `t` (`a` int", "CREATE TABLE `t", "CREATE TABLE `t` (`a` int DEFAULT 'x)",
    "SELECT 1", "", "CREATE TABLE /* open", "CREATE VIEW `v`",
])
def test_malformed_definitions_are_refused_in_one_line(text):
    with pytest.raises(ShareError) as caught:
        ddl.shape(text, SCHEMA)
    assert "\n" not in str(caught.value)
