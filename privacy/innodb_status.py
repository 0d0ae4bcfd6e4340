"""SHOW ENGINE INNODB STATUS without the customer's data.

The monitor output is kept whole, but three of its sections quote the data itself: the
open transactions, the latest deadlock and the latest foreign-key error print each
transaction's statement (with its literals) and dump the locked or offending records
field by field, in hex and as text (`3: len 17; hex 616c…; asc alice@example.com;;`).
In those sections every record field keeps its number and length and loses its bytes,
and every line that is not one of InnoDB's own (a statement, on one line or several)
becomes a fingerprint, as statements elsewhere in the bundle do. Lines are recognised
by what InnoDB prints, so an unexpected line is treated as statement text: the safe
direction.

`InnodbStatus` works block by block (a section, or a statement, may span two blocks), like
the slow-log statements of `privacy.redact`.
"""

from __future__ import annotations

import re
from typing import Callable, List, Optional

from privacy.fingerprint import fingerprint
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
    r"|\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[0-9.:+Z-]*(?: (?:0x)?[0-9a-f]+)?(?: Transaction:)?"
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

Count = Callable[[str, int], None]


class InnodbStatus:
    """Reduces the monitor output as it streams through, block by block."""

    def __init__(self, count: Count) -> None:
        self.count = count
        self.section: Optional[str] = None
        self.after_rule = False
        self.statement: List[str] = []

    def block(self, text: str) -> str:
        out: List[str] = []
        for line in text.splitlines(keepends=True):
            self._line(line, out)
        return "".join(out)

    def flush(self, out: List[str]) -> None:
        """What is still held back (a statement at the very end)."""
        self._end_statement(out)

    def _line(self, line: str, out: List[str]) -> None:
        body = line.rstrip("\r\n")
        if _RULE.match(body):
            self._end_statement(out)
            self.after_rule = True
            out.append(line)
            return
        if self.after_rule and _HEADER.match(body):
            self._end_statement(out)
            self.section = body.strip()
            self.after_rule = False
            out.append(line)
            return
        self.after_rule = False
        if self.section not in SECTIONS or not body.strip():
            self._end_statement(out)
            out.append(line)
            return
        field = _FIELD.match(body)
        if field:
            self._end_statement(out)
            self.count("innodb_row_data", 1)
            out.append(f"{field.group(1)}{MASK} row data\n")
        elif _OWN.match(body):
            self._end_statement(out)
            out.append(line)
        else:
            self.statement.append(body)

    def _end_statement(self, out: List[str]) -> None:
        if not self.statement:
            return
        text = "\n".join(self.statement)
        self.statement = []
        reduced = fingerprint(text)
        if reduced != " ".join(text.split()):
            self.count("statement_fingerprint", 1)
        out.append(reduced + "\n")
