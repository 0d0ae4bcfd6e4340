"""Proof before anything is public: replay a package on a fresh server and compare plans.

`replay` connects to `--verify-on mysql://USER[:PASS]@HOST:PORT`, runs repro.sql statement
by statement (split by the share tokenizer, so a `;` inside a string or a name never ends
one), takes EXPLAIN FORMAT=JSON of the mapped query, and compares it with the customer's
plan (expected_explain.json): the join order, and per table the access type, the key, the
key length, the rows within a factor (or a few rows for tiny counts) and `filtered` within
some points. The package runs on that server as written: use a fresh, disposable one.

This module is the one place outside collectors.mysql.session that connects to a server:
it must write (CREATE, INSERT, REPLACE INTO the statistics tables), which the read-only
session refuses, and it only ever connects to the support side's verification server.
Every statement has a server-side time limit and the client a read timeout.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

#: Rows may differ by this factor (estimates on synthetic rows are not the customer's)…
ROWS_FACTOR = 2.0
#: …or by this many rows, for tiny counts.
ROWS_SLACK = 10
#: `filtered` may differ by this many percentage points.
FILTERED_POINTS = 20.0
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 600
#: Seconds any one replayed statement may run on the server.
STATEMENT_LIMIT = 300


class VerifyError(Exception):
    """The replay could not start: `kind` is usage (a bad DSN), connect or access."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Target:
    user: str
    password: Optional[str]
    host: str
    port: int

    def __str__(self) -> str:  # never the password
        return f"mysql://{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class Access:
    """One table of a plan, in join order."""

    table: str
    access_type: str
    key: str
    key_length: str
    rows: Optional[float]
    filtered: Optional[float]


@dataclass
class Comparison:
    same: bool
    #: Where it was replayed ("MariaDB 10.11.6-MariaDB"), for the README's sentence.
    target: str
    lines: List[str] = field(default_factory=list)
    actual: Optional[Dict[str, Any]] = None


def parse_dsn(text: str) -> Target:
    """mysql://USER[:PASS]@HOST[:PORT]; VerifyError("usage") otherwise (never echoing a password)."""
    shape = "--verify-on takes mysql://USER[:PASS]@HOST:PORT"
    try:
        parts = urllib.parse.urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise VerifyError("usage", f"{shape} (the port is not a number)") from None
    if parts.scheme not in ("mysql", "mariadb") or not parts.hostname or not parts.username:
        raise VerifyError("usage", shape)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise VerifyError("usage", f"{shape} (no database, path or options)")
    password = urllib.parse.unquote(parts.password) if parts.password is not None else None
    return Target(urllib.parse.unquote(parts.username), password, parts.hostname, port or 3306)


def split(script: str) -> List[str]:
    """The statements of a script, read by the share tokenizer and written again from its
    tokens (comments dropped)."""
    from report.share.sqltext import tokenize, write

    out: List[str] = []
    current: List[Any] = []
    for token in tokenize(script):
        if token.kind == "op" and token.value == ";":
            if current:
                out.append(write(current))
            current = []
        else:
            current.append(token)
    if current:
        out.append(write(current))
    return out


def replay(script: str, expected: Optional[Dict[str, Any]], target: Target) -> Comparison:
    """Run `script` (repro.sql) on `target`; the comparison of its last EXPLAIN with `expected`."""
    import pymysql

    try:
        conn = pymysql.connect(host=target.host, port=target.port, user=target.user,
                               password=target.password or "", connect_timeout=CONNECT_TIMEOUT,
                               read_timeout=READ_TIMEOUT, write_timeout=READ_TIMEOUT, autocommit=True,
                               charset="utf8mb4")
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        if code in (1045, 1044, 1698):
            raise VerifyError("access", f"{target} refused the credentials") from None
        raise VerifyError("connect", f"cannot connect to {target}: {_line(exc)}") from None
    except (OSError, pymysql.err.MySQLError) as exc:
        raise VerifyError("connect", f"cannot connect to {target}: {_line(exc)}") from None
    with conn, conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        version = str(cur.fetchone()[0])
        mariadb = "mariadb" in version.lower()
        where = f"{'MariaDB' if mariadb else 'MySQL'} {version}"
        # A server-side limit on every statement too (the read timeout is the client's).
        cur.execute(f"SET SESSION max_statement_time = {STATEMENT_LIMIT}" if mariadb
                    else f"SET SESSION max_execution_time = {STATEMENT_LIMIT * 1000}")
        plan_text = None
        statements = split(script)
        for number, statement in enumerate(statements, 1):
            try:
                cur.execute(statement)
                rows = cur.fetchall()
            except pymysql.err.MySQLError as exc:
                return Comparison(False, where, [f"statement {number} of repro.sql failed: {_line(exc)}"])
            if statement.upper().startswith("EXPLAIN") and rows:
                plan_text = rows[0][0]
    if plan_text is None:
        return Comparison(False, where, ["repro.sql gave no EXPLAIN"])
    try:
        actual = json.loads(plan_text)
    except ValueError:
        return Comparison(False, where, ["the replayed EXPLAIN FORMAT=JSON is not JSON"])
    if expected is None:
        return Comparison(False, where, ["no expected plan to compare with"] + describe(accesses(actual)),
                          actual)
    same, lines = compare(expected, actual)
    return Comparison(same, where, lines, actual)


def accesses(plan: Any) -> List[Access]:
    """Every table access of a plan, in the order the plan lists them (the join order)."""
    found: List[Access] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "table" and isinstance(value, dict) and "table_name" in value:
                    found.append(_access(value))
                    walk({k: v for k, v in value.items() if isinstance(v, (dict, list))})
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(plan)
    return found


def _access(table: Dict[str, Any]) -> Access:
    rows = table.get("rows", table.get("rows_examined_per_scan"))
    return Access(str(table.get("table_name")), str(table.get("access_type") or ""),
                  str(table.get("key") or ""), str(table.get("key_length") or ""),
                  _number(rows), _number(table.get("filtered")))


def compare(expected: Any, actual: Any, factor: float = ROWS_FACTOR, slack: int = ROWS_SLACK,
            points: float = FILTERED_POINTS) -> Tuple[bool, List[str]]:
    """(same, lines): the join order and each table's access compared within the tolerances."""
    want, got = accesses(expected), accesses(actual)
    lines: List[str] = []
    same = True
    order_want, order_got = [a.table for a in want], [a.table for a in got]
    if order_want != order_got:
        same = False
        lines.append(f"join order: expected {', '.join(order_want) or '-'}; "
                     f"replayed {', '.join(order_got) or '-'}")
    else:
        lines.append(f"join order: {', '.join(order_got) or '-'} (same)")
    for w, g in zip(want, got):
        problems = []
        for label, a, b in (("access type", w.access_type, g.access_type), ("key", w.key, g.key),
                            ("key length", w.key_length, g.key_length)):
            if a != b:
                problems.append(f"{label} {a or '-'} -> {b or '-'}")
        if not _rows_close(w.rows, g.rows, factor, slack):
            problems.append(f"rows {_shown(w.rows)} -> {_shown(g.rows)}")
        if w.filtered is not None and g.filtered is not None and abs(w.filtered - g.filtered) > points:
            problems.append(f"filtered {_shown(w.filtered)} -> {_shown(g.filtered)}")
        if problems:
            same = False
            lines.append(f"{g.table}: " + "; ".join(problems))
        else:
            lines.append(f"{g.table}: {g.access_type} on {g.key or 'no key'}, rows {_shown(g.rows)} "
                         f"(expected {_shown(w.rows)}), filtered {_shown(g.filtered)} (same)")
    return same, lines


def describe(found: List[Access]) -> List[str]:
    return [f"{a.table}: {a.access_type} on {a.key or 'no key'}, rows {_shown(a.rows)}" for a in found]


def _rows_close(want: Optional[float], got: Optional[float], factor: float, slack: int) -> bool:
    if want is None or got is None:
        return want is None and got is None
    if abs(want - got) <= slack:
        return True
    low, high = sorted((want, got))
    return low > 0 and high / low <= factor


def _number(value: Any) -> Optional[float]:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _shown(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:g}"


def _line(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    text = args[1] if len(args) > 1 and isinstance(args[1], str) else str(exc)
    return " ".join(text.split())[:300]
