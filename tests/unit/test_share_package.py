"""`mydiag share`'s package builder on share data made here (no server): the package holds
every file, none of the customer's names or values, and the private map stays out of it;
the leak scan refuses the package when any one mapping is switched off (a NameMap that
passes one kind of name through, a ValueMaps that passes values through); a digest that
matches nothing or several, a --query that is not one SELECT and a statement without a
sample are refused with one line; the customer's plan is mapped name by name."""

from __future__ import annotations

import json
import secrets
from typing import Any, Dict

import pytest

from report.share import leaks, package, source
from report.share.errors import ShareError
from report.share.names import NameMap
from report.share.values import ValueMaps

TAG = secrets.token_hex(3)
SCHEMA = f"acme_billing_{TAG}"
CUSTOMERS = f"acme_customers_{TAG}"
INVOICES = f"invoices_{TAG}"
VIP = f"vip_accounts_{TAG}"
EMAIL = f"contact_email_{TAG}"
REGION = f"region_{TAG}"
IX_REGION = f"ix_region_{TAG}"
AMOUNT = f"amount_{TAG}"
SECRET_LOW = f"person0001@mail-{TAG}.example"
SECRET_HIGH = f"person0999@mail-{TAG}.example"
SECRET_LITERAL = f"person0420@mail-{TAG}.example"
REGION_LITERAL = f"northeast{TAG}"
DIGEST = "6febef345e" + "0" * 22
OTHER = "6febef3460" + "1" * 22


def _data() -> Dict[str, Any]:
    customers = (
        f"CREATE TABLE `{CUSTOMERS}` (\n  `id` int(11) NOT NULL,\n  `{EMAIL}` varchar(80) NOT NULL,\n"
        f"  `{REGION}` char(12) NOT NULL DEFAULT 'unknown{TAG}',\n  PRIMARY KEY (`id`),\n"
        f"  UNIQUE KEY `uq_email_{TAG}` (`{EMAIL}`),\n  KEY `{IX_REGION}` (`{REGION}`)\n"
        ") ENGINE=InnoDB DEFAULT CHARSET=latin1 COLLATE=latin1_swedish_ci COMMENT='billing of acme'")
    invoices = (
        f"CREATE TABLE `{INVOICES}` (\n  `acct_{TAG}` int(11) NOT NULL,\n  `invoice_no` int(11) NOT NULL,\n"
        f"  `{AMOUNT}` decimal(10,2) DEFAULT NULL,\n  PRIMARY KEY (`acct_{TAG}`,`invoice_no`)\n"
        ") ENGINE=InnoDB DEFAULT CHARSET=latin1")
    view = (f"CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` SQL SECURITY DEFINER VIEW `{VIP}` AS "
            f"select `{SCHEMA}`.`{CUSTOMERS}`.`id` AS `id`,`{SCHEMA}`.`{CUSTOMERS}`.`{EMAIL}` AS `{EMAIL}` "
            f"from `{SCHEMA}`.`{CUSTOMERS}` where `{SCHEMA}`.`{CUSTOMERS}`.`{REGION}` <> 'closed{TAG}'")
    stats = {"database_name": SCHEMA, "table_name": CUSTOMERS, "last_update": "2026-01-02 03:04:05",
             "n_rows": 4000, "clustered_index_size": 22, "sum_of_other_index_sizes": 23}
    index_stats = [
        {"database_name": SCHEMA, "table_name": CUSTOMERS, "index_name": IX_REGION,
         "last_update": "2026-01-02 03:04:05", "stat_name": "n_diff_pfx01", "stat_value": 40,
         "sample_size": 8, "stat_description": REGION},
        {"database_name": SCHEMA, "table_name": CUSTOMERS, "index_name": "PRIMARY",
         "last_update": "2026-01-02 03:04:05", "stat_name": "n_diff_pfx01", "stat_value": 4000,
         "sample_size": 20, "stat_description": "id"},
    ]
    column_stats = [{"db_name": SCHEMA, "table_name": CUSTOMERS, "column_name": EMAIL,
                     "min_value": SECRET_LOW, "max_value": SECRET_HIGH, "nulls_ratio": "0.0000",
                     "avg_length": "27.0000", "avg_frequency": "1.0000", "hist_size": None,
                     "hist_type": None, "histogram_b64": None}]
    sql = (f"SELECT cust.`{EMAIL}`, inv.`{AMOUNT}` FROM `{CUSTOMERS}` cust JOIN `{INVOICES}` inv "
           f"ON inv.`acct_{TAG}` = cust.id WHERE cust.`{REGION}` = '{REGION_LITERAL}' "
           f"AND cust.`{EMAIL}` > '{SECRET_LITERAL}'")
    explain = {"query_block": {"select_id": 1, "nested_loop": [
        {"table": {"table_name": "cust", "access_type": "ref", "possible_keys": [IX_REGION],
                   "key": IX_REGION, "key_length": "12", "used_key_parts": [REGION],
                   "ref": ["const"], "rows": 60, "filtered": 50,
                   "attached_condition": f"cust.{EMAIL} > '{SECRET_LITERAL}'"}},
        {"table": {"table_name": "inv", "access_type": "ref", "possible_keys": ["PRIMARY"],
                   "key": "PRIMARY", "key_length": "4", "used_key_parts": [f"acct_{TAG}"],
                   "ref": [f"{SCHEMA}.cust.id"], "rows": 3, "filtered": 100}}]}}
    return {
        "format": 1, "flavor": "mariadb", "version": "10.11.6-MariaDB",
        "settings": {"optimizer_switch": "index_merge=on", "eq_range_index_dive_limit": "8",
                     "innodb_stats_persistent": "ON"},
        "cost_tables": {},
        "statements": [
            {"digest": DIGEST, "schema": SCHEMA, "digest_text": "SELECT …", "sql": "SELECT ?",
             "sample_sql": sql, "explain": explain, "explain_error": None,
             "tables": [[SCHEMA, CUSTOMERS], [SCHEMA, INVOICES]]},
            {"digest": OTHER, "schema": SCHEMA, "digest_text": "SELECT …", "sql": None, "sample_sql": None,
             "explain": None, "explain_error": "no sample", "tables": [[SCHEMA, VIP]]},
        ],
        "objects": [
            {"schema": SCHEMA, "name": CUSTOMERS, "kind": "table", "create": customers,
             "innodb_table_stats": stats, "innodb_index_stats": index_stats, "table_stats": None,
             "column_stats": column_stats, "index_stats": [], "histograms": []},
            {"schema": SCHEMA, "name": INVOICES, "kind": "table", "create": invoices,
             "innodb_table_stats": None, "innodb_index_stats": [], "table_stats": None,
             "column_stats": [], "index_stats": [], "histograms": []},
            {"schema": SCHEMA, "name": VIP, "kind": "view", "create": view, "innodb_table_stats": None,
             "innodb_index_stats": [], "table_stats": None, "column_stats": [], "index_stats": [],
             "histograms": []},
        ],
        "skipped": [],
    }


ORIGINALS = (SCHEMA, CUSTOMERS, INVOICES, EMAIL, REGION, IX_REGION, AMOUNT, SECRET_LOW, SECRET_HIGH,
             SECRET_LITERAL, REGION_LITERAL, f"uq_email_{TAG}", f"acct_{TAG}")
KEY = b"k" * 32


def _raw_hits(files: Dict[str, bytes]):
    return sorted({(name, o) for name, data in files.items() for o in ORIGINALS
                   if o.casefold() in data.decode("utf-8", "replace").casefold()})


def test_the_package_holds_every_file_and_no_original():
    built = package.build(source.parse(_data()), KEY, digest="6febef345e")
    assert set(built.files) == set(package.FILES)
    assert _raw_hits(built.files) == []
    assert built.scan().clean, built.scan().summary()
    assert "map" not in " ".join(built.files)
    mapped = {e["original"]: e["public"] for e in built.private_map["names"]}
    assert mapped[CUSTOMERS].startswith("t_") and mapped[EMAIL].startswith("c_")
    assert built.private_map["key"] == KEY.hex()
    repro = built.files["repro.sql"].decode()
    order = [repro.index(word) for word in ("SET SESSION", "CREATE DATABASE", "CREATE TABLE",
                                            "mysql.innodb_table_stats", "EXPLAIN FORMAT=JSON")]
    assert order == sorted(order)
    assert "ANALYZE FORMAT=JSON" in built.files["repro.test"].decode()
    assert "innodb_stats_persistent" in built.files["README.md"].decode()
    settings = json.loads(built.files["settings.json"])
    assert settings["eq_range_index_dive_limit"] == 8


def test_the_customers_plan_is_mapped_name_by_name():
    built = package.build(source.parse(_data()), KEY, digest=DIGEST)
    tables = [t["table"] for t in built.expected["query_block"]["nested_loop"]]
    assert [t["table_name"][:2] for t in tables] == ["a_", "a_"]
    assert tables[0]["key"].startswith("i_") and tables[1]["key"] == "PRIMARY"
    assert tables[1]["ref"][0].count(".") == 2 and tables[1]["ref"][0].startswith("s_")
    assert tables[0]["ref"] == ["const"]
    assert SECRET_LITERAL not in tables[0]["attached_condition"]
    assert tables[0]["attached_condition"].startswith(tables[0]["table_name"] + ".c_")


class _PassNames(NameMap):
    """A NameMap that leaves one kind of name as it was (the mapping switched off)."""

    passed = ""

    def name(self, kind: str, original: str) -> str:
        mapped = super().name(kind, original)
        return original if kind == self.passed else mapped

    def known(self, original: str) -> Any:
        got = super().known(original)
        entry = next((e for e in self.entries() if e["original"].casefold() == original.casefold()), None)
        return original if entry is not None and entry["kind"] == self.passed else got


class _PassValues(ValueMaps):
    """A ValueMaps that leaves values as they were."""

    def value(self, table: Any, column: Any, value: Any) -> Any:
        super().value(table, column, value)
        return value

    def loose(self, value: Any) -> str:
        return "'" + str(value).replace("'", "''") + "'"


@pytest.mark.parametrize("kind", ["schema", "table", "column", "index", "alias", "view"])
def test_the_scan_refuses_the_package_when_one_kind_of_name_is_not_mapped(kind):
    names = type("Pass", (_PassNames,), {"passed": kind})(KEY)
    digest = OTHER if kind == "view" else DIGEST
    data = _data()
    if kind == "view":
        data["statements"][1]["sample_sql"] = f"SELECT `{EMAIL}` FROM `{VIP}` WHERE id < 40"
    built = package.build(source.parse(data), KEY, digest=digest, names=names)
    scan = built.scan()
    assert not scan.clean, kind
    assert all(leak.kind.endswith("name") or "plan" in leak.kind for leak in scan.leaks), scan.summary()
    assert not any(o in scan.summary() for o in ORIGINALS)  # the message never holds the value


def test_the_scan_refuses_the_package_when_values_are_not_mapped():
    built = package.build(source.parse(_data()), KEY, digest=DIGEST, values=_PassValues(KEY))
    scan = built.scan()
    assert not scan.clean
    files = {leak.file for leak in scan.leaks}
    assert {"repro.sql", "query.sql"} <= files, scan.summary()
    assert not any(o in scan.summary() for o in ORIGINALS)


def test_a_digest_must_name_exactly_one_statement_with_a_sample():
    data = source.parse(_data())
    with pytest.raises(package.Refused, match="no statement"):
        package.build(data, KEY, digest="abcdef")
    with pytest.raises(package.Refused, match="matches 2 statements"):
        package.build(data, KEY, digest="6febef34")
    with pytest.raises(package.Refused, match="hexadecimal"):
        package.build(data, KEY, digest="6feb'; DROP")
    with pytest.raises(source.NoShareData, match="no sample"):
        package.build(data, KEY, digest=OTHER)


@pytest.mark.parametrize("text", [
    f"DELETE FROM `{CUSTOMERS}`",
    f"SELECT 1; SELECT * FROM `{CUSTOMERS}`",
    f"SELECT id FROM `{CUSTOMERS}` INTO OUTFILE '/tmp/x'",
    "",
    "-- only a comment",
], ids=["delete", "two", "outfile", "empty", "comment"])
def test_a_query_file_must_hold_one_select(text):
    with pytest.raises(package.Refused):
        package.build(source.parse(_data()), KEY, query=text)


def test_a_query_text_over_the_bundles_tables_builds_with_its_default_schema():
    text = f"SELECT `{EMAIL}` FROM `{CUSTOMERS}` WHERE `{REGION}` = ';{REGION_LITERAL}'"
    built = package.build(source.parse(_data()), KEY, query=text)
    assert built.expected is None
    assert built.scan().clean and _raw_hits(built.files) == []
    assert "no plan" in built.files["README.md"].decode()


def test_a_query_over_a_table_the_bundle_lacks_says_so():
    with pytest.raises(source.NoShareData, match="holds no definition"):
        package.build(source.parse(_data()), KEY, query="SELECT * FROM other_table_x")


@pytest.mark.parametrize("change, field", [
    (lambda d: d.update(statements={}), "statements is not a list"),
    (lambda d: d["statements"][0].update(digest=5), "digest is not text"),
    (lambda d: d["statements"][0].update(sample_sql="S" * (source.MAX_SQL + 1)), "sample_sql is longer"),
    (lambda d: d["objects"][0].update(kind="procedure"), "kind must be"),
    (lambda d: d["objects"][0].update(innodb_index_stats=[{"x": {"y": 1}}]), "not a number or text"),
    (lambda d: d["statements"][0].update(explain=_deep(80)), "nests deeper"),
    (lambda d: d.update(format=2), "format 2"),
    (lambda d: d.update(flavor=["mariadb"]), "flavor"),
    (lambda d: d["statements"][0].update(tables=[["only-one"]]), "pair"),
])
def test_malformed_share_data_is_one_line_naming_the_field(change, field):
    data = _data()
    change(data)
    with pytest.raises(ShareError) as caught:
        source.parse(data)
    assert field in str(caught.value) and "\n" not in str(caught.value)


def _deep(levels: int) -> Dict[str, Any]:
    node: Dict[str, Any] = {}
    for _ in range(levels):
        node = {"a": node}
    return node


def test_the_readme_says_not_reproduced_when_a_replay_differs():
    from report.share.verify import Comparison
    built = package.build(source.parse(_data()), KEY, digest=DIGEST)
    built.verified(Comparison(False, "MariaDB 10.11.6", ["join order: expected a; replayed b"]))
    assert "Not reproduced" in built.files["README.md"].decode()
    built.verified(Comparison(True, "MariaDB 10.11.6", ["join order: a (same)"]))
    assert "Reproduced" in built.files["README.md"].decode()


def test_the_security_readme_holds_only_versions_component_and_description():
    text = package.security_readme("mariadb", "10.11.6-MariaDB", "optimizer", "A crash in range analysis.")
    assert b"10.11.6" in text and b"optimizer" in text and b"crash" in text
    assert b"SELECT" not in text
    scan = leaks.scan({"README.md": package.security_readme("mariadb", "10.11", "optimizer",
                                                            f"seen on {CUSTOMERS}")},
                      [leaks.Needle(CUSTOMERS, "table name")])
    assert not scan.clean
