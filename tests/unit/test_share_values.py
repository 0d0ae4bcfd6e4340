"""The value maps, statistics and synthetic-row SQL of `mydiag share` (issue 16), without a
server: order, equality (under _ci collations), type ranges, valid dates and NULL survive the
maps; no original value is in what they write; malformed statistics rows are one ShareError
line, never a traceback. (The same SQL runs on real MariaDB in
tests/integration/test_share_stats.py.)"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest

from report.share import stats, synth
from report.share.errors import ShareError
from report.share.values import ValueMaps

T = ("shop", "orders")


# --- stand-ins for ddl.TableShape / names.NameMap (H1a's modules had not landed) ------------


@dataclass
class ColumnShape:
    name: str
    sql_type: str
    collation: Optional[str] = None
    labels: Tuple[str, ...] = ()
    nullable: bool = True
    generated: bool = False


@dataclass
class TableShape:
    schema: str
    name: str
    kind: str
    columns: Dict[str, ColumnShape]
    indexes: Dict[str, List[Tuple[str, Optional[int]]]]
    unique: Set[str] = field(default_factory=set)
    primary: List[str] = field(default_factory=list)
    partition_columns: List[str] = field(default_factory=list)


class Names:
    PREFIX = {"schema": "s", "table": "t", "column": "c", "index": "i", "partition": "p"}

    def name(self, kind: str, original: str) -> str:
        if kind == "index" and original.upper() == "PRIMARY":
            return "PRIMARY"
        digest = hmac.new(b"k", f"{kind}\0{original.casefold()}".encode(), hashlib.sha256).hexdigest()
        return f"{self.PREFIX[kind]}_{digest[:10]}"


def maps(column_type: str, learned, collation: Optional[str] = None, key: bytes = b"key",
         labels=()) -> ValueMaps:
    values = ValueMaps(key)
    values.declare(T, "c", column_type, collation, labels)
    for v in learned:
        values.learn(T, "c", v)
    values.freeze()
    return values


# --- order, equality, ranges ----------------------------------------------------------------


@pytest.mark.parametrize("column_type, learned", [
    ("int(11)", [-5, 0, 3, 17, 1000, 99999]),
    ("tinyint(4)", [-128, -1, 0, 5, 127]),
    ("tinyint(3) unsigned", [0, 1, 200, 255]),
    ("smallint(6)", [-300, 12, 32000]),
    ("bigint(20)", [-(2 ** 63), -1, 0, 2 ** 63 - 1]),
    ("bigint(20) unsigned", [0, 7, 2 ** 64 - 1]),
    ("bigint(20)", [10, 20, 4_000_000_000]),
    ("decimal(10,2)", [Decimal("-12.50"), Decimal("0.01"), Decimal("0.02"), Decimal("99999.99")]),
    ("double", [-1.5, 0.0, 2.25, 1e10]),
])
def test_numbers_keep_order_equality_type_and_range(column_type, learned):
    values = maps(column_type, learned)
    mapped = [values.value(T, "c", v) for v in learned]
    assert mapped == sorted(mapped) and len(set(mapped)) == len(mapped)
    assert all(type(m) is type(v) for m, v in zip(mapped, learned))
    bounds = values.column_range(T, "c")
    if bounds is not None:
        assert all(bounds[0] <= m <= bounds[1] for m in mapped), mapped
    if isinstance(learned[0], Decimal):
        assert all(m == m.quantize(Decimal("0.01")) for m in mapped)
    # the same value given as text (a statistics min_value, a quoted literal) maps the same
    assert [Decimal(values.value(T, "c", str(v))) for v in learned] == [Decimal(str(m)) for m in mapped]


def test_numbers_move_unless_the_known_values_fill_the_type():
    values = maps("int(11)", [1, 2, 5, 12345678])
    assert all(values.value(T, "c", v) != v for v in (1, 2, 5, 12345678))
    full = maps("tinyint(4)", [-128, 127])
    assert [full.value(T, "c", v) for v in (-128, 127)] == [-128, 127]
    assert any("identity" in e.get("note", "") for e in full.entries())


def test_the_affine_map_keeps_positions_so_binary_histograms_stay_exact():
    values = maps("int(11)", [0, 250, 1000])
    lo, mid, hi = (values.value(T, "c", v) for v in (0, 250, 1000))
    assert (mid - lo) / (hi - lo) == pytest.approx(0.25)


def test_ci_strings_fold_case_accents_and_trailing_spaces_bin_strings_do_not():
    learned = ["A", "a", "a  ", "é", "e", "Bob", "bob", "person1@mail.example", "person2@mail.example", "zed"]
    ci = maps("varchar(64)", learned, "utf8mb4_general_ci")
    assert ci.value(T, "c", "A") == ci.value(T, "c", "a") == ci.value(T, "c", "a  ")
    assert ci.value(T, "c", "é") == ci.value(T, "c", "e")
    assert ci.value(T, "c", "Bob") == ci.value(T, "c", "bob")
    binary = maps("varchar(64)", learned, "utf8mb4_bin")
    assert binary.value(T, "c", "A") != binary.value(T, "c", "a")
    for values, fold in ((ci, lambda s: s.casefold()), (binary, lambda s: s)):
        distinct = sorted({values.value(T, "c", v) for v in learned})
        assert all(re.fullmatch(r"[a-z]+", s) for s in distinct), distinct
        ordered = sorted(["a", "bob", "person1@mail.example", "person2@mail.example", "zed"], key=fold)
        mapped = [values.value(T, "c", v) for v in ordered]
        assert mapped == sorted(mapped) and len(set(mapped)) == len(mapped)


def test_strings_fit_the_column_and_keep_about_their_length():
    learned = [f"customer-{i:04d}" for i in range(300)]
    values = maps("varchar(12)", learned, "utf8mb4_general_ci")
    mapped = [values.value(T, "c", v) for v in learned]
    assert mapped == sorted(mapped) and len(set(mapped)) == 300
    assert all(len(m) <= 12 for m in mapped)
    short = maps("char(2)", ["ab", "cd", "ef"])
    assert all(len(short.value(T, "c", v)) <= 2 for v in ("ab", "cd", "ef"))


@pytest.mark.parametrize("column_type, learned", [
    ("date", ["1000-01-01", "2020-02-29", "2021-12-31", "9999-12-31"]),
    ("date", ["2020-02-29", "2020-03-01", "2024-02-29"]),
    ("datetime(6)", ["2020-01-01 00:00:00.000001", "2020-01-01 00:00:00.000002", "2038-01-19 03:14:07"]),
    ("timestamp", ["1970-01-02 00:00:00", "2038-01-17 00:00:00"]),
])
def test_dates_stay_valid_dates_in_order(column_type, learned):
    values = maps(column_type, learned)
    mapped = [values.value(T, "c", v) for v in learned]
    parsed = [datetime.datetime.fromisoformat(m) for m in mapped]
    assert parsed == sorted(parsed) and len(set(parsed)) == len(parsed)
    assert all(m[5:10] == v[5:10] for m, v in zip(mapped, learned))  # whole 4-year cycles
    if column_type == "timestamp":
        assert all(datetime.datetime(1970, 1, 1) < p < datetime.datetime(2038, 1, 19) for p in parsed)


def test_null_stays_null_and_enum_labels_go_by_position():
    values = maps("enum('gold','silver')", ["gold", "SILVER"], labels=("gold", "silver"))
    assert values.value(T, "c", None) is None and values.sql(T, "c", None) == "NULL"
    assert values.value(T, "c", "gold") == "e01" and values.value(T, "c", "Silver") == "e02"
    assert values.label(T, "c", "silver") == "e02"
    assert maps("int(11)", [1]).sql(T, "c", None) == "NULL"


def test_maps_are_keyed_and_deterministic_and_frozen():
    learned = ["alice@example.org", "bob@example.org", 12]
    one, two = maps("varchar(40)", learned), maps("varchar(40)", learned)
    other = maps("varchar(40)", learned, key=b"another key")
    assert [one.value(T, "c", v) for v in learned[:2]] == [two.value(T, "c", v) for v in learned[:2]]
    assert one.loose("secret-value") == two.loose("secret-value") != other.loose("secret-value")
    with pytest.raises(RuntimeError):
        one.learn(T, "c", "late")
    assert {"alice@example.org", "bob@example.org", "12"} <= one.originals()


def test_sql_literals_are_quoted_and_loose_values_keep_their_shape():
    values = maps("varchar(20)", ["O'Brien\\x"])
    literal = values.sql(T, "c", "O'Brien\\x")
    assert literal.startswith("'") and literal.endswith("'") and "Brien" not in literal
    assert values.loose(10) == "10"               # small numbers are limits, not data
    assert values.loose(123456789) != "123456789" and len(values.loose(123456789)) == 9
    assert re.fullmatch(r"'[a-z]{6}'", values.loose("secret"))


# --- statistics -----------------------------------------------------------------------------


def _shape() -> TableShape:
    columns = [ColumnShape("id", "int(11)", nullable=False), ColumnShape("cust", "int(11)", nullable=False),
               ColumnShape("email", "varchar(64)", "utf8mb4_general_ci"), ColumnShape("made", "date")]
    return TableShape("shop", "orders", "table", {c.name: c for c in columns},
                      {"PRIMARY": [("id", None)], "ix_cust": [("cust", None)],
                       "ix_ce": [("cust", None), ("email", None)], "ix_made": [("made", None)]},
                      {"PRIMARY"}, ["id"])


def _json_hb(starts: List[str], end: str) -> str:
    buckets = [{"start": s, "size": 1 / len(starts), "ndv": 3} for s in starts]
    buckets[-1]["end"] = end
    return json.dumps({"target_histogram_size": len(starts), "collected_at": "2026-01-02 03:04:05",
                       "collected_by": "10.11.6-MariaDB", "histogram_hb": buckets})


def _obj() -> Dict[str, Any]:
    hist = base64.b64encode(bytes(range(0, 254))).decode()
    return {
        "innodb_table_stats": {"database_name": "shop", "table_name": "orders", "last_update": "2026-01-01",
                               "n_rows": 19776, "clustered_index_size": 97, "sum_of_other_index_sizes": 154},
        "innodb_partition_stats": [],
        "innodb_index_stats": [
            {"database_name": "shop", "table_name": "orders", "index_name": "ix_ce",
             "stat_name": "n_diff_pfx01", "stat_value": 140, "sample_size": 20, "stat_description": "cust"},
            {"database_name": "shop", "table_name": "orders", "index_name": "ix_ce",
             "stat_name": "n_diff_pfx02", "stat_value": 864, "sample_size": 20,
             "stat_description": "cust,email"},
            {"database_name": "shop", "table_name": "orders", "index_name": "ix_ce",
             "stat_name": "n_diff_pfx03", "stat_value": 19862, "sample_size": 20,
             "stat_description": "cust,email,id"},
            {"database_name": "shop", "table_name": "orders", "index_name": "ix_ce", "stat_name": "size",
             "stat_value": 97, "sample_size": None, "stat_description": "Number of pages in the index"},
            {"database_name": "shop", "table_name": "orders", "index_name": "PRIMARY",
             "stat_name": "n_leaf_pages", "stat_value": 74, "sample_size": None,
             "stat_description": "Number of leaf pages in the index"},
        ],
        "table_stats": {"db_name": "shop", "table_name": "orders", "cardinality": 20000},
        "column_stats": [
            {"db_name": "shop", "table_name": "orders", "column_name": "cust", "min_value": "0",
             "max_value": "999", "nulls_ratio": "0.0000", "avg_length": "4.0000", "avg_frequency": "111.1111",
             "hist_size": 254, "hist_type": "DOUBLE_PREC_HB", "histogram_b64": hist},
            {"db_name": "shop", "table_name": "orders", "column_name": "email",
             "min_value": "person0@mail-acme.example", "max_value": "person99@mail-acme.example",
             "nulls_ratio": "0.0500", "avg_length": "22.0000", "avg_frequency": "27.0000", "hist_size": 3,
             "hist_type": "JSON_HB", "histogram": _json_hb(
                 ["person0@mail-acme.example", "person3@mail-acme.example", "person6@mail-acme.example"],
                 "person99@mail-acme.example")},
            {"db_name": "shop", "table_name": "orders", "column_name": "made", "min_value": "2021-03-01",
             "max_value": "2023-08-18", "nulls_ratio": "0.0000", "avg_length": "3.0000",
             "avg_frequency": "22.0000", "hist_size": None, "hist_type": None, "histogram": None},
        ],
        "index_stats": [{"db_name": "shop", "table_name": "orders", "index_name": "ix_ce", "prefix_arity": 1,
                         "avg_frequency": "111.1111"}],
        "histograms": [],
    }


def _learned(obj: Dict[str, Any], shape: TableShape, extra=()) -> ValueMaps:
    values = ValueMaps(b"key")
    for c in shape.columns.values():
        values.declare(T, c.name, c.sql_type, c.collation, c.labels)
    stats.learn(obj, shape, values)
    for column, value in extra:
        values.learn(T, column, value)
    values.freeze()
    return values


def test_statistics_statements_map_names_values_and_fix_times():
    obj, shape, names = _obj(), _shape(), Names()
    values = _learned(obj, shape)
    sql = stats.statements(obj, shape, names, values, "mariadb")
    text = "\n".join(sql)
    for original in ("shop", "orders", "ix_ce", "cust", "email", "person", "mail-acme", "2021-03-01",
                     "2026-01", "10.11.6"):
        assert not re.search(rf"(?i)\b{re.escape(original)}\b", text), original
    described = names.name("column", "cust") + "," + names.name("column", "email")
    assert f"'{described}'" in text and "'Number of pages in the index'" in text
    assert "'2000-01-01 00:00:00'" in text
    assert "X'" + bytes(range(0, 254)).hex() + "'" in text            # positions copied as they are
    target = f"`{names.name('schema', 'shop')}`.`{names.name('table', 'orders')}`"
    assert sql[-2].startswith(f"RENAME TABLE {target} TO ") and sql[-1] == f"FLUSH TABLE {target}"
    json_row = next(s for s in sql if "JSON_HB" in s)
    body = json.loads(re.search(r"'(\{.*\})'", json_row).group(1))
    starts = [b["start"] for b in body["histogram_hb"]] + [body["histogram_hb"][-1]["end"]]
    assert starts == sorted(starts) and len(set(starts)) == 4
    assert starts[0] == values.value(T, "email", "person0@mail-acme.example")


def test_mysql_histograms_are_mapped_too():
    shape, names = _shape(), Names()
    doc = {"buckets": [[1, 0.5], [40, 1.0]], "data-type": "int", "histogram-type": "singleton",
           "last-updated": "2026-01-01 00:00:00.000000", "null-values": 0.0}
    strings = {"buckets": [["base64:type254:" + base64.b64encode(b"alice").decode(),
                            "base64:type254:" + base64.b64encode(b"bob").decode(), 1.0, 2]],
               "data-type": "string", "histogram-type": "equi-height"}
    obj = {"histograms": [{"column": "cust", "histogram": doc}, {"column": "email", "histogram": strings}]}
    values = _learned(obj, shape)
    sql = stats.statements(obj, shape, names, values, "mysql")
    assert len(sql) == 3 and sql[-1].startswith("FLUSH TABLE") and "RENAME" not in "".join(sql)
    mapped = json.loads(re.search(r"USING DATA '(.*)'$", sql[0]).group(1))
    assert [b[0] for b in mapped["buckets"]] == [values.value(T, "cust", 1), values.value(T, "cust", 40)]
    assert "YWxpY2U" not in sql[1] and "alice" not in sql[1]


def _break(path: Tuple[Any, ...], value: Any):
    def apply(obj: Dict[str, Any]) -> None:
        target = obj
        for step in path[:-1]:
            target = target[step]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value
    return apply


HOSTILE = {
    "missing n_rows": _break(("innodb_table_stats", "n_rows"), KeyError),
    "text n_rows": _break(("innodb_table_stats", "n_rows"), "many"),
    "negative n_rows": _break(("innodb_table_stats", "n_rows"), -5),
    "huge n_rows": _break(("innodb_table_stats", "n_rows"), 2 ** 70),
    "bool stat_value": _break(("innodb_index_stats", 0, "stat_value"), True),
    "missing stat_description": _break(("innodb_index_stats", 1, "stat_description"), KeyError),
    "short stat_description": _break(("innodb_index_stats", 1, "stat_description"), "cust"),
    "missing index_name": _break(("innodb_index_stats", 0, "index_name"), KeyError),
    "negative cardinality": _break(("table_stats", "cardinality"), -1),
    "text avg_frequency": _break(("column_stats", 0, "avg_frequency"), "lots"),
    "negative nulls_ratio": _break(("column_stats", 0, "nulls_ratio"), "-0.5"),
    "nan avg_length": _break(("column_stats", 0, "avg_length"), "NaN"),
    "bad base64": _break(("column_stats", 0, "histogram_b64"), "!!not base64!!"),
    "huge binary histogram": _break(("column_stats", 0, "histogram_b64"),
                                    base64.b64encode(b"x" * 4000).decode()),
    "hist_size mismatch": _break(("column_stats", 0, "hist_size"), 12),
    "unknown hist_type": _break(("column_stats", 0, "hist_type"), "MAGIC_HB"),
    "binary histogram as text": _break(("column_stats", 0, "histogram_b64"), KeyError),
    "json_hb not json": _break(("column_stats", 1, "histogram"), "{nope"),
    "json_hb no buckets": _break(("column_stats", 1, "histogram"), "{}"),
    "json_hb huge": _break(("column_stats", 1, "histogram"), json.dumps(
        {"histogram_hb": [{"start": str(i), "size": 0.0001, "ndv": 1} for i in range(5000)]})),
    "json_hb bucket text size": _break(("column_stats", 1, "histogram"), json.dumps(
        {"histogram_hb": [{"start": "a", "size": "big", "ndv": 1}]})),
    "min_value a list": _break(("column_stats", 2, "min_value"), ["x"]),
    "missing column_name": _break(("column_stats", 2, "column_name"), KeyError),
    "prefix_arity text": _break(("index_stats", 0, "prefix_arity"), "one"),
    "row not a dict": _break(("index_stats", 0), "row"),
    "rows not a list": _break(("column_stats",), "rows"),
    "prefix stat_name without list": _break(("innodb_index_stats", 2, "stat_description"), ""),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_malformed_statistics_rows_are_one_share_error_line(case):
    obj, shape, names = _obj(), _shape(), Names()
    HOSTILE[case](obj)
    with pytest.raises(ShareError) as caught:
        values = _learned(obj, shape)
        stats.statements(obj, shape, names, values, "mariadb")
        synth.statements(obj, shape, names, values, "mariadb")
    message = str(caught.value)
    assert message and "\n" not in message and len(message) < 200
    assert "person" not in message and "many" not in message and "lots" not in message


def test_a_mysql_histogram_without_buckets_is_a_share_error():
    shape = _shape()
    obj = {"histograms": [{"column": "cust", "histogram": {"buckets": "all"}}]}
    with pytest.raises(ShareError):
        _learned(obj, shape)


# --- synthetic rows -------------------------------------------------------------------------


def test_synthetic_rows_use_the_sequence_engine_and_mapped_values_only():
    obj, shape, names = _obj(), _shape(), Names()
    values = _learned(obj, shape, [("made", "2022-01-01")])
    sql, notes = synth.statements(obj, shape, names, values, "mariadb")
    assert len(sql) == 1 and notes == []
    text = sql[0]
    target = f"`{names.name('schema', 'shop')}`.`{names.name('table', 'orders')}`"
    assert text.startswith(f"INSERT IGNORE INTO {target}")
    assert text.endswith(f"FROM `{names.name('schema', 'shop')}`.seq_1_to_20000")
    for original in ("person", "mail-acme", "2021-03-01", "shop", "orders", "`email`", "`cust`"):
        assert original not in text.casefold()
    # NOT NULL columns never get NULL; the nullable e-mail does, in its nulls_ratio (5%)
    assert text.count("NULL") == 1 and "< 500, NULL" in text


def test_synthetic_rows_are_capped_with_a_note_and_use_a_cte_on_mysql():
    obj, shape, names = _obj(), _shape(), Names()
    values = _learned(obj, shape)
    sql, notes = synth.statements(obj, shape, names, values, "mysql", max_rows=500)
    assert sql[0] == "SET SESSION cte_max_recursion_depth = 501"
    assert "WITH RECURSIVE seq_rows (seq)" in sql[1] and "WHERE seq < 500" in sql[1]
    assert len(notes) == 1 and "500 synthetic rows of 20000" in notes[0] and "orders" not in notes[0]


def test_no_statistics_no_rows():
    shape, names = _shape(), Names()
    values = _learned({}, shape)
    assert synth.statements({}, shape, names, values, "mariadb") == ([], [])
    assert stats.statements({}, shape, names, values, "mariadb") == []
