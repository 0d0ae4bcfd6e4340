"""InnoDB's dumps without the customer's data: SHOW ENGINE INNODB STATUS and the error log.

The monitor output is kept whole, but three of its sections quote the data itself: the
open transactions, the latest deadlock and the latest foreign-key error print each
transaction's statement (with its literals) and dump the locked or offending records
field by field, in hex and as text (`3: len 17; hex 616c…; asc alice@example.com;;`).
In those sections every record field keeps its number and length and loses its bytes,
and every line that is not one of InnoDB's own (a statement, on one line or several)
becomes a fingerprint, as statements elsewhere in the bundle do. Lines are recognised
by what InnoDB prints, so an unexpected line is treated as statement text: the safe
direction.

With `innodb_print_all_deadlocks=ON` the server writes the same deadlock report into
the error log, each part behind the log's own prefix (MariaDB and MySQL 5.7:
`2026-12-01 21:09:07 5 [Note] InnoDB: *** (1) TRANSACTION:`; MySQL 8:
`2024-08-04T07:51:55.786346Z 0 [Note] [MY-012469] [InnoDB] *** (1) TRANSACTION:`), from
`Transactions deadlock detected` to `*** WE ROLL BACK TRANSACTION (n)`. `ErrorLogInnodb`
gives those lines the same treatment and lets every other line of the log through.

A statement's literal can hold lines that look like InnoDB's own (`*** …`, a section
rule, a log prefix). While a statement leaves a quote or block comment open
(`bundle.fingerprint.left_open`, with backslash escapes as servers lex by default), its
lines stay statement text whatever they look like, up to what InnoDB prints of a
session at most (PRINTED_SESSION: it cuts longer statements, inside a literal too);
the line after that is InnoDB's own.

Both work block by block (a section, or a statement, may span two blocks), like the
slow-log statements of `privacy.slowlog`.
"""

from __future__ import annotations

import re
from typing import Callable, List, Optional

from privacy.fingerprint import CLOSED, fingerprint, left_open
from privacy.rules import MASK

#: The sections that quote statements and records.
SECTIONS = frozenset({"TRANSACTIONS", "LATEST DETECTED DEADLOCK", "LATEST FOREIGN KEY ERROR"})

_RULE = re.compile(r"^(?:-{3,}|={3,})\s*$")
_HEADER = re.compile(r"^[A-Z][A-Z0-9 /]*[A-Z]\s*$")
#: One field of a record dump (MySQL and MariaDB print one per line).
_FIELD = re.compile(r"^( ?\d+: len \d+; )hex [0-9a-f]*; asc .*$")
#: InnoDB's own lines in those sections (MySQL 5.7 to 8.4, MariaDB 10.x to 11.x). Anything
#: else there is statement text.
_OWN = re.compile(
    r"^(?:"
    r"---TRANSACTION [^\n]*"
    r"|------- TRX HAS BEEN WAITING [^\n]*"
    r"|\*\*\* [^\n]*"
    r"|TRANSACTION \d+, [^\n]*"
    r"|\d{4}-\d\d-\d\d[ T][ \d]\d:\d\d:\d\d[0-9.:+Z-]*(?: (?:0x)?[0-9a-f]+)?(?: Transaction:)?"
    r"|mysql tables in use \d+, locked \d+"
    r"|(?:LOCK WAIT )?\d+ lock struct\(s\), heap size \d+, \d+ row lock\(s\)[^\n]*"
    r"|(?:MySQL|MariaDB) thread id \d+, OS thread handle (?:0x)?[0-9a-f]+, query id \d+[^\n]*"
    r"|RECORD LOCKS space id \d+ [^\n]*"
    r"|TABLE LOCK table [^\n]*"
    r"|Record lock, heap no \d+ [^\n]*"
    r"|(?:PHYSICAL RECORD|DATA TUPLE): [^\n]*"
    r"| ?\d+: SQL NULL[^\n]*"
    r"|Trx id counter \d+"
    r"|Purge done for trx's [^\n]*"
    r"|History list length \d+"
    r"|LIST OF TRANSACTIONS FOR EACH SESSION:"
    r"|Trx read view [^\n]*"
    r"|Trx #rec lock waits [^\n]*"
    r"|Foreign key constraint fails for table [^\n]*"
    r"|,"
    r"|  CONSTRAINT `[^\n]*"
    r"|But in parent table [^\n]*"
    r"|But in child table [^\n]*"
    r"|the closest match we can find is record:"
    r"|Trying to (?:add|delete|update|add to index)[^\n]*"
    r"|There is no index in [^\n]*"
    r"|there is a record:"
    r"|TOO DEEP OR LONG SEARCH IN THE LOCK TABLE WAITS-FOR GRAPH[^\n]*"
    r"|WE ROLL BACK TRANSACTION [^\n]*"
    r"|\d+ lock struct\(s\)[^\n]*"
    r"|undo log entries \d+"
    r")\s*$"
)

#: What InnoDB prints of a session at most, its thread line, a line end and the statement
#: together (the buffer of innobase_mysql_print_thd less its NUL): MySQL 1,023 bytes,
#: MariaDB 10.11 3,071. A statement that reaches it was cut there, inside a literal too,
#: and the next line is InnoDB's own.
PRINTED_SESSION = {"MySQL": 1023, "MariaDB": 3071}
#: More than any of them prints of one statement: where the thread line is unknown (or
#: an older MariaDB cut at 1,023), a quote still open after this many bytes was cut.
PRINTED_STATEMENT = 4096
_THREAD_LINE = re.compile(r"(MySQL|MariaDB) thread id [0-9]+, ")

#: The error log's prefix in front of InnoDB's lines (MariaDB, MySQL 5.6 to 8.4). MariaDB pads
#: the hour with a space (`2026-12-02  1:02:44`), MySQL with a zero.
_LOG_PREFIX = re.compile(
    r"(?P<p>[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][ 0-9][0-9]:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:Z|[-+][0-9]{2}:?[0-9]{2})?[ \t]+(?:0x)?[0-9a-f]+[ \t]+(?:\[\w+\][ \t]+)?"
    r"(?:\[MY-[0-9]+\][ \t]+\[InnoDB\][ \t]?|InnoDB:[ \t]?)?)"
)
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][ 0-9][0-9]:[0-9]{2}:[0-9]{2}")
_DEADLOCK_START = "Transactions deadlock detected"
_DEADLOCK_END = re.compile(r"\*\*\* WE ROLL BACK TRANSACTION \([0-9]+\)")
#: A new server start: a report cut by a crash is over.
_RESTART = re.compile(r"Starting MariaDB|starting as process|ready for connections")

Count = Callable[[str, int], None]


class _Records:
    """The lines of one part that quotes data: record fields, InnoDB's own lines, statements."""

    def __init__(self, count: Count) -> None:
        self.count = count
        self.statement: List[str] = []
        self.state = CLOSED
        self.size = 0
        #: The most InnoDB prints of the current session (thread line included), and what
        #: its thread line took of that.
        self.cap = PRINTED_STATEMENT
        self.thread_line = 0

    def inside_statement(self) -> bool:
        """A statement leaves a quote or comment open: the next line is still its text."""
        # Lexed as the server does by default, with backslash escapes.
        return (bool(self.statement) and self.state[0] != ""
                and self.thread_line + self.size < self.cap and self.size < PRINTED_STATEMENT)

    def line(self, body: str, out: List[str], line: str) -> None:
        if self.inside_statement():
            self._take(body)
            return
        field = _FIELD.match(body)
        if field:
            self.end(out)
            self.count("innodb_row_data", 1)
            out.append(f"{field.group(1)}{MASK} row data\n")
        elif _OWN.match(body):
            self.end(out)
            thread = _THREAD_LINE.match(body)
            self.cap = PRINTED_SESSION[thread.group(1)] if thread else PRINTED_STATEMENT
            self.thread_line = _bytes(body) if thread else 0
            out.append(line)
        else:
            self._take(body)

    def _take(self, body: str) -> None:
        self.statement.append(body)
        self.state = left_open(body + "\n", self.state)
        self.size += _bytes(body) + 1

    def end(self, out: List[str]) -> None:
        if not self.statement:
            return
        text = "\n".join(self.statement)
        self.statement, self.state, self.size = [], CLOSED, 0
        reduced = fingerprint(text)
        if reduced != " ".join(text.split()):
            self.count("statement_fingerprint", 1)
        out.append(reduced + "\n")


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))


class _ByLine:
    """A text reduced line by line as it streams through, block by block; a statement
    that spans two blocks is held back until it ends (or until `flush`)."""

    def __init__(self, count: Count) -> None:
        self.records = _Records(count)

    def block(self, text: str) -> str:
        out: List[str] = []
        for line in text.splitlines(keepends=True):
            self._line(line, out)
        return "".join(out)

    def flush(self, out: List[str]) -> None:
        """What is still held back (a statement at the very end)."""
        self.records.end(out)

    def _line(self, line: str, out: List[str]) -> None:
        raise NotImplementedError


class InnodbStatus(_ByLine):
    """Reduces the monitor output as it streams through, block by block."""

    def __init__(self, count: Count) -> None:
        super().__init__(count)
        self.section: Optional[str] = None
        self.after_rule = False

    def _line(self, line: str, out: List[str]) -> None:
        body = line.rstrip("\r\n")
        if self.records.inside_statement():
            self.records.line(body, out, line)
            return
        if _RULE.match(body):
            self.records.end(out)
            self.after_rule = True
            out.append(line)
            return
        if self.after_rule and _HEADER.match(body):
            self.records.end(out)
            self.section = body.strip()
            self.after_rule = False
            out.append(line)
            return
        self.after_rule = False
        if self.section not in SECTIONS or not body.strip():
            self.records.end(out)
            out.append(line)
            return
        self.records.line(body, out, line)


class ErrorLogInnodb(_ByLine):
    """The error log with its InnoDB deadlock reports reduced like the monitor's."""

    def __init__(self, count: Count) -> None:
        super().__init__(count)
        self.in_report = False

    def block(self, text: str) -> str:
        if not self.in_report and "InnoDB" not in text:
            return text
        return super().block(text)

    def _line(self, line: str, out: List[str]) -> None:
        body = line.rstrip("\r\n")
        if self.in_report and self.records.inside_statement():
            self.records.line(body, out, line)
            return
        prefix = _LOG_PREFIX.match(body) if _TIMESTAMP.match(body) else None
        if prefix is None:
            if self.in_report and body.strip():
                self.records.line(body, out, line)
            else:
                self.records.end(out)
                out.append(line)
            return
        head, rest = prefix.group("p"), body[prefix.end():]
        innodb = "InnoDB" in head
        if innodb and (_DEADLOCK_START in rest or not rest.strip() or rest.startswith("*** ")):
            # The report's own lines; one met first means the tail began inside a report.
            self.records.end(out)
            self.in_report = not _DEADLOCK_END.match(rest)
            out.append(line)
        elif self.in_report and innodb:
            self.records.end(out)
            out.append(head)
            self.records.line(rest, out, rest + "\n")
        else:
            self.records.end(out)
            if _RESTART.search(rest):
                self.in_report = False
            out.append(line)
