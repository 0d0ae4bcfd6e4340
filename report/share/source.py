"""The bundle member `mysql/share.json`, read and checked into dataclasses.

The member is customer input like every other: each field is checked for its type and
bounded in size before anything uses it, and a wrong shape is one ShareError line that
names the field (never its value). Statistics rows are kept as the checked dicts the
statistics and synthetic-row modules read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from report.share.errors import ShareError

MEMBER = "mysql/share.json"
NO_DATA = "this bundle has no share data (collect with --for-share)"
#: Bounds on what one member may hold (the collector writes far less: 10 statements, 30 objects).
MAX_STATEMENTS = 100
MAX_OBJECTS = 200
MAX_ROWS = 20_000
MAX_NAME = 64 * 4
MAX_SQL = 256 * 1024
MAX_CREATE = 1 << 20
MAX_TEXT = 1 << 20
MAX_DEPTH = 48
MAX_SETTINGS = 400
_ROW_LISTS = ("innodb_index_stats", "column_stats", "index_stats", "innodb_partition_stats")


class NoShareData(ShareError):
    """The bundle holds nothing to build a package from (no member, or no sample to use)."""


@dataclass
class Statement:
    digest: str
    schema: Optional[str]
    digest_text: Optional[str]
    sql: Optional[str]
    explain: Optional[Dict[str, Any]]
    explain_error: Optional[str]
    tables: List[Tuple[str, str]]


@dataclass
class Object:
    schema: str
    name: str
    kind: str
    create: str
    #: The checked member object (statistics rows by their server column names), as the
    #: statistics and synthetic-row modules take it.
    data: Dict[str, Any]

    @property
    def key(self) -> Tuple[str, str]:
        return (self.schema, self.name)


@dataclass
class Source:
    flavor: str
    version: str
    settings: Dict[str, str]
    cost_tables: Dict[str, List[Dict[str, Any]]]
    statements: List[Statement]
    objects: Dict[Tuple[str, str], Object]
    skipped: List[Dict[str, str]] = field(default_factory=list)

    def object(self, schema: str, name: str) -> Optional[Object]:
        """The object by name; schema and table names compared as the server would on a
        case-insensitive file system when there is no exact match."""
        found = self.objects.get((schema, name))
        if found is not None:
            return found
        folded = (schema.casefold(), name.casefold())
        for key, obj in self.objects.items():
            if (key[0].casefold(), key[1].casefold()) == folded:
                return obj
        return None

    def default_schema(self) -> Optional[str]:
        """The schema most statements ran in (for a --query text without one)."""
        counts: Dict[str, int] = {}
        for stmt in self.statements:
            if stmt.schema:
                counts[stmt.schema] = counts.get(stmt.schema, 0) + 1
        if counts:
            return max(sorted(counts), key=lambda s: counts[s])
        schemas = sorted({o.schema for o in self.objects.values()})
        return schemas[0] if len(schemas) == 1 else None


def load(bundle: Any) -> Source:
    """The share data of a report.model.Bundle; ShareError when absent or malformed."""
    if not bundle.has(MEMBER):
        raise NoShareData(NO_DATA)
    data = bundle.json(MEMBER)
    if data is None:
        raise ShareError(f"{MEMBER} is not valid JSON (or nests too deep, or is too big to read)")
    return parse(data)


def parse(data: Any) -> Source:
    """The checked Source of a parsed share.json document."""
    top = _dict(data, "the member")
    if top.get("format") != 1:
        raise ShareError(f"{MEMBER}: format {_shown(top.get('format'))} is not one this version reads (1)")
    flavor = _text(top.get("flavor"), "flavor", 20)
    if flavor not in ("mariadb", "mysql"):
        raise ShareError(f"{MEMBER}: flavor must be mariadb or mysql")
    version = _text(top.get("version"), "version", 200)
    settings = _dict(top.get("settings", {}), "settings")
    if len(settings) > MAX_SETTINGS:
        raise ShareError(f"{MEMBER}: settings: more than {MAX_SETTINGS} entries")
    checked_settings = {}
    for name, value in settings.items():
        checked_settings[_text(name, "settings (a name)", 200)] = _text(
            value if not isinstance(value, (int, float)) or isinstance(value, bool) else str(value),
            "settings." + name[:40], 64 * 1024)
    cost = _dict(top.get("cost_tables") or {}, "cost_tables")
    cost_tables = {_text(k, "cost_tables (a name)", 64): _rows(v, f"cost_tables.{k[:40]}")
                   for k, v in cost.items()}
    statements = [_statement(item, i) for i, item in
                  enumerate(_list(top.get("statements", []), "statements", MAX_STATEMENTS))]
    objects: Dict[Tuple[str, str], Object] = {}
    for i, item in enumerate(_list(top.get("objects", []), "objects", MAX_OBJECTS)):
        obj = _object(item, i)
        objects.setdefault(obj.key, obj)
    skipped = []
    for i, item in enumerate(_list(top.get("skipped", []) or [], "skipped", 10_000)):
        entry = _dict(item, f"skipped[{i}]")
        skipped.append({"what": _text(entry.get("what", ""), f"skipped[{i}].what", 2000),
                        "why": _text(entry.get("why", ""), f"skipped[{i}].why", 2000)})
    return Source(flavor, version, checked_settings, cost_tables, statements, objects, skipped)


def _statement(item: Any, i: int) -> Statement:
    where = f"statements[{i}]"
    entry = _dict(item, where)
    digest = _text(entry.get("digest"), f"{where}.digest", 200)
    if not digest or not all(c in "0123456789abcdefABCDEF" for c in digest):
        raise ShareError(f"{MEMBER}: {where}.digest is not a hexadecimal digest")
    # The collector's sample with literals is `sample_sql` (the pipeline turns `sql` into a
    # fingerprint); `sql` is read when a sample is absent.
    sql = _optional_text(entry.get("sample_sql"), f"{where}.sample_sql", MAX_SQL)
    if sql is None:
        sql = _optional_text(entry.get("sql"), f"{where}.sql", MAX_SQL)
    explain = entry.get("explain")
    if explain is not None:
        explain = _dict(explain, f"{where}.explain")
        _bounded(explain, f"{where}.explain")
    tables = []
    for j, pair in enumerate(_list(entry.get("tables", []) or [], f"{where}.tables", 1000)):
        tables.append(_pair(pair, f"{where}.tables[{j}]"))
    return Statement(
        digest=digest.lower(),
        schema=_optional_text(entry.get("schema"), f"{where}.schema", MAX_NAME),
        digest_text=_optional_text(entry.get("digest_text"), f"{where}.digest_text", MAX_SQL),
        sql=sql, explain=explain,
        explain_error=_optional_text(entry.get("explain_error"), f"{where}.explain_error", 2000),
        tables=tables,
    )


def _object(item: Any, i: int) -> Object:
    where = f"objects[{i}]"
    entry = _dict(item, where)
    schema = _text(entry.get("schema"), f"{where}.schema", MAX_NAME)
    name = _text(entry.get("name"), f"{where}.name", MAX_NAME)
    if not schema or not name:
        raise ShareError(f"{MEMBER}: {where}: an empty schema or name")
    kind = entry.get("kind")
    if kind not in ("table", "view"):
        raise ShareError(f"{MEMBER}: {where}.kind must be table or view")
    create = _text(entry.get("create"), f"{where}.create", MAX_CREATE)
    data: Dict[str, Any] = {"schema": schema, "name": name, "kind": kind, "create": create}
    for key in ("innodb_table_stats", "table_stats"):
        row = entry.get(key)
        data[key] = None if row is None else _row(row, f"{where}.{key}")
    for key in _ROW_LISTS:
        data[key] = _rows(entry.get(key) or [], f"{where}.{key}")
    histograms = []
    for j, hist in enumerate(_list(entry.get("histograms") or [], f"{where}.histograms", 4096)):
        got = _dict(hist, f"{where}.histograms[{j}]")
        column = _text(got.get("column"), f"{where}.histograms[{j}].column", MAX_NAME)
        body = _dict(got.get("histogram"), f"{where}.histograms[{j}].histogram")
        _bounded(body, f"{where}.histograms[{j}].histogram")
        histograms.append({"column": column, "histogram": body})
    data["histograms"] = histograms
    return Object(schema, name, kind, create, data)


def _rows(value: Any, where: str) -> List[Dict[str, Any]]:
    return [_row(r, f"{where}[{i}]") for i, r in enumerate(_list(value, where, MAX_ROWS))]


def _row(value: Any, where: str) -> Dict[str, Any]:
    row = _dict(value, where)
    if len(row) > 200:
        raise ShareError(f"{MEMBER}: {where}: more than 200 columns")
    for key, item in row.items():
        if isinstance(item, (dict, list)):
            raise ShareError(f"{MEMBER}: {where}.{key[:40]} is not a number or text")
        if isinstance(item, str) and len(item) > MAX_TEXT:
            raise ShareError(f"{MEMBER}: {where}.{key[:40]} is longer than {MAX_TEXT} characters")
    return row


def _pair(value: Any, where: str) -> Tuple[str, str]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ShareError(f"{MEMBER}: {where} is not a [schema, table] pair")
    return (_text(value[0], where, MAX_NAME), _text(value[1], where, MAX_NAME))


def _bounded(value: Any, where: str, depth: int = 0) -> None:
    """Nesting and string sizes of a free-form document (EXPLAIN, a histogram)."""
    if depth > MAX_DEPTH:
        raise ShareError(f"{MEMBER}: {where} nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for item in value.values():
            _bounded(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _bounded(item, where, depth + 1)
    elif isinstance(value, str) and len(value) > MAX_TEXT:
        raise ShareError(f"{MEMBER}: {where} holds a string longer than {MAX_TEXT} characters")


def _dict(value: Any, where: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ShareError(f"{MEMBER}: {where} is not an object")
    return value


def _list(value: Any, where: str, most: int) -> List[Any]:
    if not isinstance(value, list):
        raise ShareError(f"{MEMBER}: {where} is not a list")
    if len(value) > most:
        raise ShareError(f"{MEMBER}: {where}: more than {most} entries")
    return value


def _text(value: Any, where: str, most: int) -> str:
    if not isinstance(value, str):
        raise ShareError(f"{MEMBER}: {where} is not text")
    if len(value) > most:
        raise ShareError(f"{MEMBER}: {where} is longer than {most} characters")
    return value


def _optional_text(value: Any, where: str, most: int) -> Optional[str]:
    return None if value is None else _text(value, where, most)


def _shown(value: Any) -> str:
    return str(value)[:20] if isinstance(value, (int, float)) else type(value).__name__
