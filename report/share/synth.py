"""Synthetic rows for index dives.

MariaDB and MySQL estimate a range on an index by diving into the index itself
(records_in_range), not from statistics: a fresh table needs rows shaped like the
customer's. One INSERT ... SELECT over MariaDB's sequence engine (`seq_1_to_N`, measured
present in 10.11) or a recursive CTE on MySQL writes N rows (the statistics' row count,
capped) where row s of each column takes

    r = MOD(FLOOR((s - 1) * G / N), m)       m: the column's distinct count, G: its grouping
    p = (r + 0.5) / m                        its position in the column's distribution
    value = Q(p)                             Q: the column's quantile function, mapped space

Q is read from the column's histogram (binary histograms give positions between the
mapped min and max, JSON_HB mapped bounds), else linear between the mapped min and max,
resampled to K equal-height segments and written with ELT(). G is m for a column that
leads an index (its rows sorted, so prefix counts follow), and the index's prefix count
n_diff_pfxNN for a later key part, so that (a, b) has about as many distinct pairs as the
customer's. Unique and primary key columns get distinct values; NOT NULL columns never get
NULL; nullable ones get NULL in the column's nulls_ratio. INSERT IGNORE keeps the load
going where the shape cannot be met exactly (a duplicate after rounding is dropped).
Values come only from the value maps: nothing here reads an original value into the SQL.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any, Dict, List, Optional, Tuple

from report.share import stats
from report.share.errors import ShareError
from report.share.values import quote

#: Equal-height segments of a quantile function.
SEGMENTS = 64
_EPOCH = datetime.datetime(2000, 1, 1)


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _fold(name: str) -> str:
    return name.casefold()


def row_count(obj: Dict[str, Any]) -> Optional[int]:
    """The table's row count by its statistics: EITS cardinality, else InnoDB's n_rows (the
    partitions' sum for a partitioned table); None when neither is there."""
    own = obj.get("table_stats")
    if isinstance(own, dict) and own.get("cardinality") is not None:
        return stats._count(own, "cardinality", "table_stats")
    innodb = obj.get("innodb_table_stats")
    if isinstance(innodb, dict):
        return stats._count(innodb, "n_rows", "innodb_table_stats")
    parts = stats._rows(obj, "innodb_partition_stats")
    if parts:
        return sum(stats._count(r, "n_rows", f"innodb_partition_stats[{i}]") or 0
                   for i, r in enumerate(parts))
    return None


def _prefix_counts(obj: Dict[str, Any], shape: Any) -> Dict[str, Dict[int, float]]:
    """index (folded) -> prefix length -> distinct count, from InnoDB's n_diff_pfxNN and
    EITS index_stats (rows / avg_frequency), over the customer's row count."""
    counts: Dict[str, Dict[int, float]] = {}
    for i, row in enumerate(stats._rows(obj, "innodb_index_stats")):
        where = f"innodb_index_stats[{i}]"
        stat = row.get("stat_name")
        table = row.get("table_name")
        if not isinstance(stat, str) or not stat.startswith("n_diff_pfx") or table != shape.name:
            continue
        index = stats._name(row, "index_name", where)
        value = stats._count(row, "stat_value", where)
        counts.setdefault(_fold(index), {})[int(stat[-2:])] = float(value or 0)
    return counts


def _eits_prefix(obj: Dict[str, Any], rows: int) -> Dict[str, Dict[int, float]]:
    counts: Dict[str, Dict[int, float]] = {}
    for i, row in enumerate(stats._rows(obj, "index_stats")):
        where = f"index_stats[{i}]"
        index = stats._name(row, "index_name", where)
        arity = stats._count(row, "prefix_arity", where, most=64) or 0
        frequency = stats._ratio(row, "avg_frequency", where)
        if frequency is not None and Decimal(frequency) > 0:
            counts.setdefault(_fold(index), {})[arity] = rows / float(frequency)
    return counts


class _Plan:
    """What one column's values follow: distinct count m, grouping G, uniqueness."""

    def __init__(self, m: int, group: int, unique: bool) -> None:
        self.m, self.group, self.unique = m, group, unique


def statements(obj: Dict[str, Any], shape: Any, names: Any, values: Any, flavor: str,
               max_rows: int = 200_000) -> Tuple[List[str], List[str]]:
    """(SQL, notes) writing the synthetic rows of one table (see the module docstring)."""
    if getattr(shape, "kind", "table") != "table":
        return [], []
    original = row_count(obj)
    if not original:
        return [], []
    notes: List[str] = []
    n = original
    if n > max_rows:
        n = max_rows
        notes.append(f"table {names.name('table', shape.name)}: {max_rows} synthetic rows of {original}"
                     " (capped); index dives see a smaller table, the statistics keep the real counts")
    scale = n / original
    table = (shape.schema, shape.name)
    column_stats = {}
    for i, row in enumerate(stats._rows(obj, "column_stats")):
        column_stats[_fold(stats._name(row, "column_name", f"column_stats[{i}]"))] = (i, row)
    prefix = _eits_prefix(obj, original)
    for index, got in _prefix_counts(obj, shape).items():
        prefix.setdefault(index, {}).update(got)
    plans = _plans(shape, column_stats, prefix, original, scale, n)
    columns: List[str] = []
    exprs: List[str] = []
    for column in shape.columns.values():
        if column.generated:
            continue
        plan = plans.get(_fold(column.name)) or _Plan(min(n, 1000), min(n, 1000), False)
        kind = values.kind(table, column.name)
        if kind is None:
            continue
        found = column_stats.get(_fold(column.name))
        where, row = (f"column_stats[{found[0]}]", found[1]) if found else ("column_stats", {})
        expr = _expression(values, table, column, kind, plan, row, where, n)
        if expr is None:
            continue
        ratio = stats._ratio(row, "nulls_ratio", where) if row else None
        if column.nullable and ratio is not None and float(ratio) > 0 and not plan.unique:
            expr = f"IF(MOD(seq * 7919, 10000) < {int(round(float(ratio) * 10000))}, NULL, {expr})"
        columns.append(_q(names.name("column", column.name)))
        exprs.append(f"{expr}")
    if not columns:
        return [], notes
    target = f"{_q(names.name('schema', shape.schema))}.{_q(names.name('table', shape.name))}"
    head = f"INSERT IGNORE INTO {target} ({', '.join(columns)})"
    body = f"SELECT {', '.join(exprs)}"
    if flavor == "mariadb":
        sql = [f"{head} {body} FROM {_q(names.name('schema', shape.schema))}.seq_1_to_{n}"]
    else:
        sql = [f"SET SESSION cte_max_recursion_depth = {n + 1}",
               f"{head} WITH RECURSIVE seq_rows (seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM seq_rows"
               f" WHERE seq < {n}) {body} FROM seq_rows"]
    return sql, notes


def _plans(shape: Any, column_stats: Dict[str, Tuple[int, Dict[str, Any]]],
           prefix: Dict[str, Dict[int, float]], original: int, scale: float, n: int) -> Dict[str, _Plan]:
    def distinct(name: str) -> Optional[float]:
        found = column_stats.get(name)
        if found:
            row = found[1]
            where = f"column_stats[{found[0]}]"
            frequency = stats._ratio(row, "avg_frequency", where)
            nulls = stats._ratio(row, "nulls_ratio", where)
            if frequency is not None and float(frequency) > 0:
                return original * (1 - float(nulls or 0)) / float(frequency)
        return None

    def clamp(x: float) -> int:
        return max(1, min(n, int(round(x))))

    plans: Dict[str, _Plan] = {}
    unique = {_fold(u) for u in shape.unique} | ({"primary"} if shape.primary else set())
    for index, parts in shape.indexes.items():
        counts = prefix.get(_fold(index), {})
        is_unique = _fold(index) in unique or index.upper() == "PRIMARY"
        for k, (column, _length) in enumerate(parts, 1):
            name = _fold(column)
            last = k == len(parts)
            own = distinct(name)
            if k == 1:
                m = own if own is not None else counts.get(1)
                m = original if (is_unique and last) else (m if m is not None else min(original, 1000))
                plan = _Plan(clamp(m * scale), clamp(m * scale), is_unique and last)
                old = plans.get(name)
                if old is None or old.group != old.m or plan.unique:
                    plans[name] = plan
                continue
            if name in plans and plans[name].group == plans[name].m:
                continue
            group = original if (is_unique and last) else counts.get(k, own or original)
            m = own if own is not None else group
            plans[name] = _Plan(clamp(m * scale), clamp(group * scale), is_unique and last)
    for name in (_fold(c) for c in shape.primary):
        if len(shape.primary) == 1:
            plans[name] = _Plan(n, n, True)
    for column in shape.columns:
        name = _fold(column)
        if name not in plans:
            own = distinct(name)
            m = clamp(own * scale) if own is not None else min(n, 1000)
            plans[name] = _Plan(m, m, False)
    return plans


def _expression(values: Any, table: Tuple[str, str], column: Any, kind: str, plan: _Plan,
                row: Dict[str, Any], where: str, n: int) -> Optional[str]:
    m, group = plan.m, plan.group
    if kind in ("int", "decimal"):
        bounds = values.column_range(table, column.name)
        if bounds is not None:
            m = max(1, min(m, int(min(bounds[1] - bounds[0] + 1, Decimal(n)))))
    if kind == "enum":
        m = max(1, min(m, len(column.labels) or 1))
    r = f"MOD(FLOOR((seq - 1) * {group} / {n}), {m})"
    p = f"(({r} + 0.5) / {m})"
    if kind == "enum":
        return f"1 + {r}"
    if kind == "set":
        return "1"
    if kind == "string":
        return _string(values, table, column, plan, row, where, r, p, m)
    knots = _numeric_knots(values, table, column, kind, row, where)
    if knots is None:
        knots = _default_knots(values, table, column, kind, m)
    expr = _piecewise(knots, p)
    if kind in ("int", "decimal"):
        lo_v, hi_v = knots[0], knots[-1]
        if plan.unique and kind == "int":
            width = int(hi_v - lo_v) + 1
            if width > m:
                expr = f"{int(lo_v)} + {r} + FLOOR(({expr} - {int(lo_v)}) * {width - m} / {width})"
            else:
                expr = f"{int(lo_v)} + {r}"
        else:
            # on the map's lattice a*x + b: an equality's literal finds the rows of its value
            a, b = values.affine(table, column.name) or (1, 0)
            unit = Decimal(1).scaleb(-_scale(column.sql_type)) if kind == "decimal" else Decimal(1)
            step = Decimal(a) * unit
            expr = f"({b} + {step} * ROUND(({expr} - {b}) / {step}))"
        bounds = values.column_range(table, column.name)
        if bounds is not None:
            expr = f"LEAST({bounds[1]}, GREATEST({bounds[0]}, {expr}))"
        return expr
    if kind == "float":
        return expr
    if kind == "date":
        return f"FROM_DAYS(ROUND({expr}))"
    if kind == "datetime":
        return f"TIMESTAMPADD(SECOND, ROUND({expr}), '{_EPOCH:%Y-%m-%d %H:%M:%S}')"
    if kind == "time":
        return f"SEC_TO_TIME(ROUND({expr}))"
    return None


def _piecewise(knots: List[float], p: str) -> str:
    """Q(p) for K equal-height segments between knots[0..K] (linear inside each)."""
    k = len(knots) - 1
    if k < 1 or knots[0] == knots[-1]:
        return _number(knots[0])
    seg = f"LEAST({k - 1}, FLOOR({p} * {k}))"
    starts = ", ".join(_number(v) for v in knots[:-1])
    steps = ", ".join(_number(knots[i + 1] - knots[i]) for i in range(k))
    return f"(ELT({seg} + 1, {starts}) + ELT({seg} + 1, {steps}) * ({p} * {k} - {seg}))"


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value)) if isinstance(value, float) else str(value)


def _resample(points: List[Tuple[float, float]], segments: int = SEGMENTS) -> List[float]:
    """Equal-height knots of a quantile function given as (fraction, value) points."""
    points = sorted(points)
    out = []
    for j in range(segments + 1):
        f = j / segments
        for i in range(1, len(points)):
            f0, v0 = points[i - 1]
            f1, v1 = points[i]
            if f <= f1 or i == len(points) - 1:
                out.append(v0 if f1 <= f0 else v0 + (v1 - v0) * min(1.0, max(0.0, (f - f0) / (f1 - f0))))
                break
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1])
    return out


def _to_axis(kind: str, mapped: Any) -> Optional[float]:
    """A mapped value on the axis the SQL interpolates on: the number, days (FROM_DAYS),
    seconds from 2000-01-01, seconds of a TIME."""
    if mapped is None:
        return None
    text = str(mapped).strip()
    try:
        if kind in ("int", "decimal", "float"):
            return float(Decimal(text))
        if kind == "date":
            return float(datetime.date.fromisoformat(text[:10]).toordinal() + 365)
        if kind == "datetime":
            moment = datetime.datetime.fromisoformat(text[:19] if len(text) >= 19 else text[:10])
            return (moment - _EPOCH).total_seconds()
        if kind == "time":
            sign = -1 if text.startswith("-") else 1
            h, mi, s = text.lstrip("-").split(".")[0].split(":")
            return float(sign * (int(h) * 3600 + int(mi) * 60 + int(s)))
    except (ValueError, ArithmeticError):
        return None
    return None


def _position_number(kind: str, mapped: Any) -> Optional[float]:
    """MariaDB's position axis of a value (the number; a date's YYYYMMDD[hhmmss] number)."""
    text = str(mapped).strip()
    if kind in ("date", "datetime"):
        digits = "".join(ch for ch in text.split(".")[0] if ch.isdigit())
        return float(digits[:8] if kind == "date" else digits[:14].ljust(14, "0")) if digits else None
    if kind == "time":
        return _to_axis(kind, mapped)
    return _to_axis(kind, mapped)


def _from_position(kind: str, number: float) -> float:
    """The interpolation axis value of a YYYYMMDD[hhmmss] number (clamped to a real date)."""
    if kind not in ("date", "datetime"):
        return number
    whole = int(round(number))
    if kind == "datetime":
        date_part, clock = divmod(whole, 1_000_000)
    else:
        date_part, clock = whole, 0
    year, rest = divmod(date_part, 10000)
    month, day = divmod(rest, 100)
    year = max(1000, min(9999, year))
    month = max(1, min(12, month))
    while day > 28:
        try:
            datetime.date(year, month, day)
            break
        except ValueError:
            day -= 1
    day = max(1, day)
    hour, rest = divmod(clock, 10000)
    minute, second = divmod(rest, 100)
    moment = datetime.datetime(year, month, day, min(hour, 23), min(minute, 59), min(second, 59))
    if kind == "date":
        return float(moment.date().toordinal() + 365)
    return (moment - _EPOCH).total_seconds()


def _numeric_knots(values: Any, table: Tuple[str, str], column: Any, kind: str,
                   row: Dict[str, Any], where: str) -> Optional[List[float]]:
    if not row:
        return None
    low = stats._value_text(row, "min_value", where)
    high = stats._value_text(row, "max_value", where)
    if low is None or high is None:
        return None
    mapped_low, mapped_high = values.value(table, column.name, low), values.value(table, column.name, high)
    hist = stats.buckets(row, where)
    if row.get("hist_type") == "JSON_HB" and hist:
        points = []
        for f, bound in hist:
            axis = _to_axis(kind, values.value(table, column.name, bound))
            if axis is not None:
                points.append((f, axis))
        if len(points) >= 2:
            return _resample(points)
    lo_n, hi_n = _position_number(kind, mapped_low), _position_number(kind, mapped_high)
    if lo_n is None or hi_n is None or hi_n < lo_n:
        raise ShareError(f"{where}: min_value and max_value are not values of the column's type in order")
    hist = hist or [(0.0, 0.0), (1.0, 1.0)]
    points = [(f, _from_position(kind, lo_n + pos * (hi_n - lo_n))) for f, pos in hist]
    return _resample(points)


def _default_knots(values: Any, table: Tuple[str, str], column: Any, kind: str, m: int) -> List[float]:
    """Without statistics: the m values from the mapped image of 0 upwards (numbers), of
    2000-01-01 onwards (dates), a span of hours (times)."""
    if kind in ("int", "decimal", "float"):
        start = _to_axis(kind, values.value(table, column.name, "0")) or 0.0
        bounds = values.column_range(table, column.name)
        end = start + m - 1
        if bounds is not None and end > float(bounds[1]):
            start, end = max(float(bounds[0]), float(bounds[1]) - m + 1), float(bounds[1])
        return [start, end]
    if kind == "date":
        start = _to_axis(kind, values.value(table, column.name, "2000-01-01")) or 730485.0
        return [start, start + min(m, 3650)]
    if kind == "datetime":
        start = _to_axis(kind, values.value(table, column.name, "2000-01-01 00:00:00")) or 0.0
        return [start, start + 86400.0 * min(m, 3650)]
    return [0.0, float(min(m, 86399))]


def _string(values: Any, table: Tuple[str, str], column: Any, plan: _Plan, row: Dict[str, Any], where: str,
            r: str, p: str, m: int) -> str:
    maxlen = _length(column.sql_type)
    digits = max(1, len(str(m - 1)))
    room = max(1, maxlen - digits)
    knots: List[str] = []
    hist = stats.buckets(row, where) if row and row.get("hist_type") == "JSON_HB" else None
    if hist:
        points = [(f, str(values.value(table, column.name, bound))) for f, bound in hist]
        for j in range(SEGMENTS):
            f = j / SEGMENTS
            chosen = points[0][1]
            for fp, text in points:
                if fp <= f:
                    chosen = text
            knots.append(chosen)
    else:
        knots = [values.at(table, column.name, j / SEGMENTS) or "a" for j in range(SEGMENTS)]
    knots = [k[:room] for k in knots]
    seg = f"LEAST({SEGMENTS - 1}, FLOOR({p} * {SEGMENTS}))"
    body = ", ".join(quote(k) for k in knots)
    if maxlen < digits:
        return f"LPAD({r}, {maxlen}, '0')"
    if column.sql_type.lower().startswith("json"):
        return f"CONCAT('[', {r}, ']')"
    return f"CONCAT(ELT({seg} + 1, {body}), LPAD({r}, {digits}, '0'))"


def _length(sql_type: str) -> int:
    text = sql_type.lower()
    if text.startswith(("char", "varchar", "binary", "varbinary")) and "(" in text:
        try:
            return max(1, int(text.split("(", 1)[1].split(")", 1)[0]))
        except ValueError:
            return 255
    return 255 if "tiny" in text or text.startswith(("text", "blob", "mediumtext", "longtext", "json",
                                                                 "mediumblob", "longblob")) else 64


def _scale(sql_type: str) -> int:
    text = sql_type.lower()
    if "," in text and "(" in text:
        try:
            return int(text.split(",", 1)[1].split(")", 1)[0])
        except ValueError:
            return 0
    return 0
