"""What a public repro of a slow statement needs (`mydiag share`, issue 16): the top SELECT
digests by total time, a sample of each with its literals, the DDL and the optimizer's
statistics of every table and view they touch, the optimizer settings and, with the
customer's consent (`mydiag collect --for-share`), each sample's EXPLAIN FORMAT=JSON.

One member, `mysql/share.json` (shape: the issue's contract). Bounded: 10 statements, 30
objects, the table-cache guard's opens; every statement or object that cannot be read
goes to `skipped` (or the statement's `explain_error`) with one line, never failing the
member. EXPLAIN runs only for a single SELECT without INTO or a locking clause, checked by
parsing the sample (and refusing what the parser and the server could read differently),
in the digest's schema and under a statement time limit of its own.

The sample with literals is `sample_sql`, and only with --for-share; `sql` is its fingerprint
(the redaction pipeline reduces every `sql` of a MySQL member to one anyway).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import re
import time
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from collectors.mysql.common import variables
from collectors.mysql.session import MissingPrivilege, NotAvailable, StatementTimeout
from collectors.mysql.sql import Statement
from collectors.mysql.tablecache import guard
from collectors.registry import Artifact, CollectorError, Context, Need, Skip, collector
from privacy.fingerprint import fingerprint

#: The name `mydiag collect --for-share` asks for: it also consents to EXPLAIN.
ASKED = "share"
MAX_STATEMENTS = 10
MAX_OBJECTS = 30
#: Seconds an EXPLAIN may take on the server.
EXPLAIN_LIMIT = 2.0
#: A sample longer than this is not explained (and not parsed).
MAX_SAMPLE = 64 * 1024
SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})

#: Optimizer-relevant settings; every `optimizer_*` variable is added to these.
SETTINGS = (
    "optimizer_switch", "eq_range_index_dive_limit", "sql_mode", "join_buffer_size",
    "sort_buffer_size", "tmp_table_size", "max_heap_table_size", "optimizer_search_depth",
    "optimizer_prune_level", "optimizer_use_condition_selectivity", "use_stat_tables",
    "histogram_type", "histogram_size", "innodb_stats_persistent",
    "innodb_stats_persistent_sample_pages", "innodb_stats_auto_recalc",
    "lower_case_table_names", "character_set_server", "collation_server",
    "join_cache_level", "range_alloc_block_size", "in_predicate_conversion_threshold",
    "max_seeks_for_key", "max_length_for_sort_data", "innodb_page_size",
)

_SYSTEM = "('mysql','information_schema','performance_schema','sys')"
DIGESTS = Statement(
    "share_digests",
    lambda f: (
        "SELECT SCHEMA_NAME AS schema_name, DIGEST AS digest, DIGEST_TEXT AS digest_text,"
        " COUNT_STAR AS calls, SUM_TIMER_WAIT/1e12 AS total_seconds"
        + (", QUERY_SAMPLE_TEXT AS sample" if f.is_mysql_family and f.at_least(8, 0, 3) else "")
        + " FROM performance_schema.events_statements_summary_by_digest"
        " WHERE (DIGEST_TEXT LIKE 'SELECT%%' OR DIGEST_TEXT LIKE 'WITH%%'"
        " OR DIGEST_TEXT LIKE '(%%')"
        f" AND (SCHEMA_NAME IS NULL OR SCHEMA_NAME NOT IN {_SYSTEM})"
        " ORDER BY SUM_TIMER_WAIT DESC LIMIT 100"
    ),
    "select_ps",
)
#: MariaDB keeps no sample in the digest table: the slowest of each digest in the history.
SAMPLES = tuple(
    Statement(
        f"share_samples_{table}",
        "SELECT DIGEST AS digest, CURRENT_SCHEMA AS current_schema, SQL_TEXT AS sql_text"
        f" FROM performance_schema.{table} WHERE DIGEST IN %(digests)s"
        " AND SQL_TEXT IS NOT NULL ORDER BY TIMER_WAIT DESC LIMIT 1000",
        "select_ps",
    )
    for table in ("events_statements_history_long", "events_statements_history")
)
INNODB_TABLE_STATS = Statement(
    "share_innodb_table_stats",
    "SELECT * FROM mysql.innodb_table_stats WHERE database_name = %(s)s"
    " AND (table_name = %(t)s OR LOWER(LEFT(table_name, %(n)s)) = LOWER(%(p)s))",
    "select_stats",
)
INNODB_INDEX_STATS = Statement(
    "share_innodb_index_stats",
    "SELECT * FROM mysql.innodb_index_stats WHERE database_name = %(s)s"
    " AND (table_name = %(t)s OR LOWER(LEFT(table_name, %(n)s)) = LOWER(%(p)s))"
    " ORDER BY table_name, index_name, stat_name",
    "select_stats",
)
EITS = {
    name: Statement(f"share_{name}", f"SELECT * FROM mysql.{name} WHERE db_name = %(s)s"
                    f" AND table_name = %(t)s{order}")
    for name, order in (("table_stats", ""), ("column_stats", " ORDER BY column_name"),
                        ("index_stats", " ORDER BY index_name, prefix_arity"))
}
HISTOGRAMS = Statement(
    "share_histograms",
    "SELECT COLUMN_NAME AS column_name, HISTOGRAM AS histogram"
    " FROM information_schema.COLUMN_STATISTICS WHERE SCHEMA_NAME = %(s)s AND TABLE_NAME = %(t)s",
)
COST_TABLES = tuple(Statement(f"share_{name}", f"SELECT * FROM mysql.{name}")
                    for name in ("server_cost", "engine_cost"))

#: Functions never sent inside an EXPLAIN: the optimizer may evaluate a constant call.
_UNSAFE_FUNCTIONS = frozenset({
    "sleep", "benchmark", "get_lock", "release_lock", "release_all_locks", "is_free_lock",
    "is_used_lock", "load_file", "master_pos_wait", "source_pos_wait", "master_gtid_wait",
    "wait_for_executed_gtid_set", "wait_until_sql_thread_after_gtids", "sys_exec", "sys_eval",
})
#: Text the server executes but the parser would skip (`/*! … */`, `/*M! … */`), or where
#: the two disagree on a comment (`--` before a non-ASCII space), or a NUL.
_LEXICAL_TRAPS = re.compile(r"/\*[!M]|--[^\x00-\x20]|--$|\x00")
_VIEW_BODY = re.compile(r"\bVIEW\s+(?:`(?:[^`]|``)*`\s*\.\s*)?`(?:[^`]|``)*`\s+AS\s+", re.I | re.S)


class _Unreadable(Exception):
    """One part cannot be read here: its one-line reason goes to `skipped`."""


def _line(text: Any) -> str:
    return " ".join(str(text).split())[:300]


def quote(name: str) -> str:
    """A quoted identifier, `%` doubled for the session's parameter formatting."""
    return "`" + name.replace("`", "``").replace("%", "%%") + "`"


@collector("mysql.share", profiles=("full",), needs=[Need.MYSQL], timeout=40, requested=ASKED)
def share(ctx: Context) -> Iterator[Artifact]:
    """The top SELECT digests with samples, the DDL and statistics of what they touch, the
    optimizer settings; EXPLAIN FORMAT=JSON only with --for-share."""
    if str(ctx.session.identity.get("performance_schema", "0")) not in ("1", "ON"):
        raise Skip(
            "performance_schema is OFF: no statement digests to share",
            "set performance_schema=ON in the server's option file (takes effect at restart)",
        )
    flavor = ctx.session.flavor
    settings = variables(ctx)
    lower = str(settings.get("lower_case_table_names", "0")) == "1"
    data: Dict[str, Any] = {
        "format": 1,
        "flavor": "mariadb" if flavor.is_mariadb else "mysql",
        "version": flavor.raw,
        "settings": _settings(settings),
        "cost_tables": {},
        "statements": [],
        "objects": [],
        "skipped": [],
    }
    skipped: List[Dict[str, str]] = data["skipped"]
    if flavor.is_mysql_family:
        for stmt in COST_TABLES:
            rows = _try(ctx, stmt, None, skipped, f"mysql.{stmt.name[6:]}")
            if rows is not None:
                data["cost_tables"][stmt.name[6:]] = [_row(r) for r in rows]
    explain = ASKED in ctx.asked
    statements = _statements(ctx, skipped, lower)
    objects = _objects(ctx, statements, skipped, lower)
    for item in statements:
        item["tables"] = [list(name) for name in item.pop("_touches")]
        if explain:
            _explain(ctx, item)
        else:
            item["explain_error"] = "not asked: EXPLAIN runs only with mydiag collect --for-share"
        data["statements"].append(item)
    data["objects"] = objects
    if not explain:
        for item in data["statements"]:
            item["sample_sql"] = None
    ctx.notes.add(f"{len(statements)} statement(s), {len(objects)} object(s), "
                  f"{len(skipped)} skipped" + ("" if explain else "; no EXPLAIN (--for-share not given)"))
    yield Artifact.json("mysql/share.json", data)


def _settings(settings: Dict[str, Any]) -> Dict[str, str]:
    names = [n for n in SETTINGS if n in settings]
    names += sorted(n for n in settings if n.startswith("optimizer_") and n not in names)
    return {n: str(settings[n]) for n in names}


def _try(ctx: Context, stmt: Statement, params: Optional[Dict[str, Any]],
         skipped: List[Dict[str, str]], what: str,
         timeout: Optional[float] = None) -> Optional[List[Dict[str, Any]]]:
    """Rows of `stmt`, or None with `what` and the reason in `skipped`."""
    try:
        return ctx.session.query(stmt, params, timeout=timeout)
    except (MissingPrivilege, StatementTimeout, NotAvailable) as exc:
        skipped.append({"what": what, "why": _line(exc.reason)})
    except CollectorError as exc:
        if "lost" in exc.reason or "not reachable" in exc.reason:
            raise
        skipped.append({"what": what, "why": _line(exc.reason)})
    return None


# --- statements ----------------------------------------------------------------------


def _statements(ctx: Context, skipped: List[Dict[str, str]], lower: bool) -> List[Dict[str, Any]]:
    rows = ctx.session.query(DIGESTS)
    chosen: List[Dict[str, Any]] = []
    candidates = []
    for row in rows:
        digest = str(row.get("digest") or "")
        if not digest:
            continue
        candidates.append(row)
    samples = _samples(ctx, candidates[:40], skipped) if ctx.session.flavor.is_mariadb else {}
    for row in candidates:
        if len(chosen) >= MAX_STATEMENTS:
            break
        digest, schema = str(row["digest"]), _text(row.get("schema_name"))
        sample = _text(row.get("sample")) or samples.get((digest, schema)) or samples.get((digest, None))
        touched, why = _touched(sample, _text(row.get("digest_text")), schema, lower)
        if why is not None:
            skipped.append({"what": f"digest {digest}", "why": why})
            continue
        if not touched or any(s.lower() in SYSTEM_SCHEMAS for s, _ in touched):
            continue  # mydiag's own reading, an administrator's look at the catalog, `SELECT 1`
        chosen.append({
            "digest": digest, "schema": schema, "digest_text": _text(row.get("digest_text")),
            "calls": row.get("calls"), "total_seconds": row.get("total_seconds"),
            "sql": fingerprint(sample) if sample else None, "sample_sql": sample,
            "explain": None, "explain_error": None,
            "_touches": touched,
        })
        if sample is None:
            skipped.append({"what": f"digest {digest}", "why": "no sample with literals in "
                            "performance_schema (MariaDB: enable the consumers "
                            "events_statements_current and events_statements_history_long)"})
    return chosen


def _touched(sample: Optional[str], digest_text: Optional[str], schema: Optional[str],
             lower: bool) -> Tuple[List[Tuple[str, str]], Optional[str]]:
    """The tables a statement touches, from its sample or else its digest text; or why
    neither parses."""
    why = None
    for text in (sample if sample and len(sample) <= MAX_SAMPLE else None, _digest_as_sql(digest_text)):
        if text:
            try:
                return tables_of(text, schema, lower), None
            except ValueError as exc:
                why = why or f"its text does not parse, so neither its tables nor EXPLAIN ({exc})"
    return [], why


def _samples(ctx: Context, rows: List[Dict[str, Any]],
             skipped: List[Dict[str, str]]) -> Dict[Tuple[str, Optional[str]], str]:
    """The slowest sample of each digest in MariaDB's statement history, by (digest, schema)."""
    found: Dict[Tuple[str, Optional[str]], str] = {}
    digests = tuple(dict.fromkeys(str(r["digest"]) for r in rows))
    if not digests:
        return found
    for stmt in SAMPLES:
        history = _try(ctx, stmt, {"digests": digests}, skipped, stmt.name[14:])
        for row in history or []:
            text = _text(row.get("sql_text"))
            if not text:
                continue
            digest, schema = str(row.get("digest")), _text(row.get("current_schema"))
            found.setdefault((digest, schema), text)
            found.setdefault((digest, None), text)
    return found


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _digest_as_sql(text: Optional[str]) -> Optional[str]:
    """A digest text as something the parser takes (only to name the tables it touches)."""
    if not text:
        return None
    return text.replace("(...)", "(NULL)").replace("?", "NULL")


def tables_of(sql: str, schema: Optional[str], lower: bool = False) -> List[Tuple[str, str]]:
    """The (schema, table) pairs a statement reads, CTE names and INTO targets left out.
    ValueError when the text does not parse."""
    import sqlglot
    from sqlglot import exp

    try:
        trees = [t for t in sqlglot.parse(sql, read="mysql") if t is not None]
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        raise ValueError(_line(str(exc).splitlines()[0] if str(exc) else "cannot parse")) from None
    found: List[Tuple[str, str]] = []
    for tree in trees:
        ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if table.find_ancestor(exp.Into) is not None or not table.name:
                continue
            db = table.db or schema
            if not table.db and table.name.lower() in ctes:
                continue
            if db is None:
                continue
            pair = (db.lower(), table.name.lower()) if lower else (db, table.name)
            if pair not in found:
                found.append(pair)
    return found


def explainable(sql: str) -> Optional[str]:
    """Why `sql` must not be explained (one line), or None for a single plain SELECT."""
    import sqlglot
    from sqlglot import exp

    if len(sql) > MAX_SAMPLE:
        return f"sample longer than {MAX_SAMPLE} characters"
    if _LEXICAL_TRAPS.search(sql):
        return "an executable comment, a NUL or a comment the parser and the server read differently"
    try:
        trees = [t for t in sqlglot.parse(sql, read="mysql") if t is not None]
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else "cannot parse"
        return _line(f"not explained: the sample does not parse as one SELECT ({first})")
    if len(trees) != 1:
        return "not explained: the sample is more than one statement"
    tree = trees[0]
    if not isinstance(tree, (exp.Select, exp.SetOperation)) or isinstance(tree, exp.Command):
        return f"not explained: not a SELECT ({type(tree).__name__})"
    if tree.find(exp.Into) is not None:
        return "not explained: SELECT … INTO"
    if tree.find(exp.Lock) is not None or any(s.args.get("locks") for s in tree.find_all(exp.Select)):
        return "not explained: a locking clause (FOR UPDATE, LOCK IN SHARE MODE)"
    for call in tree.find_all(exp.Func):
        name = (call.name if isinstance(call, exp.Anonymous) else call.sql_name()).lower()
        if name in _UNSAFE_FUNCTIONS:
            return f"not explained: calls {name.upper()}()"
    return None


def _explain(ctx: Context, item: Dict[str, Any]) -> None:
    sql = item.get("sample_sql")
    if not sql:
        item["explain_error"] = "no sample with literals to explain"
        return
    refused = explainable(sql)
    if not refused and ctx.deadline and time.monotonic() > ctx.deadline - EXPLAIN_LIMIT - 2:
        refused = "not explained: the collector's time was up (raise --max-time)"
    if refused:
        item["explain_error"] = refused
        return
    session = ctx.session
    try:
        if item.get("schema"):
            session.query(Statement("share_use", f"USE {quote(item['schema'])}"))
        body = sql.strip().rstrip(";").replace("%", "%%")
        if not session.flavor.is_mariadb:
            # MAX_EXECUTION_TIME bounds the SELECT; the session's max_execution_time stays.
            body = re.sub(r"^\s*(\(?\s*)select\b", rf"\1SELECT /*+ MAX_EXECUTION_TIME("
                          rf"{int(EXPLAIN_LIMIT * 1000)}) */", body, count=1, flags=re.I)
        rows = session.query(Statement("share_explain", "EXPLAIN FORMAT=JSON " + body),
                             timeout=EXPLAIN_LIMIT)
    except (MissingPrivilege, StatementTimeout, NotAvailable) as exc:
        item["explain_error"] = _line(exc.reason)
        return
    except CollectorError as exc:
        if "connection lost" in exc.reason or "lost the connection" in exc.reason:
            raise
        item["explain_error"] = _line(exc.reason)
        return
    text = next(iter(rows[0].values())) if rows else None
    try:
        item["explain"] = json.loads(_text(text) or "")
    except ValueError:
        item["explain_error"] = "the server's EXPLAIN FORMAT=JSON is not JSON"


# --- objects -------------------------------------------------------------------------


def _objects(ctx: Context, statements: List[Dict[str, Any]], skipped: List[Dict[str, str]],
             lower: bool) -> List[Dict[str, Any]]:
    """Every table and view the statements touch (views expanded), within the bounds."""
    objects: Dict[Tuple[str, str], Dict[str, Any]] = {}
    refused: Set[Tuple[str, str]] = set()
    cache = guard(ctx)
    opens = cache.tables_to_open(MAX_OBJECTS)
    for item in statements:
        queue = list(item["_touches"])
        touches: List[Tuple[str, str]] = []
        while queue:
            name = queue.pop(0)
            if name in touches:
                continue
            touches.append(name)
            if name in objects or name in refused:
                obj = objects.get(name)
                queue += [tuple(t) for t in (obj or {}).get("_touches", [])]
                continue
            if ctx.deadline and time.monotonic() > ctx.deadline - 3:
                refused.add(name)
                skipped.append({"what": f"{name[0]}.{name[1]}", "why": "the collector's time was up "
                                "(raise --max-time)"})
                continue
            if len(objects) >= MAX_OBJECTS or len(objects) >= opens:
                refused.add(name)
                bound = MAX_OBJECTS if len(objects) >= MAX_OBJECTS else opens
                skipped.append({"what": f"{name[0]}.{name[1]}", "why": f"past the bound of {bound} "
                                "objects (at most 30, within the table-cache guard's opens)"})
                continue
            obj = _object(ctx, name, skipped, lower)
            if obj is None:
                refused.add(name)
                continue
            objects[name] = obj
            queue += [tuple(t) for t in obj.get("_touches", [])]
        item["_touches"] = touches
    out = []
    for obj in objects.values():
        obj.pop("_touches", None)
        out.append(obj)
    return out


def _object(ctx: Context, name: Tuple[str, str], skipped: List[Dict[str, str]],
            lower: bool) -> Optional[Dict[str, Any]]:
    schema, table = name
    what = f"{schema}.{table}"
    rows = _try(ctx, Statement("share_show_create", f"SHOW CREATE TABLE {quote(schema)}.{quote(table)}"),
                None, skipped, what)
    if not rows:
        return None
    row = rows[0]
    obj: Dict[str, Any] = {
        "schema": schema, "name": table, "kind": "table", "create": None,
        "innodb_table_stats": None, "innodb_index_stats": [], "table_stats": None,
        "column_stats": [], "index_stats": [], "histograms": [],
    }
    if "Create View" in row:
        obj["kind"], obj["create"] = "view", _text(row["Create View"])
        body = _VIEW_BODY.search(obj["create"] or "")
        try:
            obj["_touches"] = tables_of(obj["create"][body.end():], schema, lower) if body else []
        except ValueError as exc:
            skipped.append({"what": what, "why": f"the view's SELECT does not parse ({exc})"})
            obj["_touches"] = []
        return obj
    obj["create"] = _text(row.get("Create Table"))
    params = {"s": schema, "t": table, "p": table + "#p#", "n": len(table) + 3}
    flavor = ctx.session.flavor
    stats = _try(ctx, INNODB_TABLE_STATS, params, skipped, f"{what} innodb_table_stats")
    if stats:
        own = [r for r in stats if r.get("table_name") == table]
        obj["innodb_table_stats"] = _row(own[0]) if own else None
        parts = [_row(r) for r in stats if r.get("table_name") != table]
        if parts:
            obj["innodb_partition_stats"] = parts
    index = _try(ctx, INNODB_INDEX_STATS, params, skipped, f"{what} innodb_index_stats")
    obj["innodb_index_stats"] = [_row(r) for r in index or []]
    if flavor.is_mariadb:
        for key, stmt in EITS.items():
            got = _try(ctx, stmt, params, skipped, f"{what} {key}")
            if key == "table_stats":
                obj[key] = _row(got[0]) if got else None
            else:
                obj[key] = [_row(r) for r in got or []]
    elif flavor.at_least(8, 0, 0):
        for hist in _try(ctx, HISTOGRAMS, params, skipped, f"{what} histograms") or []:
            try:
                parsed = json.loads(_text(hist.get("histogram")) or "")
            except ValueError:
                skipped.append({"what": f"{what} histogram", "why": "not JSON"})
                continue
            obj["histograms"].append({"column": _text(hist.get("column_name")), "histogram": parsed})
    return obj


def _row(row: Dict[str, Any]) -> Dict[str, Any]:
    """A statistics row as JSON: numbers stay numbers, bytes UTF-8 (else `*_b64`), a binary
    histogram `histogram_b64` unless it is JSON_HB."""
    out: Dict[str, Any] = {}
    json_histogram = str(row.get("hist_type") or "").upper() == "JSON_HB"
    for key, value in row.items():
        if key == "histogram" and "hist_type" in row and value is not None and not json_histogram:
            out["histogram_b64"] = base64.b64encode(bytes(value if not isinstance(value, str)
                                                          else value.encode())).decode()
        elif isinstance(value, (bytes, bytearray)):
            try:
                out[key] = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                out[f"{key}_b64"] = base64.b64encode(bytes(value)).decode()
        elif value is None or isinstance(value, (bool, int, float)):
            out[key] = value
        elif isinstance(value, decimal.Decimal):
            out[key] = str(value)
        elif isinstance(value, datetime.datetime):
            out[key] = value.strftime("%Y-%m-%d %H:%M:%S") + (
                f".{value.microsecond:06d}" if value.microsecond else "")
        else:
            out[key] = str(value)
    return out
