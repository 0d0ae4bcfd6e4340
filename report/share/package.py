"""One public repro package from a bundle's share data (`mydiag share`).

`build` picks the statement, finds every object it touches (views expanded to their base
tables), shapes each one, lets the value maps learn every original value (DDL literals,
statistics, the query's literals) and freezes them, then writes, in this order: the
settings, the schemas, the tables, synthetic rows, the transplanted statistics, the views,
and EXPLAIN FORMAT=JSON of the mapped query. It writes nothing to disk: the caller scans
the files for leaks (`Package.scan`), may replay them (report/share/verify.py), and only
then writes them, the private map elsewhere.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from report.share import leaks
from report.share.errors import ShareError
from report.share.source import NoShareData, Source, Statement

#: What a package holds (the public files).
FILES = ("README.md", "repro.sql", "repro.test", "query.sql", "expected_explain.json", "settings.json")

#: Settings a session can set (SET SESSION); what the server takes only globally or at
#: start-up is listed in the README instead. `optimizer_*` settings are session ones too,
#: except the optimizer trace's.
SESSION_SETTINGS = frozenset({
    "optimizer_switch", "eq_range_index_dive_limit", "sql_mode", "join_buffer_size",
    "sort_buffer_size", "tmp_table_size", "max_heap_table_size", "optimizer_search_depth",
    "optimizer_prune_level", "optimizer_use_condition_selectivity", "use_stat_tables",
    "histogram_type", "histogram_size", "join_cache_level", "range_alloc_block_size",
    "in_predicate_conversion_threshold", "max_seeks_for_key", "max_length_for_sort_data",
    "character_set_server", "collation_server",
})
#: Internal names in EXPLAIN that are the server's, not the customer's.
_INTERNAL = re.compile(r"<[a-z_ -]+\d*(?:,\d+)*>|PRIMARY|const|func|NULL", re.I)
#: EXPLAIN members holding names (a string or a list of strings).
#: EXPLAIN members whose strings are the server's own words (every other string is read as a
#: condition: names and literals mapped).
_SERVER_WORDS = frozenset({"access_type", "key_length", "join_type", "buffer_type", "buffer_size",
                           "select_type", "message", "using_temporary_table", "algorithm",
                           "materialization", "strategy", "version", "cost_model"})
_NAME_KEYS = frozenset({"table_name", "key", "possible_keys", "used_key_parts", "used_columns",
                        "partitions", "keys", "index"})

#: The README's fixed text (its words are the package's own vocabulary for the leak scan).
_TEXT = {
    "title": "# A repro of one statement's plan (made by mydiag share)",
    "server": "Server: {flavor} {version}",
    "statement": "Statement: {which}",
    "digest": "the digest {digest} of the customer's workload",
    "given": "a query text given to mydiag share",
    "query": "## The query (names and literals mapped)",
    "run": "## How to run it\n\n`mysql test < repro.sql` on a fresh server of the same flavor and version, "
           "or `mysqltest < repro.test` (it also prints ANALYZE FORMAT=JSON on MariaDB). "
           "`expected_explain.json` is the customer's plan, with every name mapped.",
    "how": "## What was transformed, and how",
    "names": "- Names: every schema, table, view, column, index, constraint, partition and alias is "
             "renamed by a keyed, deterministic map (prefixes s_ t_ v_ c_ i_ k_ p_ a_ and 10 hex "
             "digits); the index name PRIMARY is kept. Types, lengths, nullability, character sets "
             "and collations, key part order, prefix lengths, partitioning and row format are kept; "
             "comments and AUTO_INCREMENT counters are dropped.",
    "values": "- Values: defaults, ENUM and SET labels, CHECK and generated column literals, "
              "partition bounds, statistics bounds and the query's literals are mapped through one "
              "order-preserving map per column, so ranges keep their selectivity (numbers by a keyed "
              "affine map, dates by a whole-day shift, strings by their position between the "
              "column's smallest and largest known value).",
    "stats": "- Statistics: the persistent InnoDB statistics, MariaDB's engine-independent "
             "statistics and MySQL's histograms are transplanted with names and bounds mapped, on "
             "tables with STATS_PERSISTENT=1 STATS_AUTO_RECALC=0.",
    "synth": "- Rows: synthetic rows, in mapped values only, match the row count, the distinct "
             "counts per key prefix and the histogram shape, for the optimizer's index dives.",
    "session": "- Settings: the session settings are set at the top of repro.sql; all are in "
               "settings.json.",
    "global": "- Settings the server takes only globally or at start-up (set them in its option "
              "file): {names}.",
    "objects": "- Objects: {tables} table(s) and {views} view(s).",
    "plan": "## Plan comparison",
    "unverified": "Not verified: this package was not replayed (mydiag share --verify-on DSN).",
    "reproduced": "Reproduced: the replayed plan matches the expected one ({target}).",
    "not_reproduced": "Not reproduced: the replayed plan differs from the expected one ({target}).",
    "no_plan": "The bundle holds no plan of this statement, so there is nothing to compare.",
    "limits": "## What could not be reproduced",
    "nothing": "Nothing known.",
    "skipped": "- {count} object(s) of the customer's workload could not be read when the bundle "
               "was collected.",
    "security_title": "# A security report (made by mydiag share --security)",
    "affected": "Affected versions: {flavor} {version}",
    "component": "Component: {component}",
    "description": "## Description",
    "private": "The repro stays private; ask the reporter for it.",
}


#: The README's fixed text between its placeholders, longest first.
_FIXED_PIECES = sorted({p for t in _TEXT.values() for p in re.split(r"\{\w+\}", t) if len(p.strip()) >= 3},
                       key=len, reverse=True)


class Refused(ShareError):
    """What was asked cannot be built: no such statement, several, or not one SELECT."""


@dataclass
class Package:
    files: Dict[str, bytes]
    private_map: Dict[str, Any]
    notes: List[str]
    flavor: str
    version: str
    #: The mapped query, and the mapped schema it runs in.
    query: str
    schema: Optional[str]
    #: The customer's plan, mapped (None when the bundle has none).
    expected: Optional[Dict[str, Any]]
    needles: List[leaks.Needle] = field(default_factory=list)
    vocabulary: Set[str] = field(default_factory=set)
    readme_lines: Dict[str, Any] = field(default_factory=dict)
    comparison: Any = None

    @property
    def repro_sql(self) -> str:
        return self.files["repro.sql"].decode("utf-8")

    def scan(self, more: Iterable[leaks.Needle] = (), files: Optional[Dict[str, bytes]] = None) -> leaks.Scan:
        """The leak scan of these files (or `files`) against every needle. The README's fixed
        text (ours, word for word) is masked first: "customer's" is not the alias `cust`."""
        chosen = dict(self.files if files is None else files)
        if "README.md" in chosen:
            chosen["README.md"] = mask_fixed_text(chosen["README.md"].decode("utf-8")).encode("utf-8")
        return leaks.scan(chosen, list(self.needles) + list(more), self.vocabulary)

    def verified(self, comparison: Any) -> None:
        """Record a replay's comparison (report/share/verify.py) in the README."""
        self.comparison = comparison
        self.files["README.md"] = _readme(self).encode("utf-8")


def mask_fixed_text(text: str) -> str:
    """`text` with every piece of the README's fixed text replaced by a line break."""
    for piece in _FIXED_PIECES:
        text = text.replace(piece, "\n")
    return text


def vocabulary_of(*texts: str) -> Set[str]:
    return {w.casefold() for text in texts for w in re.findall(r"[\w$]+", text)}


def build(source: Source, key: bytes, digest: Optional[str] = None, query: Optional[str] = None,
          names: Any = None, values: Any = None) -> Package:
    """The package for the statement `digest` (a prefix) or the `query` text; ShareError
    (Refused, NoShareData) with one line when it cannot be built."""
    from report.share import ddl, stats, synth
    from report.share import query as queries
    from report.share.names import NameMap
    from report.share.values import ValueMaps

    names = NameMap(key) if names is None else names
    values = ValueMaps(key) if values is None else values
    stmt, sql, schema = pick(source, digest, query)
    order, views = _objects(source, stmt, sql, schema, queries)
    shapes = {k: ddl.shape(source.objects[k].create, k[0]) for k in order}
    for k, shape in shapes.items():
        for column in shape.columns.values():
            values.declare(k, column.name, column.sql_type, column.collation, column.labels)
    for k, shape in shapes.items():
        obj = source.objects[k]
        if obj.kind == "table":
            for column, value in ddl.literals(obj.create, shape):
                values.learn(k, column, value)
            stats.learn(obj.data, shape, values)
    literal_map_source: List[Tuple[Any, Any]] = []
    for k in views:
        body = view_select(source.objects[k].create)
        if body:
            literal_map_source += queries.literal_columns(body, shapes, k[0])
    query_literals = queries.literal_columns(sql, shapes, schema)
    literal_map_source += query_literals
    for value, target in literal_map_source:
        if target is None:
            values.learn(None, None, value)
        else:
            values.learn(target[0], target[1], value)
    values.freeze()

    flavor = source.flavor
    notes: List[str] = []
    schemas = list(dict.fromkeys(k[0] for k in order))
    mapped_schemas = [names.name("schema", s) for s in schemas]
    mapped_default = names.name("schema", schema) if schema else None
    tables_sql: List[str] = []
    rows_sql: List[str] = []
    stats_sql: List[str] = []
    views_sql: List[str] = []
    for k in order:
        obj, shape = source.objects[k], shapes[k]
        if obj.kind == "view":
            views_sql.append(ddl.rewrite_view(obj.create, shape, names, values, shapes))
            continue
        tables_sql.append(ddl.rewrite_table(obj.create, shape, names, values))
        made, said = synth.statements(obj.data, shape, names, values, flavor)
        rows_sql += made
        notes += said
        stats_sql += stats.statements(obj.data, shape, names, values, flavor)
    mapped_query = queries.rewrite(sql, shapes, schema, names, values).strip().rstrip(";").strip()

    literal_map: Dict[str, str] = {}
    for value, target in literal_map_source:
        mapped = values.loose(value) if target is None else values.sql(target[0], target[1], value)
        literal_map.setdefault(_literal_key(value), mapped)
    expected = None
    if stmt is not None and stmt.explain is not None:
        expected = map_explain(stmt.explain, names, literal_map)

    settings_sql, global_only = _settings(source)
    cost_sql = _cost_tables(source) if flavor == "mysql" else []
    setup = (settings_sql + cost_sql
             + [f"DROP DATABASE IF EXISTS {_quote(s)}" for s in mapped_schemas]
             + [f"CREATE DATABASE {_quote(s)}" for s in mapped_schemas]
             + tables_sql + rows_sql + stats_sql + views_sql
             + ([f"USE {_quote(mapped_default)}"] if mapped_default else []))
    explain = f"EXPLAIN FORMAT=JSON {mapped_query}"
    sql_text = _script(setup + [explain], "-- ")
    test_tail = [explain] + ([f"ANALYZE FORMAT=JSON {mapped_query}"] if flavor == "mariadb" else [])
    test_text = _script(setup + test_tail, "# ")

    private_map = {
        "format": 1,
        "what": "the private map of a mydiag share package: never publish it",
        "made": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "statement": stmt.digest if stmt is not None else None,
        "key": key.hex(),
        "names": names.entries(),
        "values": values.entries(),
    }
    package = Package(
        files={}, private_map=private_map, notes=notes, flavor=flavor, version=source.version,
        query=mapped_query, schema=mapped_default, expected=expected,
    )
    package.readme_lines = {
        "which": ("digest", stmt.digest[:16]) if stmt is not None else ("given", ""),
        "tables": sum(1 for k in order if source.objects[k].kind == "table"),
        "views": len(views), "global": global_only, "skipped": len(source.skipped),
        "has_stats": bool(stats_sql), "has_rows": bool(rows_sql),
    }
    package.files = {
        "repro.sql": sql_text.encode("utf-8"),
        "repro.test": test_text.encode("utf-8"),
        "query.sql": (mapped_query + ";\n").encode("utf-8"),
        "expected_explain.json": (json.dumps(expected, indent=2, sort_keys=True) + "\n").encode("utf-8"),
        "settings.json": (json.dumps(_settings_document(source), indent=2, sort_keys=True, default=str)
                          + "\n").encode("utf-8"),
    }
    package.files["README.md"] = _readme(package).encode("utf-8")
    package.needles = needles(source, shapes, names, values, stmt, sql)
    package.vocabulary = vocabulary_of(*_TEXT.values(), *source.settings.keys(), *source.settings.values())
    return package


def pick(source: Source, digest: Optional[str], query: Optional[str]
         ) -> Tuple[Optional[Statement], str, Optional[str]]:
    """(the statement or None for a --query text, its SQL with literals, its schema)."""
    if query is not None:
        return None, check_query(query), source.default_schema()
    wanted = (digest or "").strip().lower()
    if not wanted or not all(c in "0123456789abcdef" for c in wanted):
        raise Refused("--digest takes the hexadecimal digest of a statement (or a prefix of it)")
    found = [s for s in source.statements if s.digest == wanted]
    found = found or [s for s in source.statements if s.digest.startswith(wanted)]
    if not found:
        listed = ", ".join(s.digest[:12] for s in source.statements[:10]) or "none"
        raise Refused(f"no statement in the bundle has the digest {wanted[:64]} (it has: {listed})")
    if len(found) > 1:
        raise Refused(f"the digest prefix {wanted} matches {len(found)} statements: give more of it")
    stmt = found[0]
    if not stmt.sql:
        raise NoShareData(f"the statement {stmt.digest[:16]} has no sample with literals in the bundle "
                          "(collect with --for-share), or give its text with --query FILE")
    return stmt, check_query(stmt.sql, "the statement's sample"), stmt.schema


def check_query(text: str, what: str = "the --query file") -> str:
    """`text` when it is one SELECT (WITH … SELECT, or a parenthesized one) without INTO."""
    found = leaks.statements(text)
    if len(found) != 1:
        raise Refused(f"{what} holds {len(found)} statements; give exactly one SELECT")
    words = [piece for kind, piece in leaks.segments(found[0]) if kind in ("word", "other")
             and piece.strip()]
    first = words[0].upper() if words else ""
    if first not in ("SELECT", "WITH", "("):
        raise Refused(f"{what} is not a SELECT (it starts with {first[:20] or 'nothing'})")
    if any(w.upper() == "INTO" for w in words):
        raise Refused(f"{what} is a SELECT … INTO; give a plain SELECT")
    return found[0]


def view_select(create: str) -> Optional[str]:
    """The SELECT of a SHOW CREATE VIEW text (None when it has none)."""
    from report.share.ddl import view_body
    try:
        return view_body(create)[1]
    except ShareError:
        return None


def _objects(source: Source, stmt: Optional[Statement], sql: str, schema: Optional[str], queries: Any
             ) -> Tuple[List[Tuple[str, str]], List[Tuple[str, str]]]:
    """Every object the statement touches, base tables first, then views, each view after
    the views it reads."""
    start = list(stmt.tables) if stmt is not None else []
    try:
        start += queries.tables_of(sql, schema)
    except ShareError as exc:
        if stmt is None:
            raise Refused(f"the --query file cannot be read as SQL: {exc}") from None
        if not start:
            raise
    missing: List[str] = []
    tables: List[Tuple[str, str]] = []
    views: List[Tuple[str, str]] = []
    reads: Dict[Tuple[str, str], List[Tuple[str, str]]] = {}
    queue = list(dict.fromkeys(start))
    seen: Set[Tuple[str, str]] = set()
    while queue:
        name = queue.pop(0)
        obj = source.object(*name)
        if obj is None:
            missing.append(f"{name[0]}.{name[1]}")
            continue
        if obj.key in seen:
            continue
        seen.add(obj.key)
        if obj.kind == "table":
            tables.append(obj.key)
            continue
        body = view_select(obj.create)
        if body is None:
            raise ShareError(f"the definition of the view {obj.schema}.{obj.name} has no SELECT")
        reads[obj.key] = [o.key for o in (source.object(*t) for t in queries.tables_of(body, obj.schema))
                          if o is not None]
        missing += [f"{t[0]}.{t[1]}" for t in queries.tables_of(body, obj.schema)
                    if source.object(*t) is None]
        views.append(obj.key)
        queue += queries.tables_of(body, obj.schema)
    if missing:
        shown = ", ".join(dict.fromkeys(missing))
        raise NoShareData(f"the statement reads {shown}, which the bundle holds no definition of "
                          "(see the collector's skipped list: mydiag inspect)")
    if not tables and not views:
        raise Refused("the statement reads no table")
    ordered: List[Tuple[str, str]] = []

    def place(view: Tuple[str, str], path: Tuple[Tuple[str, str], ...]) -> None:
        if view in ordered or view in path:
            return
        for dep in reads.get(view, []):
            if dep in reads:
                place(dep, path + (view,))
        ordered.append(view)

    for view in views:
        place(view, ())
    return tables + ordered, ordered


# --- the plan, mapped --------------------------------------------------------------------


def map_explain(plan: Any, names: Any, literals: Dict[str, str]) -> Any:
    """The customer's EXPLAIN with every name mapped (`names.known`) and every literal in a
    condition replaced by its mapped value, or '?'."""
    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if not isinstance(value, str):
            return value
        if key == "ref":
            return ".".join(_mapped_name(part, names) for part in value.split("."))
        if key in _NAME_KEYS:
            return _mapped_name(value, names)
        if key in _SERVER_WORDS:
            return value
        return map_condition(value, names, literals)
    return walk(plan)


def _mapped_name(name: str, names: Any) -> str:
    if _INTERNAL.fullmatch(name):
        return name
    return names.known(name) or "?"


def map_condition(text: str, names: Any, literals: Dict[str, str]) -> str:
    """A condition of the plan: names (backquoted or bare) through `names.known`, literals through
    `literals` (the query's, mapped), other strings as '?'."""
    out: List[str] = []
    for kind, piece in leaks.segments(text):
        if kind == "name":
            inner = piece.replace("``", "`")
            mapped = inner if _INTERNAL.fullmatch(inner) else (names.known(inner) or "?")
            out.append(_quote(mapped))
        elif kind == "string":
            out.append(literals.get(_literal_key(_unquote(piece)), "'?'"))
        elif kind == "word" and piece[:1].isdigit():
            long_number = sum(c.isdigit() for c in piece) >= leaks.MIN_NUMBER
            out.append(literals.get(_literal_key(piece), "?" if long_number else piece))
        elif kind == "word":
            # MariaDB writes the names in a condition bare (`t.c >= 2`): a known one is mapped.
            out.append(names.known(piece) or piece)
        elif kind == "comment":
            out.append(" ")
        else:
            out.append(piece)
    return "".join(out)


def _literal_key(value: Any) -> str:
    return str(value).casefold()


def _unquote(piece: str) -> str:
    return re.sub(r"\\(.)", r"\1", piece.replace("''", "'").replace('""', '"'))


# --- settings and scripts ----------------------------------------------------------------


def _settings(source: Source) -> Tuple[List[str], List[str]]:
    session: List[str] = []
    other: List[str] = []
    for name in sorted(source.settings):
        low = name.lower()
        if not re.fullmatch(r"[a-z0-9_]{1,64}", low):
            continue
        optimizer = low.startswith("optimizer_") and not low.startswith("optimizer_trace")
        if low in SESSION_SETTINGS or optimizer:
            session.append(f"SET SESSION {low} = {_setting_value(source.settings[name])}")
        else:
            other.append(f"{low}={source.settings[name][:80]}")
    return session, other


def _settings_document(source: Source) -> Dict[str, Any]:
    """Every optimizer setting by name (numbers as numbers), and MySQL's cost tables."""
    found: Dict[str, Any] = {}
    for name, value in source.settings.items():
        found[name.lower()] = int(value) if re.fullmatch(r"-?\d{1,18}", value.strip()) else value
    if any(source.cost_tables.values()):
        found["cost_tables"] = source.cost_tables
    return found


def _setting_value(value: str) -> str:
    if re.fullmatch(r"-?\d+", value.strip()):
        return value.strip()
    return sql_string(value)


def _cost_tables(source: Source) -> List[str]:
    out: List[str] = []
    for table in ("server_cost", "engine_cost"):
        for row in source.cost_tables.get(table, []):
            name, cost = row.get("cost_name"), row.get("cost_value")
            if not isinstance(name, str) or not re.fullmatch(r"[a-z_]{1,64}", name):
                continue
            if not isinstance(cost, (int, float)) and not (isinstance(cost, str) and _is_number(cost)):
                continue
            out.append(f"UPDATE mysql.{table} SET cost_value = {cost} WHERE cost_name = {sql_string(name)}")
    return out + (["FLUSH OPTIMIZER_COSTS"] if out else [])


def _is_number(text: str) -> bool:
    return re.fullmatch(r"-?\d+(\.\d+)?(e[+-]?\d+)?", text.strip(), re.I) is not None


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _script(statements: List[str], comment: str) -> str:
    head = (f"{comment}A repro made by mydiag share: names and values are mapped; see README.md.\n")
    body = "".join(s.strip().rstrip(";").strip() + ";\n" for s in statements if s.strip())
    return head + body


# --- the README ----------------------------------------------------------------------------


def _readme(package: Package) -> str:
    t, info = _TEXT, package.readme_lines
    kind, digest = info["which"]
    flavor = "MariaDB" if package.flavor == "mariadb" else "MySQL"
    which = t["digest"].format(digest=digest) if kind == "digest" else t["given"]
    lines = [t["title"], "", t["server"].format(flavor=flavor, version=package.version),
             t["statement"].format(which=which), "", t["query"], "", "```sql", package.query + ";", "```",
             "", t["run"], "", t["how"], "", t["names"], t["values"]]
    if info["has_stats"]:
        lines.append(t["stats"])
    if info["has_rows"]:
        lines.append(t["synth"])
    lines.append(t["session"])
    if info["global"]:
        lines.append(t["global"].format(names=", ".join(info["global"])))
    lines += [t["objects"].format(tables=info["tables"], views=info["views"]), "", t["plan"], ""]
    comparison = package.comparison
    if package.expected is None:
        lines.append(t["no_plan"])
    elif comparison is None:
        lines.append(t["unverified"])
    else:
        target = comparison.target
        lines.append((t["reproduced"] if comparison.same else t["not_reproduced"]).format(target=target))
        lines += [""] + [f"    {line}" for line in comparison.lines]
    lines += ["", t["limits"], ""]
    limits = [f"- {note}" for note in package.notes]
    if info["skipped"]:
        limits.append(t["skipped"].format(count=info["skipped"]))
    if comparison is not None and not comparison.same:
        limits.append("- The plan (see above).")
    lines += limits or [t["nothing"]]
    return "\n".join(lines) + "\n"


def security_readme(flavor: str, version: str, component: str, description: str) -> bytes:
    t = _TEXT
    name = "MariaDB" if flavor == "mariadb" else "MySQL"
    lines = [t["security_title"], "", t["affected"].format(flavor=name, version=version),
             t["component"].format(component=" ".join(component.split())), "", t["description"], "",
             description.strip(), "", t["private"]]
    return ("\n".join(lines) + "\n").encode("utf-8")


# --- needles -------------------------------------------------------------------------------


def needles(source: Source, shapes: Dict[Tuple[str, str], Any], names: Any, values: Any,
            stmt: Optional[Statement], sql: str) -> List[leaks.Needle]:
    """Every original name and value: those the maps learned, and, independently of them,
    every name of the shapes, of the plan and of the bundle's objects, so that a name a
    rewrite forgot to map is still looked for."""
    found: List[leaks.Needle] = []
    for entry in names.entries():
        if entry.get("original") != entry.get("public"):
            found.append(leaks.Needle(str(entry["original"]), f"{entry.get('kind', 'name')} name"))
    found += [leaks.Needle(str(n), "name") for n in names.originals() if names.known(n) != n]
    for (schema, table), shape in shapes.items():
        found.append(leaks.Needle(schema, "schema name"))
        found.append(leaks.Needle(table, f"{shape.kind} name"))
        found += [leaks.Needle(c, "column name") for c in shape.columns]
        found += [leaks.Needle(i, "index name") for i in shape.indexes if i.upper() != "PRIMARY"]
    for obj in source.objects.values():
        found += [leaks.Needle(obj.schema, "schema name"), leaks.Needle(obj.name, f"{obj.kind} name")]
    if stmt is not None and stmt.schema:
        found.append(leaks.Needle(stmt.schema, "schema name"))
    if stmt is not None and stmt.explain is not None:
        found += [leaks.Needle(n, "name in the plan") for n in _plan_names(stmt.explain)]
    found += [leaks.Needle(str(v), "value", identifier=False) for v in values.originals()]
    found += [leaks.Needle(v, "query literal", identifier=False) for v in _string_literals(sql)]
    for item in source.skipped:
        what = item.get("what", "")
        for part in re.split(r"[.\s]+", what):
            if part and part not in ("digest",) and not re.fullmatch(r"[0-9a-f]{16,}", part):
                found.append(leaks.Needle(part, "name"))
    return [n for n in found if n.text]


def _plan_names(plan: Any) -> Iterable[str]:
    if isinstance(plan, dict):
        for key, value in plan.items():
            if key in _NAME_KEYS or key == "ref":
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str):
                        for part in item.split(".") if key == "ref" else [item]:
                            if not _INTERNAL.fullmatch(part):
                                yield part
            else:
                yield from _plan_names(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from _plan_names(item)


def _string_literals(sql: str) -> List[str]:
    return [_unquote(piece) for kind, piece in leaks.segments(sql) if kind == "string"]
