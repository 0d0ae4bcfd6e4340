"""Is this statement one the diag console may run? An allowlist over a real parse.

The database account is the boundary's first line (agent/session/diagaccount.py: no FILE, no
admin privilege, nothing of `mysql`, a read-only transaction, a time limit). This is the
second: a statement runs only if every part of it is on a list, and the list holds
SELECT, SHOW, EXPLAIN and DESCRIBE of the diagnostics schemas and the customer's own,
with functions that neither lock, wait, read files nor write anything.

How a clever string is kept from crossing: the text is first read by `agent.session.sqllex`,
to the server's own lexical rules for the session's sql_mode, and written out again from
those tokens (comments dropped, one quoting). sqlglot (MySQL dialect) parses that text,
and its own tokens must be the same as ours, one for one, or the statement is refused;
so the parser and the server never read two different statements. The tree is then
walked: any node, function, schema or column that is not allowed, or that the parser
did not fully understand (an unparsed `Command`, an unknown function), is refused.
The text the server runs is the one that was checked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

from sqlglot import exp
from sqlglot.dialects.mysql import MySQL
from sqlglot.tokens import TokenType

from agent.session.sqllex import DEFAULT_MODE, Mode, Odd, Token, server_text, tokenize

# sqlglot logs (to stderr, which the engineer sees) when it falls back to a Command; that
# statement is refused here with a reason of its own.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

#: Rows the console shows; the server is asked for one more, to know that there are more.
MAX_ROWS = 1000
FIRST_WORDS = ("SELECT", "WITH", "SHOW", "EXPLAIN", "DESCRIBE", "DESC")
CLIENT_COMMANDS = ("\\!", "system", "\\.", "source", "\\r", "connect", "pager", "\\P", "tee", "\\T")
#: Schemas a statement may read. `mysql` holds the password hashes: only its two InnoDB
#: statistics tables are read (for table sizes), nothing else of it.
SYSTEM_SCHEMAS = frozenset({"information_schema", "performance_schema", "sys"})
FORBIDDEN_SCHEMAS = frozenset({"mysql"})
MYSQL_TABLES = frozenset({"innodb_table_stats", "innodb_index_stats"})
#: Names of columns that hold credentials, whatever function is wrapped around them.
SECRET_COLUMNS = frozenset({"authentication_string", "password", "passwd", "user_password",
                            "auth_string", "password_hash"})
#: SHOW statements the console runs (what sqlglot calls them), and those it never does.
SHOW_KINDS = frozenset({
    "STATUS", "VARIABLES", "PROCESSLIST", "ENGINE", "ENGINES", "STORAGE ENGINES", "REPLICA STATUS",
    "SLAVE STATUS", "SLAVE HOSTS", "REPLICAS", "MASTER STATUS", "BINARY LOGS", "MASTER LOGS", "DATABASES",
    "TABLES", "TABLE STATUS", "COLUMNS", "INDEX", "CREATE TABLE", "CREATE VIEW", "CREATE DATABASE",
    "TRIGGERS", "EVENTS", "PLUGINS", "PRIVILEGES", "GRANTS", "WARNINGS", "ERRORS", "OPEN TABLES",
    "CHARACTER SET", "COLLATION", "PROFILE", "PROFILES",
})
#: SHOW statements sqlglot does not parse, taken whole when they are exactly these words.
FIXED_SHOW = (("SHOW", "ALL", "SLAVES", "STATUS"), ("SHOW", "ALL", "REPLICAS", "STATUS"),
              ("SHOW", "BINLOG", "STATUS"))
#: Words a read-only statement never holds outside a string or quoted name, checked on
#: the tokens too, in case the parser took one for something harmless.
WRITE_WORDS = {
    "INTO": "INTO writes rows somewhere (a file, a variable): not allowed",
    "OUTFILE": "INTO OUTFILE writes a file on the database host: not allowed",
    "DUMPFILE": "INTO DUMPFILE writes a file on the database host: not allowed",
    "PROCEDURE": "PROCEDURE runs server code: not allowed",
    "HANDLER": "HANDLER is not a read-only statement",
    "LOCK": "locking reads (LOCK IN SHARE MODE, FOR UPDATE) are not allowed",
    "SHARE": "locking reads (LOCK IN SHARE MODE, FOR SHARE) are not allowed",
    "UPDATE": "UPDATE (also FOR UPDATE) is not allowed: read-only statements only",
    "DELETE": "DELETE is not allowed: read-only statements only",
}

#: Parts of a statement, by the parser's own node types.
_NODES = (
    exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.With, exp.CTE, exp.From,
    exp.Join, exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Limit, exp.Offset,
    exp.Distinct, exp.Alias, exp.TableAlias, exp.Table, exp.Column, exp.Identifier, exp.Star,
    exp.Literal, exp.Null, exp.Boolean, exp.Paren, exp.Tuple, exp.Var, exp.DataType, exp.DataTypeParam,
    exp.Interval, exp.HexString, exp.BitString, exp.National, exp.Introducer, exp.Collate,
    exp.SessionParameter, exp.Show, exp.Describe, exp.FileFormatProperty, exp.Window, exp.Exists,
    exp.Any, exp.All, exp.IndexTableHint, exp.Rollup, exp.JSONPath, exp.JSONPathPart,
    # operators
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.And, exp.Or, exp.Xor, exp.Not,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Neg, exp.Is, exp.In, exp.Between,
    exp.Like, exp.ILike, exp.Escape, exp.RegexpLike, exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor,
    exp.BitwiseNot, exp.BitwiseLeftShift, exp.BitwiseRightShift, exp.Case, exp.If,
)
#: Functions, by the parser's types: none locks, waits, reads a file or changes anything.
_FUNCTIONS = (
    exp.Count, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.GroupConcat, exp.Stddev, exp.StddevPop,
    exp.StddevSamp, exp.Variance, exp.VariancePop, exp.AnyValue, exp.BitwiseAndAgg, exp.BitwiseOrAgg,
    exp.Concat, exp.ConcatWs, exp.Coalesce, exp.Nullif, exp.Round, exp.Floor, exp.Ceil, exp.Abs,
    exp.Length, exp.Lower, exp.Upper, exp.Substring, exp.SubstringIndex, exp.Left, exp.Right, exp.Trim,
    exp.Replace, exp.StrPosition, exp.Pad, exp.Reverse, exp.Repeat, exp.Ascii, exp.CurrentTimestamp,
    exp.CurrentDate, exp.UtcTimestamp, exp.UnixToTime, exp.TimeToStr, exp.TsOrDsToTimestamp,
    exp.TsOrDsToDate, exp.TimestampDiff, exp.DateSub, exp.DateAdd, exp.DateDiff, exp.Year, exp.Hour,
    exp.Extract, exp.NumberToStr, exp.Cast, exp.CurrentVersion, exp.CurrentSchema, exp.CurrentUser,
    exp.Greatest, exp.Least, exp.Hex, exp.Unhex, exp.ToBase64, exp.MD5, exp.SHA2, exp.Pow, exp.Sqrt,
    exp.Ln, exp.Log, exp.Trunc, exp.Sign, exp.JSONExtract, exp.JSONExtractScalar, exp.RowNumber,
    exp.Rank, exp.DenseRank, exp.Lag, exp.Lead, exp.RegexpReplace, exp.StrToDate, exp.Timestamp,
)
#: Functions the parser does not know by type, by name.
ANONYMOUS_FUNCTIONS = frozenset({
    "NOW", "SYSDATE", "UNIX_TIMESTAMP", "SEC_TO_TIME", "TIME_TO_SEC", "TIMEDIFF", "CONNECTION_ID",
    "JSON_UNQUOTE", "JSON_LENGTH", "INET_NTOA", "BIN", "CONV", "FIELD", "FIND_IN_SET", "CHARSET",
    "FORMAT_BYTES", "FORMAT_PICO_TIME",
})
#: The sys schema's formatting functions (stored functions that only format a value).
SYS_FUNCTIONS = frozenset({"format_bytes", "format_time", "format_path", "format_statement"})


class NotReadOnly(ValueError):
    """The statement was refused; the message says why, in one line."""


@dataclass(frozen=True)
class Checked:
    """A statement that passed: the text to send (the one that was checked)."""

    text: str
    vertical: bool


def is_client_command(text: str) -> Optional[str]:
    """The mysql client command `text` starts with (`\\!`, `system`, `source`, …), if any."""
    lowered = text.strip().lower()
    if lowered.startswith("\\"):
        return lowered[:2]
    for command in CLIENT_COMMANDS:
        if lowered == command.lower() or lowered.startswith(command.lower() + " "):
            return command
    return None


def vertical(sql: str) -> bool:
    """`\\G` at the end asks for one column per line, as in the mysql client."""
    return _terminated(sql)[1]


def _terminated(sql: str) -> Tuple[str, bool]:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    vertical_ = text.endswith("\\G")
    if text.endswith(("\\G", "\\g")):
        text = text[:-2].rstrip()
    return text, vertical_


def check(sql: str, mode: Mode = DEFAULT_MODE) -> Checked:
    """The statement as it will be sent, or NotReadOnly saying why not."""
    command = is_client_command(sql)
    if command is not None:
        raise NotReadOnly(f"`{command}` is a mysql client command; this console runs no client "
                          "commands and no shell")
    text, vertical_ = _terminated(sql)
    try:
        tokens = tokenize(text, mode)
    except Odd as exc:
        raise NotReadOnly(str(exc)) from None
    while tokens and tokens[-1].kind == "op" and tokens[-1].text == ";":
        tokens.pop()
    if not tokens:
        raise NotReadOnly("an empty statement")
    _check_tokens(tokens)
    if tuple(t.upper for t in tokens) not in FIXED_SHOW:
        _check_tree(_parse(tokens))
    return Checked(server_text(tokens, mode), vertical_)


def _check_tokens(tokens: List[Token]) -> None:
    first = tokens[0].upper or ("(" if tokens[0].text == "(" else "")
    if first not in FIRST_WORDS and first != "(":
        raise NotReadOnly(f"{first or tokens[0].text} is not a read-only statement (allowed: SELECT, SHOW, "
                          "EXPLAIN, DESCRIBE, WITH … SELECT)")
    if any(t.kind == "op" and t.text == ":=" for t in tokens):
        raise NotReadOnly("assigning user variables (:=) is not allowed")
    for index, token in enumerate(tokens):
        if token.kind == "op" and token.text == ";":
            raise NotReadOnly("one statement at a time")
        if token.kind == "op" and token.text == "@":
            raise NotReadOnly("user variables (@name) have no use here: nothing can set them")
        if token.kind == "op" and token.text == "@@" and (
                index + 1 == len(tokens) or not tokens[index + 1].tight or tokens[index + 1].kind != "word"):
            raise NotReadOnly("@@ must be followed by a variable name")
        reason = WRITE_WORDS.get(token.upper)
        if reason:
            raise NotReadOnly(reason)


def _parse(tokens: List[Token]) -> exp.Expression:
    """sqlglot's tree of the canonical text, once its tokens are known to be ours."""
    text = server_text(tokens, DEFAULT_MODE)
    dialect = MySQL()
    try:
        theirs = dialect.tokenize(text)
    except Exception:  # noqa: BLE001 - whatever the parser cannot read is refused
        raise NotReadOnly("the console's SQL parser cannot read this statement") from None
    if _signature_ours(tokens) != _signature_theirs(theirs):
        raise NotReadOnly("the statement reads differently to the parser and to the server: "
                          "write it more plainly")
    try:
        trees = dialect.parser().parse(theirs, text)
    except Exception as exc:  # noqa: BLE001 - sqlglot raises ParseError, TokenError and others
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NotReadOnly(f"the console's SQL parser cannot read this statement ({detail[:120]})") from None
    if len(trees) != 1 or trees[0] is None:
        raise NotReadOnly("one statement at a time")
    return trees[0]


def _signature_ours(tokens: List[Token]) -> List[Tuple[str, str]]:
    parts: List[Tuple[str, str]] = []
    for token in tokens:
        if token.kind in ("string", "national", "name", "hex", "bits"):
            parts.append((token.kind, token.text))
        elif token.kind == "number" and token.text[:2] in ("0x", "0b"):
            parts.append(("hex" if token.text[1] == "x" else "bits", token.text[2:]))
        else:
            _word(parts, token.text)
    return parts


_THEIR_KINDS = {TokenType.STRING: "string", TokenType.NATIONAL_STRING: "national",
                TokenType.IDENTIFIER: "name", TokenType.HEX_STRING: "hex", TokenType.BIT_STRING: "bits"}


def _signature_theirs(tokens: list) -> List[Tuple[str, str]]:
    parts: List[Tuple[str, str]] = []
    for token in tokens:
        if token.comments:
            parts.append(("comment", ""))
        kind = _THEIR_KINDS.get(token.token_type)
        if kind:
            parts.append((kind, token.text))
        else:
            _word(parts, token.text)
    return parts


def _word(parts: List[Tuple[str, str]], text: str) -> None:
    """Everything outside strings and names compares as one run of text, spaces aside."""
    squeezed = "".join(text.split()).upper()
    if parts and parts[-1][0] == "text":
        parts[-1] = ("text", parts[-1][1] + squeezed)
    else:
        parts.append(("text", squeezed))


def _check_tree(tree: exp.Expression) -> None:
    _check_statement(tree)
    for node in tree.walk():
        _check_node(node)
    _check_row_limit(tree)


def _check_statement(tree: exp.Expression) -> None:
    if isinstance(tree, exp.Show):
        kind = str(tree.name).upper()
        if kind not in SHOW_KINDS:
            raise NotReadOnly(f"SHOW {kind} is not one of the console's SHOW statements")
        target = tree.args.get("target")
        if kind == "GRANTS" and target is not None and str(target.name).upper() != "CURRENT_USER":
            raise NotReadOnly("SHOW GRANTS only for the console's own account")
        return
    if isinstance(tree, exp.Describe):
        inner = tree.this
        if not isinstance(inner, (exp.Table, exp.Query)):
            raise NotReadOnly("EXPLAIN and DESCRIBE only of a table or a SELECT")
        return
    if isinstance(tree, exp.Command):
        rest = tree.args.get("expression")
        rest = rest.name if isinstance(rest, exp.Expression) else str(rest or "")
        raise NotReadOnly(f"the console's SQL parser does not fully understand {tree.name.upper()} "
                          f"{rest.split(' ')[0].upper()} …: not run")
    if not isinstance(tree, exp.Query):
        raise NotReadOnly(f"{tree.key.upper()} is not a read-only statement (allowed: SELECT, SHOW, "
                          "EXPLAIN, DESCRIBE, WITH … SELECT)")


def _check_node(node: exp.Expression) -> None:
    if isinstance(node, exp.Anonymous):
        name = str(node.name)
        parent = node.parent
        in_sys = (isinstance(parent, exp.Dot) and parent.expression is node
                  and isinstance(parent.this, exp.Identifier) and parent.this.name.lower() == "sys")
        if (name.lower() in SYS_FUNCTIONS) if in_sys else (name.upper() in ANONYMOUS_FUNCTIONS):
            return
        raise NotReadOnly(f"{('sys.' if in_sys else '') + name.upper()}() is not on the console's list "
                          "of functions (none may lock, wait, read files or leak data through errors)")
    if isinstance(node, exp.Dot):
        if isinstance(node.this, exp.Identifier) and node.this.name.lower() == "sys" \
                and isinstance(node.expression, exp.Anonymous):
            return
        raise NotReadOnly("a qualified name the console cannot place")
    if isinstance(node, exp.Func) and not isinstance(node, _NODES):
        if not isinstance(node, _FUNCTIONS):
            raise NotReadOnly(f"{node.sql_name()}() is not on the console's list of functions")
        return
    if not isinstance(node, _NODES) and not isinstance(node, _FUNCTIONS):
        raise NotReadOnly(f"{_what(node)} is not allowed in a diag statement")
    if isinstance(node, exp.Identifier) and node.name.lower() in SECRET_COLUMNS:
        raise NotReadOnly(f"`{node.name}` holds credentials: not shown, whatever function is around it")
    if isinstance(node, exp.Table):
        _check_table(node)


def _what(node: exp.Expression) -> str:
    if isinstance(node, exp.Lock):
        return "a locking read (FOR UPDATE, LOCK IN SHARE MODE)"
    if isinstance(node, exp.Into):
        return "INTO"
    if isinstance(node, exp.PropertyEQ):
        return "an assignment (:=)"
    if isinstance(node, exp.Parameter):
        return "a user variable"
    if isinstance(node, exp.Command):
        return "a statement the parser does not understand"
    return node.key.upper()


def _check_table(table: exp.Table) -> None:
    if table.args.get("catalog") is not None:
        raise NotReadOnly("a three-part table name")
    if not isinstance(table.this, exp.Identifier):
        raise NotReadOnly("a table the console cannot name (a table function or a variable)")
    schema = table.db.lower()
    if schema in FORBIDDEN_SCHEMAS and table.name.lower() not in MYSQL_TABLES:
        raise NotReadOnly(f"{table.db}.{table.name}: the mysql schema holds the accounts and their "
                          "password hashes; only mysql.innodb_table_stats and innodb_index_stats are read")


def _check_row_limit(tree: exp.Expression) -> None:
    """A LIMIT on the outermost query overrides the session's row cap: keep it under."""
    for node in _outermost(tree):
        limit = node.args.get("limit")
        if limit is None:
            continue
        value = limit.args.get("expression") if isinstance(limit, exp.Limit) else limit
        if not (isinstance(value, exp.Literal) and value.is_int):
            raise NotReadOnly("the LIMIT of the outermost query must be a number")
        if int(value.this) > MAX_ROWS + 1:
            raise NotReadOnly(f"LIMIT {value.this} is more than the console shows ({MAX_ROWS} rows): page "
                              f"with LIMIT {MAX_ROWS} OFFSET n")


def _outermost(tree: exp.Expression) -> Iterator[exp.Expression]:
    node: Optional[exp.Expression] = tree
    while node is not None:
        yield node
        node = node.this if isinstance(node, exp.Subquery) else None
        if isinstance(node, exp.Select):
            yield node
            return
