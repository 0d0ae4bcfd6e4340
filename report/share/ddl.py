"""SHOW CREATE TABLE / VIEW text read into a shape, and written again with every
identifier renamed and every literal mapped.

One walk over the tokens (`_walk`) decides, for each token, what it is: the table's name,
a column, an index, a constraint, a partition, a literal of a column (DEFAULT, ENUM/SET
labels, CHECK and generated expressions, partition bounds), a comment (dropped), or
structure (kept). `literals` and `rewrite_table` use the same walk, so the values learnt
are exactly the values mapped. What is kept: types, lengths, nullability, charsets and
collations, key part order and prefix lengths, partitioning, row format and engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from report.share.errors import ShareError
from report.share.sqltext import Token, quote_name, tokenize, write

#: What ends a column's type in its definition.
_ATTRIBUTES = {"NOT", "NULL", "DEFAULT", "COLLATE", "CHARACTER", "CHARSET", "AUTO_INCREMENT", "COMMENT",
               "GENERATED", "AS", "INVISIBLE", "ON", "PRIMARY", "UNIQUE", "CHECK", "REFERENCES",
               "VIRTUAL", "PERSISTENT", "STORED", "KEY", "COLUMN_FORMAT", "STORAGE", "WITHOUT",
               "SRID", "VISIBLE"}
_INDEX_WORDS = {"KEY", "INDEX"}
_DROPPED_OPTIONS = {"AUTO_INCREMENT", "STATS_PERSISTENT", "STATS_AUTO_RECALC", "STATS_SAMPLE_PAGES"}


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
    kind: str = "table"
    columns: Dict[str, ColumnShape] = field(default_factory=dict)
    indexes: Dict[str, List[Tuple[str, Optional[int]]]] = field(default_factory=dict)
    unique: Set[str] = field(default_factory=set)
    primary: List[str] = field(default_factory=list)
    partition_columns: List[str] = field(default_factory=list)
    #: The partitioning expression is one bare column: its bounds are that column's values.
    partition_plain: bool = False

    def column(self, name: str) -> Optional[ColumnShape]:
        folded = name.casefold()
        return next((c for n, c in self.columns.items() if n.casefold() == folded), None)


def _split(tokens: List[Token], start: int) -> Tuple[List[List[Token]], int]:
    """The comma-separated definitions inside the parenthesis at `start`; the index after it."""
    parts: List[List[Token]] = [[]]
    depth = 0
    for i in range(start, len(tokens)):
        t = tokens[i]
        if t.kind == "op" and t.value == "(":
            depth += 1
            if depth == 1:
                continue
        elif t.kind == "op" and t.value == ")":
            depth -= 1
            if depth == 0:
                return [p for p in parts if p], i + 1
        elif t.kind == "op" and t.value == "," and depth == 1:
            parts.append([])
            continue
        parts[-1].append(t)
    raise ShareError("a definition whose parentheses do not close")


def _head(tokens: List[Token], kind: str) -> int:
    """The index of the `(` that opens a CREATE TABLE's definitions, after its name."""
    for i, t in enumerate(tokens):
        if t.is_word(kind):
            j = i + 1
            while j < len(tokens) and tokens[j].is_word("IF", "NOT", "EXISTS"):
                j += 1
            return j
    raise ShareError(f"not a CREATE {kind}")


def _table_name(tokens: List[Token], at: int) -> Tuple[str, int]:
    if at + 2 < len(tokens) and tokens[at + 1].value == "." and tokens[at + 1].kind == "op":
        at += 2
    if at >= len(tokens) or tokens[at].kind not in ("name", "word"):
        raise ShareError("a CREATE statement without a name")
    return tokens[at].value, at + 1


def _type_text(tokens: List[Token]) -> str:
    return write(tokens)


def shape(create_sql: str, schema: str) -> TableShape:
    if not isinstance(create_sql, str) or not create_sql.strip():
        raise ShareError("an empty definition")
    tokens = tokenize(create_sql)
    first = next((t for t in tokens if t.is_word("TABLE", "VIEW")), None)
    if first is not None and first.is_word("VIEW"):
        return _view_shape(tokens, schema)
    name, at = _table_name(tokens, _head(tokens, "TABLE"))
    if at >= len(tokens) or tokens[at].value != "(":
        raise ShareError("a CREATE TABLE without definitions")
    parts, after = _split(tokens, at)
    result = TableShape(schema, name)
    for part in parts:
        first = part[0]
        if first.kind == "name":
            result.columns[first.value] = _column(part)
        elif first.is_word("PRIMARY"):
            result.primary = [c for c, _ in _key_parts(part)]
            result.indexes["PRIMARY"] = _key_parts(part)
            result.unique.add("PRIMARY")
        elif first.is_word("UNIQUE", "KEY", "INDEX", "FULLTEXT", "SPATIAL"):
            index = next((t.value for t in part if t.kind == "name"), None)
            if index is not None:
                result.indexes[index] = _key_parts(part[[t.value for t in part].index(index) + 1:])
                if first.is_word("UNIQUE"):
                    result.unique.add(index)
    rest = tokens[after:]
    for i, t in enumerate(rest):
        if t.is_word("PARTITION") and i + 1 < len(rest) and rest[i + 1].is_word("BY"):
            j = i + 2
            while j < len(rest) and rest[j].value != "(":
                j += 1
            depth, inside = 0, []
            for u in rest[j:]:
                depth += (u.value == "(") - (u.value == ")") if u.kind == "op" else 0
                if u.kind == "name":
                    result.partition_columns.append(u.value)
                inside.append(u)
                if depth == 0:
                    break
            result.partition_plain = len(inside) == 3 and inside[1].kind == "name"
            break
    return result


def _column(part: List[Token]) -> ColumnShape:
    end = next((i for i in range(1, len(part)) if part[i].kind == "word"
                and part[i].value.upper() in _ATTRIBUTES and i > 1), len(part))
    sql_type = _type_text(part[1:end])
    column = ColumnShape(part[0].value, sql_type)
    if part[1].is_word("ENUM", "SET"):
        column.labels = tuple(t.value for t in part[1:end] if t.kind == "string")
    words = [t.value.upper() if t.kind == "word" else None for t in part]
    for i, w in enumerate(words):
        if w == "COLLATE" and i + 1 < len(part):
            column.collation = part[i + 1].value
        if w == "NOT" and i + 1 < len(part) and words[i + 1] == "NULL":
            column.nullable = False
        if w in ("GENERATED", "AS") and i >= end:
            column.generated = True
    return column


def _key_parts(part: List[Token]) -> List[Tuple[str, Optional[int]]]:
    start = next((i for i, t in enumerate(part) if t.value == "("), None)
    if start is None:
        return []
    out: List[Tuple[str, Optional[int]]] = []
    depth, i = 0, start
    while i < len(part):
        t = part[i]
        if t.kind == "op" and t.value == "(":
            depth += 1
        elif t.kind == "op" and t.value == ")":
            depth -= 1
            if depth == 0:
                break
        elif t.kind == "name" and depth == 1:
            prefix = None
            if i + 3 < len(part) and part[i + 1].value == "(" and part[i + 2].kind == "number":
                prefix = int(part[i + 2].value)
            out.append((t.value, prefix))
        i += 1
    return out


def _view_shape(tokens: List[Token], schema: str) -> TableShape:
    at = next(i for i, t in enumerate(tokens) if t.is_word("VIEW")) + 1
    name, at = _table_name(tokens, at)
    if at >= len(tokens) or not tokens[at].is_word("AS"):
        raise ShareError("a CREATE VIEW without AS")
    result = TableShape(schema, name, kind="view")
    for i, t in enumerate(tokens[at:], start=at):
        if t.is_word("AS") and i + 1 < len(tokens) and tokens[i + 1].kind == "name":
            result.columns.setdefault(tokens[i + 1].value, ColumnShape(tokens[i + 1].value, ""))
    return result


# -- the walk -----------------------------------------------------------------------------


def _value(token: Token) -> Any:
    if token.kind == "string":
        return token.value
    text = token.value
    try:
        return int(text)
    except ValueError:
        from decimal import Decimal, InvalidOperation
        try:
            return Decimal(text)
        except InvalidOperation:
            return text


def _walk(create_sql: str, shape: TableShape) -> Iterator[Tuple[str, Token, Optional[str], int]]:
    """(what, token, column, position) for every token: what is one of table, column,
    index, constraint, partition, reftable, refschema, value, label, drop, keep."""
    tokens = tokenize(create_sql)
    head = _head(tokens, "TABLE")
    for t in tokens[:head]:
        yield "keep", t, None, 0
    name_at = head
    if head + 2 < len(tokens) and tokens[head + 1].value == ".":
        yield "drop", tokens[head], None, 0
        yield "drop", tokens[head + 1], None, 0
        name_at = head + 2
    yield "table", tokens[name_at], None, 0
    depth = 0
    column: Optional[str] = None
    definition: List[Token] = []
    in_partition = False
    last_name_column: Optional[str] = None
    i = name_at + 1
    while i < len(tokens):
        t = tokens[i]
        prev = tokens[i - 1]
        if t.kind == "op" and t.value == "(":
            depth += 1
        elif t.kind == "op" and t.value == ")":
            depth -= 1
        if depth == 1 and ((prev.kind == "op" and prev.value in "(,") and len(definition) >= 0) \
                and not in_partition and t.kind != "op":
            definition = []
            column = t.value if t.kind == "name" else None
            last_name_column = column
        if not in_partition:
            definition.append(t)
        if depth == 0 and t.is_word("PARTITION") and i + 1 < len(tokens) and tokens[i + 1].is_word("BY"):
            in_partition = True
        first = definition[0] if definition else None
        if t.kind == "name":
            if prev.is_word("KEY", "INDEX") and depth <= 1 and not in_partition:
                yield "index", t, None, i
            elif prev.is_word("CONSTRAINT"):
                yield "constraint", t, None, i
            elif prev.is_word("PARTITION", "SUBPARTITION"):
                yield "partition", t, None, i
            elif prev.is_word("REFERENCES"):
                if i + 1 < len(tokens) and tokens[i + 1].value == ".":
                    yield "refschema", t, None, i
                else:
                    yield "reftable", t, None, i
            elif prev.kind == "op" and prev.value == "." and tokens[i - 2].kind == "name" \
                    and tokens[i - 3].is_word("REFERENCES"):
                yield "reftable", t, None, i
            else:
                last_name_column = t.value
                yield "column", t, None, i
        elif t.kind in ("string", "number") or (t.kind == "word" and t.value.upper() in ("TRUE", "FALSE")
                                                 and False):
            if prev.is_word("COMMENT") or (prev.value == "=" and tokens[i - 2].is_word("COMMENT")):
                yield "drop", t, None, i
            elif depth == 0 and not in_partition:
                yield "keep", t, None, i  # a table option's value (ENGINE=, KEY_BLOCK_SIZE=)
            elif first is not None and first.kind == "name" and column is not None \
                    and _in_type(definition, t) and t.kind == "string":
                yield "label", t, column, i
            elif first is not None and first.kind == "name" and _in_type(definition, t):
                yield "keep", t, None, i  # a length, a precision
            elif t.kind == "number" and prev.value == "(" and tokens[i - 2].kind == "name" \
                    and i + 1 < len(tokens) and tokens[i + 1].value == ")" and not in_partition \
                    and first is not None and first.kind != "name":
                yield "keep", t, None, i  # a key part's prefix length
            elif in_partition:
                target = shape.partition_columns[0] if shape.partition_plain else None
                if _bound(tokens, i) and target is not None:
                    yield "value", t, target, i
                else:
                    yield "keep", t, None, i
            elif first is not None and first.kind == "name" and t.kind == "number" and any(
                    u.is_word("GENERATED") or (u.is_word("AS") and not _in_type(definition, u))
                    for u in definition):
                yield "keep", t, None, i  # a generated column's arithmetic is structure, not data
            elif prev.is_word("DEFAULT") and column is not None:
                yield "value", t, column, i
            else:
                yield "value", t, last_name_column or column, i
        elif t.kind == "word" and t.value.upper() == "COMMENT":
            yield "drop", t, None, i
            if i + 1 < len(tokens) and tokens[i + 1].value == "=":
                yield "drop", tokens[i + 1], None, i + 1
                i += 1
        elif depth == 0 and t.kind == "word" and t.value.upper() in _DROPPED_OPTIONS \
                and i + 2 < len(tokens) and tokens[i + 1].value == "=":
            yield "drop", t, None, i
            yield "drop", tokens[i + 1], None, i + 1
            yield "drop", tokens[i + 2], None, i + 2
            i += 2
        else:
            yield "keep", t, None, i
        i += 1


def _in_type(definition: List[Token], token: Token) -> bool:
    """True when `token` is inside the column's type (before its first attribute)."""
    for t in definition[1:]:
        if t is token:
            return True
        if t.kind == "word" and t.value.upper() in _ATTRIBUTES:
            return False
    return False


def _bound(tokens: List[Token], i: int) -> bool:
    """A partition bound: inside VALUES LESS THAN (…) or VALUES IN (…)."""
    j = i - 1
    depth = 0
    while j >= 0:
        t = tokens[j]
        if t.kind == "op" and t.value == ")":
            depth += 1
        elif t.kind == "op" and t.value == "(":
            if depth == 0:
                before = tokens[j - 1] if j else None
                return before is not None and before.is_word("THAN", "IN")
            depth -= 1
        j -= 1
    return False


def literals(create_sql: str, shape: TableShape) -> List[Tuple[str, Any]]:
    out: List[Tuple[str, Any]] = []
    for what, token, column, _i in _walk(create_sql, shape):
        if what == "value" and column is not None:
            out.append((column, _value(token)))
    return out


def rewrite_table(create_sql: str, shape: TableShape, names: Any, values: Any) -> str:
    key = (shape.schema, shape.name)
    schema_m = names.name("schema", shape.schema)
    out: List[Token] = []
    for what, token, column, _i in _walk(create_sql, shape):
        if what == "drop":
            continue
        if what == "table":
            out += [Token("name", schema_m, token.space), Token("op", "."),
                    Token("name", names.name("table", token.value))]
        elif what == "column":
            out.append(Token("name", names.name("column", token.value), token.space))
        elif what in ("index", "constraint", "partition"):
            out.append(Token("name", names.name(what, token.value), token.space))
        elif what == "refschema":
            out.append(Token("name", names.name("schema", token.value), token.space))
        elif what == "reftable":
            if not (out and out[-1].value == "."):
                out += [Token("name", schema_m, token.space), Token("op", ".")]
            out.append(Token("name", names.name("table", token.value)))
        elif what == "label":
            out.append(Token("string", values.label(key, column, token.value), token.space))
        elif what == "value":
            mapped = values.sql(key, column, _value(token)) if column is not None \
                else values.loose(_value(token))
            out.append(Token("raw", mapped, token.space))
        else:
            out.append(token)
    # The optimizer's inputs are installed by the package: InnoDB must not recompute them.
    at = _options_end(out)
    tail = write(out[at:])
    return write(out[:at]) + " STATS_PERSISTENT=1 STATS_AUTO_RECALC=0" + (" " + tail if tail else "")


def _options_end(tokens: List[Token]) -> int:
    """Where the table options end: before PARTITION BY, or the end."""
    depth = 0
    for i, t in enumerate(tokens):
        if t.kind == "op" and t.value == "(":
            depth += 1
        elif t.kind == "op" and t.value == ")":
            depth -= 1
        elif depth == 0 and t.is_word("PARTITION") and i + 1 < len(tokens) and tokens[i + 1].is_word("BY"):
            return i
    return len(tokens)


def view_body(create_sql: str) -> Tuple[str, str]:
    """(the view's name, its SELECT) from SHOW CREATE VIEW text."""
    tokens = tokenize(create_sql)
    at = next((i for i, t in enumerate(tokens) if t.is_word("VIEW")), None)
    if at is None:
        raise ShareError("not a CREATE VIEW")
    name, at = _table_name(tokens, at + 1)
    if at >= len(tokens) or not tokens[at].is_word("AS"):
        raise ShareError("a CREATE VIEW without AS")
    return name, write(tokens[at + 1:])


def rewrite_view(create_sql: str, shape: TableShape, names: Any, values: Any,
                 shapes: Dict[Tuple[str, str], TableShape]) -> str:
    from report.share import query
    name, body = view_body(create_sql)
    mapped = query.rewrite(body, shapes, shape.schema, names, values)
    return (f"CREATE VIEW {quote_name(names.name('schema', shape.schema))}."
            f"{quote_name(names.name('view', name))} AS {mapped}")
