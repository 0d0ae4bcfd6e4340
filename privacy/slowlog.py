"""A slow log's statements become fingerprints; its headers stay, found only where records end.

A record is header lines (`# Time:`, `# User@Host:`, `# Query_time:` …, `SET timestamp=…;`,
`use db;`, the banner when the server opens the file) and then the statement as the
client sent it, which the server closes with `;` (after a trailing `-- comment` too). A
statement's string literal or comment may hold lines that look exactly like headers;
taken for headers they would leave the host as written. So header lines count only
where a record can end: nothing is pending, or the pending statement ends with `;`
outside any quote or block comment (`bundle.fingerprint.left_open`), lexed as the
server does: with backslash escapes unless its sql_mode says NO_BACKSLASH_ESCAPES.
Anything else is statement text.

The server also logs statements that never parsed, so a quote can really stay open;
to keep one from swallowing the rest of the log, a strict `# Time: …` line (a date and
nothing else) after a `;` ends it too. What lay between is not known to be statement or
records, so only the statement's first line stays (as a fingerprint, with a note), and
the header lines after such a boundary could still be the literal's, so their values
are cut to numbers there (`# User@Host: ? …`).

`SlowLogStatements` is the one implementation: the slow-log collector and the redaction
pipeline (defence in depth, block by block) both use it.
"""

from __future__ import annotations

import re
from typing import Callable, List, Optional, Tuple

from privacy.fingerprint import CLOSED, fingerprint, left_open

#: A slow-log statement longer than this is fingerprinted from its first MiB only.
MAX_STATEMENT = 1 << 20

_SLOW_KEYS = (
    "Time|User@Host|Thread_id|Schema|QC_hit|Query_time|Lock_time|Rows_sent|Rows_examined"
    "|Rows_affected|Bytes_sent|Bytes_received|Read_|Sort_|Created_tmp|Count_hit|Tmp_"
    "|Full_scan|Full_join|Filesort|Merge_passes|Priority_queue|Pages_|Old_rows_read"
    "|Engine_time|InnoDB_|Log_slow_rate|Stored_routine|explain|Id|Killed|Errno|Start|End"
)
#: The server's own `SET` line before a statement (`last_insert_id` and `insert_id` when
#: the statement used or made one).
_SET = r"SET (?:(?:last_insert_id|insert_id)=[0-9]+,)*timestamp=[0-9]+;"
#: Warnings that `log_slow_verbosity=warnings` prints (`# Warning 1292 Truncated …`).
_WARNING = re.compile(r"# (?:Note|Warning|Error) [0-9]+ ")
#: Consecutive header lines form one match (MySQL, MariaDB, Percona): `# Key: value`
#: lines, the bare `#` lines and `# explain:` table of `log_slow_verbosity=explain`, its
#: warnings, the `SET` and `use` lines, a command's `# administrator command: Quit;`
#: (which stands where a statement would), and the banner of a newly opened file.
HEAD = re.compile(
    r"(?:^(?:# (?:" + _SLOW_KEYS + r")[\w@]*:|# No InnoDB statistics|#$|# Warnings$"
    r"|# (?:Note|Warning|Error) [0-9]+ |# administrator command: [A-Za-z][\w ]*;$"
    r"|" + _SET + r"$|use [^\s;]+;$|\S+, Version: |Tcp port: |Time\s+Id\s+Command)"
    r"[^\n]*(?:\n|\Z))+",
    re.M,
)
#: In a warning's message, what the server quotes is data (`Duplicate entry '…'`): from
#: the first quote to the last, whatever quotes the data holds itself.
_QUOTED_DATA = re.compile(r"['\"].*(?:['\"]|$)")
UNTERMINATED = " /* mydiag: a quote never closed; what followed up to the next # Time: left out */"
#: A `# Time:` line with nothing but a time in it (MariaDB's and MySQL's forms).
_STRICT_TIME = re.compile(
    r"# Time: (?:[0-9]{6} [ 0-9][0-9]:[0-9]{2}:[0-9]{2}"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[-+][0-9]{2}:[0-9]{2})?)"
    r"\n?\Z"
)
#: In headers that may be a literal's: every value that is not a number, `@` or a `Key:`.
_VALUE = re.compile(r"(?<![^\s\[])(?![\w@]+:(?:\s|$))(?![0-9.]+(?:\s|$)|@(?:\s|$))[^\s\[\]]+")

Count = Callable[[str, int], None]


class SlowLogStatements:
    """Replaces the statement text of a slow log by fingerprints, block by block.

    With `cut`, the text starts somewhere inside the log: lines before the first header
    belong to a record whose header is missing and are dropped, and that first header is
    treated like one after an open quote.
    """

    def __init__(self, count: Count, *, cut: bool = False, backslash_escapes: bool = True) -> None:
        self.count = count
        #: Which of left_open's two lexings is the server's.
        self.lexing = 0 if backslash_escapes else 1
        self.pending: List[str] = []
        self.pending_bytes = 0
        self.truncated = False
        self.state = CLOSED
        self.has_text = False
        self.closed_by_semicolon = False
        self.doubtful = cut
        self.unterminated = False
        self.started = not cut
        #: Statements written and lines dropped before the first header.
        self.statements = 0
        self.dropped = 0

    def block(self, text: str) -> str:
        out: List[str] = []
        pos = 0
        while True:
            head = HEAD.search(text, pos)
            if head is None:
                break
            if head.start() > pos:
                self._statement(text[pos:head.start()])
            boundary = self._boundary(head.group())
            if boundary is None:
                # Not where a record can end: its first line is statement text.
                end = text.find("\n", head.start())
                end = len(text) if end < 0 else end + 1
                self._statement(text[head.start():end])
                pos = end
                continue
            self.flush(out)
            out.append(_scrubbed(head.group()) if boundary == "doubtful" else _headers(head.group()))
            self.started = True
            pos = head.end()
        if pos < len(text):
            self._statement(text[pos:])
        return "".join(out)

    def _boundary(self, head: str) -> Optional[str]:
        if not self.has_text:
            return "doubtful" if self.doubtful else "real"
        if not self.closed_by_semicolon or head.startswith("# administrator command: "):
            # A command's line stands where its statement would, behind headers, never
            # behind statement text: there it is a `#` comment of the statement.
            return None
        if not self.state[self.lexing]:
            return "real"
        first = head.split("\n", 1)[0]
        if _STRICT_TIME.match(first):
            self.doubtful = self.unterminated = True
            return "doubtful"
        return None

    def _statement(self, piece: str) -> None:
        if not self.started:
            self.dropped += piece.count("\n") + (not piece.endswith("\n"))
            return
        self.doubtful = False
        self.state = left_open(piece, self.state)
        if piece.strip():
            self.has_text = True
            self.closed_by_semicolon = piece.rstrip().endswith(";")
        room = MAX_STATEMENT - self.pending_bytes
        if len(piece) > room:
            piece = piece[:max(room, 0)]
            self.truncated = True
        if piece:
            self.pending.append(piece)
            self.pending_bytes += len(piece)

    def flush(self, out: List[str]) -> None:
        """Write the pending statement's fingerprint (at a boundary, and at the end)."""
        terminated, unterminated = self.closed_by_semicolon, self.unterminated
        self.state, self.has_text, self.closed_by_semicolon = CLOSED, False, False
        self.unterminated = False
        if not self.pending:
            return
        statement = "".join(self.pending)
        note = ""
        if unterminated:
            # Past the first line it may be records as much as statement: none of it stays.
            statement = next(line for line in statement.splitlines() if line.strip())
            self.count("statement_unterminated", 1)
            note, terminated = UNTERMINATED, False
        # Every row of a multi-row VALUES stays (as `(?+)`): pt-query-digest takes such an
        # INSERT for one by its second row, and must put it in the original's class.
        reduced = fingerprint(statement, rows=False)
        if reduced != " ".join(statement.split()):
            self.count("statement_fingerprint", 1)
        if terminated and reduced and not reduced.endswith(";"):
            # The server's own `;` after a quote that never closed: the record still ends.
            reduced += ";"
        if self.truncated:
            self.count("statement_truncated", 1)
            reduced += " /* mydiag: statement longer than 1 MiB, the rest left out */"
        if reduced:
            out.append(reduced + note + "\n")
            self.statements += 1
        self.pending, self.pending_bytes, self.truncated = [], 0, False


def _headers(head: str) -> str:
    """Header lines as written, but for the data a warning quotes."""
    if "# Note " not in head and "# Warning " not in head and "# Error " not in head:
        return head
    return "\n".join(_QUOTED_DATA.sub("?", line) if _WARNING.match(line) else line
                     for line in head.split("\n"))


def _scrubbed(head: str) -> str:
    return "\n".join(_scrubbed_line(line) for line in head.split("\n"))


def _scrubbed_line(line: str) -> str:
    if _STRICT_TIME.match(line) or re.fullmatch(_SET, line) or line in ("#", "# Warnings"):
        return line
    if line.startswith("use "):
        return "use ?;"
    if line.startswith("# "):
        return "# " + _VALUE.sub("?", line[2:])
    return _VALUE.sub("?", line)


def fingerprint_slow_log(
    text: str, *, cut: bool = False, backslash_escapes: bool = True
) -> Tuple[str, int, int]:
    """(log with statements fingerprinted, statements, lines dropped before the first record)."""
    splitter = SlowLogStatements(lambda rule, n: None, cut=cut, backslash_escapes=backslash_escapes)
    out = [splitter.block(text)]
    splitter.flush(out)
    return "".join(out), splitter.statements, splitter.dropped
