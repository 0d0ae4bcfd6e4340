"""A statement rewritten for a share package: names through the name map, literals
through their column's value map.

The text is read into tokens (sqltext.py) and written again from them. Each name is
resolved in its dotted sequence (`schema`.`table`.`column`, alias.column, table): known
schemas, tables, views and columns come from the shapes of the objects the statement
touches; aliases are learnt where they are defined (`FROM t a`, `t AS a`, `expr AS x`).
A backquoted name that is none of these is still a name, and is mapped as an alias; a
bare word that is none of these is a keyword or a function, and is kept. Each literal is
tied to the column it is compared with (=, <>, <, >, BETWEEN, IN, LIKE, on either side);
`literal_columns` and `rewrite` use the same tie, so every value mapped was learnt.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Dict, List, Optional, Tuple

from report.share.errors import ShareError
from report.share.sqltext import Token, tokenize, write

Key = Tuple[str, str]
_COMPARE = {"=", "<", ">", "<=", ">=", "<>", "!=", "<=>"}
_COMPARE_WORDS = {"IN", "LIKE", "BETWEEN"}
_PASS_WORDS = {"NOT", "AND", "DATE", "TIMESTAMP", "TIME", "BINARY", "ESCAPE"}
#: Words that end a table reference: what follows a table is not its alias.
_NOT_ALIAS = {"WHERE", "ON", "USING", "JOIN", "INNER", "LEFT", "RIGHT", "CROSS", "STRAIGHT_JOIN",
              "NATURAL", "OUTER", "GROUP", "ORDER", "LIMIT", "HAVING", "UNION", "FOR", "LOCK",
              "FORCE", "USE", "IGNORE", "PARTITION", "SET", "WINDOW", "INTO", "AS", "SELECT",
              "VALUES", "EXCEPT", "INTERSECT", "PROCEDURE", "FULL", "STRAIGHT", "AND", "OR"}
#: Reserved words: a bare one is never a name, even when a column is called so (`order`).
RESERVED = {"ORDER", "GROUP", "KEY", "BY", "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "IS",
            "NULL", "LIKE", "BETWEEN", "JOIN", "ON", "AS", "LIMIT", "HAVING", "UNION", "ALL", "DISTINCT",
            "CASE", "WHEN", "THEN", "ELSE", "END", "LEFT", "RIGHT", "INNER", "OUTER", "CROSS", "USING",
            "ASC", "DESC", "INTERVAL", "EXISTS", "FORCE", "USE", "IGNORE", "INDEX", "FOR", "UPDATE", "SET",
            "VALUES", "INTO", "WITH", "DIV", "MOD", "XOR", "REGEXP", "RLIKE", "BINARY", "COLLATE",
            "DEFAULT", "TRUE", "FALSE", "STRAIGHT_JOIN", "NATURAL", "PARTITION", "WINDOW", "OVER",
            "SQL_NO_CACHE", "SQL_CALC_FOUND_ROWS", "HIGH_PRIORITY", "LOCK", "SHARE", "MODE", "ESCAPE",
            "ANY", "SOME", "OFFSET", "ROWS", "RECURSIVE", "LATERAL", "EXCEPT", "INTERSECT", "CHECK",
            "PRIMARY", "UNIQUE", "REFERENCES", "TABLE", "DATABASE", "SCHEMA", "CURRENT_DATE",
            "CURRENT_TIMESTAMP", "CONVERT", "CAST", "CHAR", "SEPARATOR"}
_FROM_END = {"WHERE", "GROUP", "ORDER", "LIMIT", "HAVING", "UNION", "WINDOW", "FOR", "LOCK", "INTO",
             "PROCEDURE", "EXCEPT", "INTERSECT"}


def tables_of(sql: str, default_schema: Optional[str]) -> List[Key]:
    """The tables and views `sql` reads, (schema, name), in order of appearance."""
    import sqlglot
    from sqlglot import exp
    try:
        trees = [t for t in sqlglot.parse(sql, read="mysql") if t is not None]
    except Exception as exc:  # noqa: BLE001 - sqlglot raises many kinds; one line for the user
        raise ShareError(f"the statement cannot be parsed ({type(exc).__name__})") from None
    out: List[Key] = []
    for tree in trees:
        ctes = {c.alias_or_name.casefold() for c in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            name = table.name
            if not name or (not table.db and name.casefold() in ctes):
                continue
            schema = table.db or default_schema
            if schema is None:
                raise ShareError("a table without a schema and no default schema")
            key = (schema, name)
            if key not in out:
                out.append(key)
    return out


class _Reader:
    def __init__(self, sql: str, shapes: Dict[Key, Any], default_schema: Optional[str]) -> None:
        self.tokens = _unary(tokenize(sql))
        self.default = default_schema
        self.shapes = shapes
        self.tables: Dict[str, List[Key]] = {}
        self.schemas = {k[0].casefold() for k in shapes}
        for key in shapes:
            self.tables.setdefault(key[1].casefold(), []).append(key)
        self.columns = {c.casefold() for shape in shapes.values() for c in shape.columns}
        self.aliases: Dict[str, Optional[Key]] = {}
        self.used: List[Key] = []
        self.refs: Dict[int, Tuple[str, Any]] = {}  # token index -> (kind, detail)
        self._resolve()

    # -- names ------------------------------------------------------------------------------

    def _is_name(self, i: int) -> bool:
        t = self.tokens[i]
        if t.kind == "name":
            return True
        if t.kind != "word" or t.value.upper() in RESERVED:
            return False
        nxt = self.tokens[i + 1] if i + 1 < len(self.tokens) else None
        if nxt is not None and nxt.kind == "op" and nxt.value == "(" and not nxt.space:
            return False  # a function call
        folded = t.value.casefold()
        return folded in self.tables or folded in self.columns or folded in self.schemas \
            or folded in self.aliases

    def _sequence(self, i: int) -> List[int]:
        seq = [i]
        while seq[-1] + 2 < len(self.tokens) and self.tokens[seq[-1] + 1].kind == "op" \
                and self.tokens[seq[-1] + 1].value == "." and self._is_name(seq[-1] + 2) \
                and not self.tokens[seq[-1] + 1].space:
            seq.append(seq[-1] + 2)
        return seq

    def _table_key(self, schema: Optional[str], name: str) -> Optional[Key]:
        for key in self.tables.get(name.casefold(), []):
            if schema is None or key[0].casefold() == schema.casefold():
                if schema is None and self.default and key[0].casefold() != self.default.casefold() \
                        and len(self.tables[name.casefold()]) > 1:
                    continue
                return key
        return None

    def _resolve(self) -> None:
        tokens = self.tokens
        in_from = False
        expect_table = False
        i = 0
        # First pass: table references and their aliases.
        while i < len(tokens):
            t = tokens[i]
            if t.is_word("FROM", "JOIN", "UPDATE", "STRAIGHT_JOIN"):
                in_from, expect_table = True, True
                i += 1
                continue
            if t.kind == "word" and t.value.upper() in _FROM_END:
                in_from = expect_table = False
            if in_from and t.kind == "op" and t.value == ",":
                expect_table = True
                i += 1
                continue
            if expect_table and (t.kind in ("name", "word")) and not t.is_word("SELECT", "LATERAL"):
                seq = self._sequence(i) if t.kind == "name" or t.kind == "word" else [i]
                parts = [tokens[j].value for j in seq]
                schema, name = (parts[0], parts[1]) if len(parts) >= 2 else (None, parts[0])
                key = self._table_key(schema, name)
                for j, part_kind in zip(seq, (["schema", "table"] if len(seq) >= 2 else ["table"])):
                    self.refs[j] = (part_kind, key if part_kind == "table" else None)
                if key is not None and key not in self.used:
                    self.used.append(key)
                k = seq[-1] + 1
                if k < len(tokens) and tokens[k].is_word("AS"):
                    k += 1
                if k < len(tokens) and (tokens[k].kind == "name" or (
                        tokens[k].kind == "word" and tokens[k].value.upper() not in _NOT_ALIAS)):
                    self.aliases[tokens[k].value.casefold()] = key
                    self.refs[k] = ("alias", key)
                    i = k + 1
                else:
                    i = seq[-1] + 1
                expect_table = False
                continue
            if t.kind == "op" and t.value == "(":
                # `FROM (t1 JOIN t2 …)` still names tables; `FROM (SELECT …)` does not.
                nxt = tokens[i + 1] if i + 1 < len(tokens) else None
                expect_table = expect_table and nxt is not None and not nxt.is_word("SELECT", "WITH")
            i += 1
        # Column aliases: `expr AS name`. They are mapped as columns: a view's columns are
        # its select list's aliases, and a query on the view names them as columns.
        for i, t in enumerate(tokens):
            if t.is_word("AS") and i + 1 < len(tokens) and i + 1 not in self.refs \
                    and tokens[i + 1].kind in ("name", "word") \
                    and tokens[i + 1].value.upper() not in _NOT_ALIAS | RESERVED:
                self.columns.add(tokens[i + 1].value.casefold())
                self.refs[i + 1] = ("column", None)
        # Second pass: every other name, in its dotted sequence.
        i = 0
        while i < len(tokens):
            if i in self.refs or not self._is_name(i):
                i += 1
                continue
            if i and tokens[i - 1].kind == "op" and tokens[i - 1].value == "." and not tokens[i].space:
                i += 1
                continue
            seq = self._sequence(i)
            parts = [tokens[j].value for j in seq]
            if len(seq) >= 3:
                key = self._table_key(parts[0], parts[1])
                kinds = [("schema", None), ("table", key), ("column", key)]
            elif len(seq) == 2:
                first = parts[0].casefold()
                if first in self.aliases:
                    owner = self.aliases[first]
                    kinds = [("alias", owner), ("column", owner)]
                else:
                    key = self._table_key(None, parts[0])
                    kinds = [("table", key), ("column", key)]
            else:
                folded = parts[0].casefold()
                if folded in self.aliases:
                    kinds = [("alias", self.aliases[folded])]
                elif folded in self.columns:
                    kinds = [("column", self._owner(parts[0]))]
                elif folded in self.tables:
                    kinds = [("table", self._table_key(None, parts[0]))]
                elif folded in self.schemas:
                    kinds = [("schema", None)]
                else:
                    kinds = [("alias", None)]  # a backquoted name of the statement's own
            for j, kind in zip(seq, kinds[: len(seq)]):
                self.refs[j] = kind
            for j in seq[len(kinds):]:
                self.refs[j] = ("column", None)
            i = seq[-1] + 1

    def _owner(self, column: str) -> Optional[Key]:
        folded = column.casefold()
        owners = [k for k in (self.used or list(self.shapes)) if k in self.shapes and any(
            c.casefold() == folded for c in self.shapes[k].columns)]
        return owners[0] if len(owners) == 1 else None

    # -- literals -----------------------------------------------------------------------------

    def _column_at(self, j: int) -> Optional[Tuple[Key, str]]:
        ref = self.refs.get(j)
        if ref is None or ref[0] != "column" or ref[1] is None:
            return None
        shape = self.shapes.get(ref[1])
        if shape is None or getattr(shape, "kind", "table") != "table":
            return None
        name = self.tokens[j].value
        real = next((c for c in shape.columns if c.casefold() == name.casefold()), None)
        return (ref[1], real) if real is not None else None

    def target(self, i: int) -> Optional[Tuple[Key, str]]:
        """The column the literal at token `i` is compared with, if any."""
        tokens = self.tokens
        compared = False
        j = i - 1
        while j >= 0:
            t = tokens[j]
            if t.kind in ("string", "number", "hex"):
                pass
            elif t.kind == "op" and t.value in _COMPARE:
                compared = True
            elif t.kind == "op" and t.value in "(),":
                pass
            elif t.kind == "word" and t.value.upper() in _COMPARE_WORDS:
                compared = True
            elif t.is_word("AND"):
                # Only BETWEEN's AND: `a BETWEEN 1 AND 2`; any other AND ends the comparison.
                if not (j >= 2 and tokens[j - 2].is_word("BETWEEN")):
                    break
            elif t.kind == "word" and (t.value.upper() in _PASS_WORDS or t.value.startswith("_")):
                pass
            elif j in self.refs:
                return self._column_at(j) if compared else None
            else:
                break
            j -= 1
        j = i + 1
        compared = False
        while j < len(tokens):
            t = tokens[j]
            if t.kind == "op" and t.value in _COMPARE:
                compared = True
            elif j in self.refs:
                return self._column_at(j) if compared else None
            else:
                return None
            j += 1
        return None


def _unary(tokens: List[Token]) -> List[Token]:
    """A minus sign that makes a negative number is part of the number."""
    out: List[Token] = []
    for t in tokens:
        if t.kind == "number" and out and out[-1].kind == "op" and out[-1].value == "-" and (
                len(out) == 1 or out[-2].kind == "op" and out[-2].value != ")"
                or out[-2].kind == "word" and out[-2].value.upper() in
                _COMPARE_WORDS | _PASS_WORDS | {"THEN", "ELSE", "WHEN", "SELECT", "OR"}):
            minus = out.pop()
            out.append(Token("number", "-" + t.value, minus.space))
        else:
            out.append(t)
    return out


def _value(token: Token) -> Any:
    if token.kind in ("string", "hex"):
        return token.value
    try:
        return int(token.value)
    except ValueError:
        try:
            return Decimal(token.value)
        except InvalidOperation:
            return token.value


def _like(tokens: List[Token], i: int) -> Optional[str]:
    """The fixed prefix of a LIKE pattern at token `i` (None when it is not a pattern)."""
    if tokens[i].kind != "string" or not i or not tokens[i - 1].is_word("LIKE"):
        return None
    pattern = tokens[i].value
    cut = min((pattern.find(c) for c in "%_" if c in pattern), default=len(pattern))
    return pattern[:cut]


def literal_columns(sql: str, shapes: Dict[Key, Any], default_schema: Optional[str]
                    ) -> List[Tuple[Any, Optional[Tuple[Key, str]]]]:
    reader = _Reader(sql, shapes, default_schema)
    out: List[Tuple[Any, Optional[Tuple[Key, str]]]] = []
    for i, t in enumerate(reader.tokens):
        if t.kind in ("string", "number", "hex") and not _structural(reader.tokens, i):
            prefix = _like(reader.tokens, i)
            if prefix == "":
                continue
            out.append((_value(t) if prefix is None else prefix, reader.target(i)))
    return out


def _structural(tokens: List[Token], i: int) -> bool:
    """A number that is part of the statement's shape, not data: LIMIT n, ORDER BY 2."""
    prev = tokens[i - 1] if i else None
    if tokens[i].kind != "number" or prev is None:
        return False
    if prev.is_word("LIMIT", "OFFSET"):
        return True
    return (prev.kind == "op" and prev.value == "," and i >= 3 and tokens[i - 2].kind == "number"
            and tokens[i - 3].is_word("LIMIT"))


def rewrite(sql: str, shapes: Dict[Key, Any], default_schema: Optional[str], names: Any, values: Any) -> str:
    reader = _Reader(sql, shapes, default_schema)
    out: List[Token] = []
    for i, t in enumerate(reader.tokens):
        ref = reader.refs.get(i)
        if ref is not None:
            kind, key = ref
            if kind == "table" and key is not None and getattr(shapes[key], "kind", "table") == "view":
                kind = "view"
            out.append(Token("name", names.name(kind, t.value), t.space))
        elif t.kind in ("string", "number", "hex") and not _structural(reader.tokens, i):
            target = reader.target(i)
            prefix = _like(reader.tokens, i)
            value = _value(t) if prefix is None else prefix
            if prefix == "":
                mapped = "'%'"  # a pattern with no fixed prefix: what it matched is not public
            else:
                mapped = values.sql(target[0], target[1], value) if target is not None \
                    else values.loose(value)
                if prefix is not None:  # the mapped prefix, then any characters
                    mapped = mapped[:-1] + "%'" if mapped.endswith("'") else mapped
            out.append(Token("raw", mapped, t.space))
        else:
            out.append(t)
    return write(out)
