"""The diag console's SQL session: the account checked at start, rows capped by the server,
one statement at a time per remote session, and a time budget per remote session.

- The session is the collectors' safe one (read-only transactions, `max_statement_time`
  or `max_execution_time`, a tiny lock wait) plus `sql_select_limit` = MAX_ROWS + 1, so
  the server itself sends at most one row more than the console shows (SHOW included).
- At connect, before any typed statement, it reads the session's sql_mode (how text is
  read: agent/session/sqllex.py), its client character set (an ASCII-compatible one, or a
  multi-byte character could hide a quote) and its own grants (agent/session/diagaccount.py).
- Rows stream through an unbuffered cursor; should the server ever send more than the
  cap, the connection is dropped rather than read to the end. The row cap alone does not
  bound bytes (1001 cells of `REPEAT('a', 16000000)` are 16 GB), so each cell is cut, as
  it arrives, to what the console shows, and after MAX_RESULT_BYTES of one result the
  console stops reading and drops the connection (the next statement opens a new one).
- A remote session's console channels share a lock and a ledger in the session folder:
  one statement runs at a time, and the statement time spent is added up against a
  budget (wall time, which bounds the server CPU a single-threaded statement can use).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional

from agent.session import diagaccount
from agent.session.diagoutput import MAX_CELL
from agent.session.sqlcheck import MAX_ROWS
from agent.session.sqllex import Mode
from collectors.mysql.session import ConnectSpec, Session
from collectors.mysql.sql import Statement
from collectors.registry import CollectorError

#: Statement time a whole remote session may spend, summed over its console channels.
BUDGET = 600.0
#: Client character sets in which every byte below 0x80 is the ASCII character.
ASCII_SAFE_CHARSETS = frozenset({"utf8mb4", "utf8mb3", "utf8", "latin1", "ascii", "binary"})
#: Bytes of one result the console reads (cells counted before they are cut); past it the
#: console stops reading and says so. A result the console can show is far smaller.
MAX_RESULT_BYTES = 64 << 20
#: A cell keeps one character more than the console shows (so it still knows to add `…`);
#: bytes keep four per character (UTF-8).
KEEP_CHARS = MAX_CELL + 1
LEDGER = "diag-ledger.json"
LOCK = "diag-statement.lock"
_CONSOLE = Statement("console", "")


class Privileged(Exception):
    """The account holds more than diagnostics need; the message says what, in one line."""


class Spent(Exception):
    """The remote session has used up its statement time, or another statement is running."""


@dataclass
class Result:
    names: List[str]
    rows: List[tuple]
    #: The server had more rows than the console shows.
    more: bool = False
    warnings: List[str] = field(default_factory=list)


class DiagSession(Session):
    """A Session for typed statements: capped rows, and what the console must know first."""

    def __init__(self, spec: ConnectSpec, *, statement_timeout: float) -> None:
        super().__init__(spec, statement_timeout=statement_timeout)
        self.mode = Mode()
        self.excess: Optional[str] = None
        self.account = spec.effective_user

    def _session_settings(self, family: str) -> str:
        return super()._session_settings(family) + f", sql_select_limit={MAX_ROWS + 1}"

    def connect(self) -> None:
        """Connect, then learn the sql_mode and the account's grants (Privileged is not raised
        here: `excess` says what is too much, and the console decides)."""
        super().connect()
        row = self.query(Statement("console-start", "SELECT @@sql_mode AS sql_mode, "
                                   "@@character_set_client AS charset, CURRENT_USER() AS account, "
                                   "@@sql_select_limit AS row_cap"))[0]
        self.mode = Mode.from_sql_mode(str(row["sql_mode"] or ""))
        self.account = str(row["account"] or self.account)
        if str(row["charset"]).lower() not in ASCII_SAFE_CHARSETS:
            raise CollectorError(f"the session's client character set is {row['charset']}, in which a "
                                 "multi-byte character can hide a quote: the console needs utf8mb4", "")
        if int(row["row_cap"] or 0) != MAX_ROWS + 1:
            raise CollectorError("the server did not take the console's row cap (sql_select_limit)", "")
        grants = self.query(Statement("console-grants", "SHOW GRANTS"))
        self.excess = diagaccount.excess((str(next(iter(r.values()))) for r in grants), self.mode)

    def stream(self, text: str) -> Result:
        """Run one checked statement; keep at most MAX_ROWS + 1 rows of what comes back, each
        cell cut to what the console shows, and read at most MAX_RESULT_BYTES of it."""
        if self._conn is None:
            self._conn = self._open()  # the last result was cut: its connection was dropped
        got = self.stream_rows(text, MAX_ROWS + 1, _CONSOLE, cell_chars=KEEP_CHARS,
                               max_bytes=MAX_RESULT_BYTES)
        warnings = list(got.warnings)
        if got.stopped_at_bytes:
            warnings.append(f"the console stopped reading this result after {MAX_RESULT_BYTES >> 20} MiB "
                            f"(it shows {MAX_CELL} characters of a cell): narrow the query")
        return Result(got.names, got.rows, more=got.more or len(got.rows) > MAX_ROWS, warnings=warnings)


class Ledger:
    """The statement lock and the time spent, shared by the channels of one remote session."""

    def __init__(self, folder: Path, budget: float = BUDGET, wait: float = 15.0) -> None:
        self.folder = folder
        self.budget = budget
        self.wait = wait

    def spent(self) -> float:
        try:
            return float(json.loads((self.folder / LEDGER).read_text()).get("spent", 0.0))
        except (OSError, ValueError, AttributeError, TypeError):
            return 0.0

    @contextlib.contextmanager
    def statement(self) -> Iterator[None]:
        """Hold the session's statement lock; refuse when the budget is spent; count the time."""
        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise Spent("another channel of this session is still running a statement "
                                    "(one at a time per session)") from None
                    time.sleep(0.05)
            spent = self.spent()
            if spent >= self.budget:
                raise Spent(f"this session has used its {self.budget:g}s of statement time (the budget "
                            "that keeps diagnostics light on the server); the customer can grant a new "
                            "session")
            began = time.monotonic()
            try:
                yield
            finally:
                self._save(spent + time.monotonic() - began)
        finally:
            os.close(fd)

    def _save(self, spent: float) -> None:
        path = self.folder / LEDGER
        tmp = path.with_name(f".{LEDGER}.{os.getpid()}")
        tmp.write_text(json.dumps({"spent": round(spent, 3)}))
        os.replace(tmp, path)
