"""The optimizer's statistics, transplanted: the SQL that installs one table's InnoDB
persistent statistics, MariaDB's engine-independent statistics (EITS) and MySQL's
histograms on a fresh server, with every name and value mapped.

Measured on MariaDB 10.11: REPLACE INTO mysql.innodb_table_stats / innodb_index_stats
followed by FLUSH TABLE does not reload InnoDB's cached statistics; a RENAME TABLE there
and back evicts the cached table and the next open reads them (the rows move with the
name). EITS rows (mysql.table_stats, column_stats, index_stats) are read again at FLUSH
TABLE and are used with the default use_stat_tables=PREFERABLY_FOR_QUERIES and
optimizer_use_condition_selectivity=4. Binary histograms (SINGLE_PREC_HB, DOUBLE_PREC_HB)
hold positions between min_value and max_value, not values: they are copied as they are,
and stay exact because the value maps keep positions (numbers are affine, dates move by
whole 4-year cycles). JSON_HB histograms hold values: their bucket bounds are mapped.

A statistics row is customer input: a missing key, text where a number goes, a negative
count, a histogram too large or not base64 is a ShareError line naming the row and field,
never the value.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Dict, Iterator, List, Optional, Tuple

from report.share.errors import ShareError
from report.share.values import quote

FIXED_TIME = "2000-01-01 00:00:00"
MAX_BUCKETS = 1024
MAX_U64 = 2 ** 64 - 1
_STAT_NAME = re.compile(r"^(?:n_diff_pfx\d{2}|n_leaf_pages|size)$")
_PARTITION = re.compile(r"#(S?P)#", re.IGNORECASE)
_HIDDEN = {"DB_ROW_ID", "DB_TRX_ID", "DB_ROLL_PTR"}
_DESCRIPTIONS = {"n_leaf_pages": "Number of leaf pages in the index", "size": "Number of pages in the index"}
_HIST_TYPES = ("SINGLE_PREC_HB", "DOUBLE_PREC_HB", "JSON_HB")
_MYSQL_STRING = re.compile(r"^base64:type(\d+):(.*)$", re.DOTALL)


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql(value: Any) -> str:
    return "NULL" if value is None else str(value)


def _replace(table: str, cells: Dict[str, str]) -> str:
    return (f"REPLACE INTO mysql.{table} ({', '.join(cells)}) VALUES ({', '.join(cells.values())})")


# --- checked reading of a row -------------------------------------------------------------


def _count(row: Dict[str, Any], key: str, where: str, optional: bool = False,
           most: int = MAX_U64) -> Optional[int]:
    if key not in row:
        if optional:
            return None
        raise ShareError(f"{where}: no {key}")
    value = row[key]
    if value is None:
        if optional:
            return None
        raise ShareError(f"{where}: {key} is NULL")
    if isinstance(value, bool):
        raise ShareError(f"{where}: {key} is not a number")
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,20}\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ShareError(f"{where}: {key} is not a whole number")
    if value < 0 or value > most:
        raise ShareError(f"{where}: {key} is out of range (0 to {most})")
    return value


def _ratio(row: Dict[str, Any], key: str, where: str) -> Optional[str]:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ShareError(f"{where}: {key} is not a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ShareError(f"{where}: {key} is not a number") from None
    if not number.is_finite() or number < 0 or number >= Decimal(10) ** 8:
        raise ShareError(f"{where}: {key} is out of range (0 to 99999999)")
    return format(number.quantize(Decimal("0.0001")), "f")


def _name(row: Dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ShareError(f"{where}: {key} is missing or not a name")
    return value


def _value_text(row: Dict[str, Any], key: str, where: str) -> Optional[str]:
    """A statistics value (min_value, max_value) as text: as given, or its *_b64 form."""
    if row.get(key) is not None:
        value = row[key]
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ShareError(f"{where}: {key} is not text or a number")
        return value if isinstance(value, str) else str(value)
    encoded = row.get(key + "_b64")
    if encoded is None:
        return None
    return _b64(encoded, f"{where}: {key}_b64").decode("utf-8", "replace")


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise ShareError(f"{where} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ShareError(f"{where} is not valid base64") from None


def _rows(obj: Dict[str, Any], key: str) -> List[Dict[str, Any]]:
    rows = obj.get(key) or []
    if not isinstance(rows, list):
        raise ShareError(f"{key} is not a list of rows")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ShareError(f"{key}[{i}] is not a row")
    return rows


def _column(shape: Any, name: str) -> str:
    """The column's name as the shape spells it (statistics may differ in letter case)."""
    if name in shape.columns:
        return name
    folded = name.casefold()
    for known in shape.columns:
        if known.casefold() == folded:
            return known
    return name


def _index(shape: Any, name: str) -> str:
    if name in shape.indexes or name.upper() == "PRIMARY":
        return name
    folded = name.casefold()
    for known in shape.indexes:
        if known.casefold() == folded:
            return known
    return name


# --- histograms ---------------------------------------------------------------------------


def _json_hb(row: Dict[str, Any], where: str) -> Dict[str, Any]:
    text = row.get("histogram")
    if text is None and row.get("histogram_b64") is not None:
        text = _b64(row["histogram_b64"], f"{where}: histogram_b64").decode("utf-8", "replace")
    if not isinstance(text, str):
        raise ShareError(f"{where}: a JSON_HB histogram is not text")
    try:
        doc = json.loads(text)
    except ValueError:
        raise ShareError(f"{where}: the JSON_HB histogram is not valid JSON") from None
    buckets = doc.get("histogram_hb") if isinstance(doc, dict) else None
    if not isinstance(buckets, list):
        raise ShareError(f"{where}: the JSON_HB histogram has no histogram_hb list")
    if len(buckets) > MAX_BUCKETS:
        raise ShareError(f"{where}: the JSON_HB histogram has more than {MAX_BUCKETS} buckets")
    for i, bucket in enumerate(buckets):
        if not isinstance(bucket, dict) or not isinstance(bucket.get("start"), str):
            raise ShareError(f"{where}: JSON_HB bucket {i} has no start")
        if "end" in bucket and not isinstance(bucket["end"], str):
            raise ShareError(f"{where}: JSON_HB bucket {i} has an end that is not text")
        for key in ("size", "ndv"):
            value = bucket.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ShareError(f"{where}: JSON_HB bucket {i} has no valid {key}")
    return doc


def _binary_histogram(row: Dict[str, Any], kind: str, size: Optional[int], where: str) -> bytes:
    raw = row.get("histogram_b64")
    if raw is None:
        if row.get("histogram") is None:
            raise ShareError(f"{where}: {kind} without a histogram")
        raise ShareError(f"{where}: a {kind} histogram must come as histogram_b64")
    data = _b64(raw, f"{where}: histogram_b64")
    if len(data) > 255:
        raise ShareError(f"{where}: the {kind} histogram is longer than 255 bytes")
    if size is not None and size != len(data):
        raise ShareError(f"{where}: hist_size does not match the histogram's length")
    if kind == "DOUBLE_PREC_HB" and len(data) % 2:
        raise ShareError(f"{where}: a DOUBLE_PREC_HB histogram has an odd length")
    return data


def buckets(row: Dict[str, Any], where: str = "column_stats") -> Optional[List[Tuple[float, Any]]]:
    """The histogram of an EITS column_stats row as (cumulative fraction, bound) knots:
    positions (0..1 between min and max) for binary histograms, original values for JSON_HB;
    None without a histogram. The first knot is (0, min)."""
    kind = row.get("hist_type")
    if kind is None:
        return None
    if kind not in _HIST_TYPES:
        raise ShareError(f"{where}: hist_type is not one of {', '.join(_HIST_TYPES)}")
    if kind == "JSON_HB":
        doc = _json_hb(row, where)
        knots: List[Tuple[float, Any]] = []
        total = 0.0
        for bucket in doc["histogram_hb"]:
            knots.append((total, bucket["start"]))
            total += float(bucket["size"])
            if "end" in bucket:
                knots.append((total, bucket["end"]))
        if total <= 0:
            return None
        return [(min(1.0, f / total), v) for f, v in knots]
    data = _binary_histogram(row, kind, _count(row, "hist_size", where, optional=True, most=255), where)
    width = 2 if kind == "DOUBLE_PREC_HB" else 1
    scale = float((1 << (8 * width)) - 1)
    bounds = [int.from_bytes(data[i:i + width], "little") / scale for i in range(0, len(data), width)]
    n = len(bounds)
    if not n:
        return None
    return [(0.0, 0.0)] + [((i + 1) / (n + 1), b) for i, b in enumerate(bounds)] + [(1.0, 1.0)]


def _mysql_buckets(doc: Any, where: str) -> List[Any]:
    if not isinstance(doc, dict) or not isinstance(doc.get("buckets"), list):
        raise ShareError(f"{where}: the histogram has no buckets list")
    if len(doc["buckets"]) > MAX_BUCKETS:
        raise ShareError(f"{where}: the histogram has more than {MAX_BUCKETS} buckets")
    for i, bucket in enumerate(doc["buckets"]):
        if not isinstance(bucket, list) or len(bucket) not in (2, 4):
            raise ShareError(f"{where}: bucket {i} is not a singleton or equi-height bucket")
    return doc["buckets"]


def _mysql_values(doc: Dict[str, Any]) -> Iterator[Tuple[List[Any], int]]:
    for bucket in doc["buckets"]:
        for i in range(len(bucket) - (1 if len(bucket) == 2 else 2)):
            yield bucket, i


def _mysql_decode(value: Any) -> Tuple[Any, Optional[str]]:
    if isinstance(value, str):
        m = _MYSQL_STRING.match(value)
        if m:
            try:
                return base64.b64decode(m.group(2), validate=True).decode("utf-8", "replace"), m.group(1)
            except (binascii.Error, ValueError):
                raise ShareError("a MySQL histogram holds a string bucket that is not base64") from None
    return value, None


# --- learning -----------------------------------------------------------------------------


def learn(obj: Dict[str, Any], shape: Any, values: Any) -> None:
    """Every value the statistics hold (min/max, histogram bounds), learned by its column."""
    table = (shape.schema, shape.name)
    for i, row in enumerate(_rows(obj, "column_stats")):
        where = f"column_stats[{i}]"
        column = _column(shape, _name(row, "column_name", where))
        for key in ("min_value", "max_value"):
            values.learn(table, column, _value_text(row, key, where))
        if row.get("hist_type") == "JSON_HB":
            for _, bound in buckets(row, where) or []:
                values.learn(table, column, bound)
    for i, item in enumerate(obj.get("histograms") or []):
        where = f"histograms[{i}]"
        if not isinstance(item, dict):
            raise ShareError(f"{where} is not an object")
        column = _column(shape, _name(item, "column", where))
        doc = item.get("histogram")
        _mysql_buckets(doc, where)
        if doc.get("data-type") in ("enum", "set"):
            continue
        for bucket, j in _mysql_values(doc):
            values.learn(table, column, _mysql_decode(bucket[j])[0])


# --- the statements -----------------------------------------------------------------------


def statements(obj: Dict[str, Any], shape: Any, names: Any, values: Any, flavor: str) -> List[str]:
    """The SQL installing one table's statistics on a fresh server (see the module docstring)."""
    table = (shape.schema, shape.name)
    schema_m = names.name("schema", shape.schema)
    table_m = names.name("table", shape.name)
    out: List[str] = []
    out += _innodb(obj, shape, names, schema_m, table_m)
    if flavor == "mariadb":
        out += _eits(obj, shape, names, values, table, schema_m, table_m)
    else:
        out += _mysql_histograms(obj, shape, names, values, table, schema_m, table_m)
    if not out:
        return []
    target = f"{_q(schema_m)}.{_q(table_m)}"
    if flavor == "mariadb" and (obj.get("innodb_table_stats") or obj.get("innodb_index_stats")):
        aside = f"{_q(schema_m)}.{_q(table_m + '_0')}"
        out.append(f"RENAME TABLE {target} TO {aside}, {aside} TO {target}")
    out.append(f"FLUSH TABLE {target}")
    return out


def _stats_table(name: str, shape: Any, names: Any, table_m: str, where: str) -> Optional[str]:
    """The mapped table_name of an InnoDB statistics row (`t`, `t#P#p0`, `t#P#p0#SP#s0`);
    None for a row of another table."""
    parts = _PARTITION.split(name)
    if parts[0].casefold() != shape.name.casefold():
        return None
    mapped = table_m
    for i in range(1, len(parts) - 1, 2):
        if not parts[i + 1]:
            raise ShareError(f"{where}: table_name has an empty partition name")
        mapped += f"#{parts[i].upper()}#{names.name('partition', parts[i + 1])}"
    return mapped


def _innodb(obj: Dict[str, Any], shape: Any, names: Any, schema_m: str, table_m: str) -> List[str]:
    out = []
    rows = []
    own = obj.get("innodb_table_stats")
    if own is not None:
        if not isinstance(own, dict):
            raise ShareError("innodb_table_stats is not a row")
        rows.append(("innodb_table_stats", own))
    rows += [(f"innodb_partition_stats[{i}]", r) for i, r in enumerate(_rows(obj, "innodb_partition_stats"))]
    for where, row in rows:
        name = _stats_table(_name(row, "table_name", where), shape, names, table_m, where)
        if name is None:
            continue
        cells = {"database_name": quote(schema_m), "table_name": quote(name),
                 "last_update": f"'{FIXED_TIME}'"}
        for key in ("n_rows", "clustered_index_size", "sum_of_other_index_sizes"):
            cells[key] = _sql(_count(row, key, where))
        out.append(_replace("innodb_table_stats", cells))
    for i, row in enumerate(_rows(obj, "innodb_index_stats")):
        where = f"innodb_index_stats[{i}]"
        name = _stats_table(_name(row, "table_name", where), shape, names, table_m, where)
        if name is None:
            continue
        stat = _name(row, "stat_name", where)
        if not _STAT_NAME.match(stat):
            continue
        index = _name(row, "index_name", where)
        index_m = index if index in ("PRIMARY", "GEN_CLUST_INDEX") else \
            names.name("index", _index(shape, index))
        value = _count(row, "stat_value", where)
        sample = _count(row, "sample_size", where, optional=True)
        if stat.startswith("n_diff_pfx"):
            described = row.get("stat_description")
            if not isinstance(described, str) or not described.strip() or len(described) > 4096:
                raise ShareError(f"{where}: stat_description is not a column list")
            parts = [p.strip() for p in described.split(",")]
            if int(stat[-2:]) != len(parts) or not all(parts):
                raise ShareError(f"{where}: stat_description does not list {int(stat[-2:])} columns")
            description = ",".join(p if p in _HIDDEN else names.name("column", _column(shape, p))
                                   for p in parts)
        else:
            description = _DESCRIPTIONS[stat]
        out.append(_replace("innodb_index_stats", {
            "database_name": quote(schema_m), "table_name": quote(name), "index_name": quote(index_m),
            "last_update": f"'{FIXED_TIME}'", "stat_name": quote(stat), "stat_value": _sql(value),
            "sample_size": _sql(sample), "stat_description": quote(description)}))
    return out


def _eits(obj: Dict[str, Any], shape: Any, names: Any, values: Any, table: Tuple[str, str],
          schema_m: str, table_m: str) -> List[str]:
    out = []
    own = obj.get("table_stats")
    if own is not None:
        if not isinstance(own, dict):
            raise ShareError("table_stats is not a row")
        cardinality = _count(own, "cardinality", "table_stats", optional=True)
        out.append(_replace("table_stats", {"db_name": quote(schema_m), "table_name": quote(table_m),
                                            "cardinality": _sql(cardinality)}))
    for i, row in enumerate(_rows(obj, "column_stats")):
        where = f"column_stats[{i}]"
        column = _column(shape, _name(row, "column_name", where))
        bounds = []
        for key in ("min_value", "max_value"):
            text = _value_text(row, key, where)
            bounds.append("NULL" if text is None else quote(str(values.value(table, column, text))))
        ratios = [_ratio(row, k, where) for k in ("nulls_ratio", "avg_length", "avg_frequency")]
        kind = row.get("hist_type")
        size = _count(row, "hist_size", where, optional=True, most=255)
        if kind is None:
            histogram = "NULL"
        elif kind == "JSON_HB":
            doc = _json_hb(row, where)
            mapped = []
            for bucket in doc["histogram_hb"]:
                item = {"start": str(values.value(table, column, bucket["start"]))}
                if "end" in bucket:
                    item["end"] = str(values.value(table, column, bucket["end"]))
                item["size"], item["ndv"] = bucket["size"], bucket["ndv"]
                mapped.append(item)
            target = doc.get("target_histogram_size")
            if isinstance(target, bool) or not isinstance(target, int):
                target = len(mapped)
            body = {"target_histogram_size": target, "collected_at": FIXED_TIME,
                    "collected_by": "mydiag share", "histogram_hb": mapped}
            histogram = quote(json.dumps(body))
        elif kind in _HIST_TYPES:
            data = _binary_histogram(row, kind, size, where)
            histogram = f"X'{data.hex()}'" if data else "''"
        else:
            raise ShareError(f"{where}: hist_type is not one of {', '.join(_HIST_TYPES)}")
        out.append(_replace("column_stats", {
            "db_name": quote(schema_m), "table_name": quote(table_m),
            "column_name": quote(names.name("column", column)),
            "min_value": bounds[0], "max_value": bounds[1],
            "nulls_ratio": _sql(ratios[0]), "avg_length": _sql(ratios[1]), "avg_frequency": _sql(ratios[2]),
            "hist_size": _sql(size), "hist_type": "NULL" if kind is None else quote(kind),
            "histogram": histogram}))
    for i, row in enumerate(_rows(obj, "index_stats")):
        where = f"index_stats[{i}]"
        index = _name(row, "index_name", where)
        index_m = index if index == "PRIMARY" else names.name("index", _index(shape, index))
        arity = _count(row, "prefix_arity", where, most=64)
        frequency = _ratio(row, "avg_frequency", where)
        out.append(_replace("index_stats", {
            "db_name": quote(schema_m), "table_name": quote(table_m), "index_name": quote(index_m),
            "prefix_arity": _sql(arity), "avg_frequency": _sql(frequency)}))
    return out


def _mysql_histograms(obj: Dict[str, Any], shape: Any, names: Any, values: Any, table: Tuple[str, str],
                      schema_m: str, table_m: str) -> List[str]:
    out = []
    for i, item in enumerate(obj.get("histograms") or []):
        where = f"histograms[{i}]"
        if not isinstance(item, dict):
            raise ShareError(f"{where} is not an object")
        column = _column(shape, _name(item, "column", where))
        doc = json.loads(json.dumps(item.get("histogram")))
        _mysql_buckets(doc, where)
        if doc.get("data-type") not in ("enum", "set"):
            for bucket, j in _mysql_values(doc):
                value, type_code = _mysql_decode(bucket[j])
                mapped = values.value(table, column, value)
                if type_code is not None:
                    mapped = f"base64:type{type_code}:" + base64.b64encode(str(mapped).encode()).decode()
                bucket[j] = mapped
        doc["last-updated"] = FIXED_TIME + ".000000"
        out.append(f"ANALYZE TABLE {_q(schema_m)}.{_q(table_m)} UPDATE HISTOGRAM ON"
                   f" {_q(names.name('column', column))} USING DATA {quote(json.dumps(doc))}")
    return out
