"""Is this SQL statement read-only? The diag console's first line of defence.

The second line is the session itself (collectors.mysql.session.Session): read-only
transactions and a server-side time limit on every statement. This check refuses what
those would not stop, or would stop too late: writes and DDL, anything that locks,
waits or reads files on the server, several statements at once, and MySQL's executable
comments (`/*! … */`), whose contents the server runs.
"""

from __future__ import annotations

import re
from typing import Optional

# Strings, quoted identifiers and comments, in the order they start (a quote inside a
# comment or a comment marker inside a string cannot fool the scan).
_LEXEMES = re.compile(
    r"'(?:[^'\\]|\\.|'')*'?"
    r"|\"(?:[^\"\\]|\\.|\"\")*\"?"
    r"|`(?:[^`]|``)*`?"
    r"|/\*.*?(?:\*/|\Z)"
    r"|--(?=\s|\Z)[^\n]*"
    r"|\#[^\n]*",
    re.S,
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")

READ_ONLY_FIRST = {"SELECT", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "WITH", "TABLE", "VALUES", "USE",
                   "HELP"}
#: Words that never belong in a read-only statement, wherever they appear.
WRITE_WORDS = {
    "INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "DROP", "CREATE", "ALTER", "TRUNCATE", "RENAME",
    "GRANT", "REVOKE", "SET", "LOCK", "UNLOCK", "CALL", "DO", "HANDLER", "LOAD", "INTO", "KILL",
    "SHUTDOWN", "INSTALL", "UNINSTALL", "FLUSH", "RESET", "PURGE", "CHANGE", "START", "STOP",
    "OPTIMIZE", "REPAIR", "ANALYZE", "CHECKSUM", "BINLOG", "EXECUTE", "PREPARE", "DEALLOCATE",
    "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "XA", "IMPORT", "CLONE", "RESTART", "SHARE",
}
#: Functions that lock, wait, burn CPU, change sequences or read server files.
BAD_FUNCTIONS = {
    "GET_LOCK", "RELEASE_LOCK", "RELEASE_ALL_LOCKS", "SLEEP", "BENCHMARK", "LOAD_FILE", "NEXTVAL",
    "SETVAL", "LASTVAL", "MASTER_POS_WAIT", "SOURCE_POS_WAIT", "MASTER_GTID_WAIT",
    "WAIT_FOR_EXECUTED_GTID_SET", "WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS", "SYS_EXEC", "SYS_EVAL",
}
CLIENT_COMMANDS = ("\\!", "system", "\\.", "source", "\\r", "connect", "pager", "\\P", "tee", "\\T")


class NotReadOnly(ValueError):
    """The statement was refused; the message says why, in one line."""


def _strip(sql: str) -> str:
    """The statement with strings and quoted names blanked and comments removed."""

    def blank(match: re.Match) -> str:
        text = match.group()
        if text.startswith(("/*!", "/*M!")):
            raise NotReadOnly("executable comments (/*! … */) are not allowed: "
                              "the server runs their contents")
        if text[0] in "'\"`":
            return " ? "
        return " "

    return _LEXEMES.sub(blank, sql)


def is_client_command(text: str) -> Optional[str]:
    """The mysql client command `text` starts with (`\\!`, `system`, `source`, …), if any."""
    lowered = text.strip().lower()
    if lowered.startswith("\\"):
        return lowered[:2]
    for command in CLIENT_COMMANDS:
        if lowered == command.lower() or lowered.startswith(command.lower() + " "):
            return command
    return None


def check(sql: str) -> str:
    """The statement to run (a trailing `;` or `\\G` removed), or NotReadOnly."""
    text = sql.strip()
    command = is_client_command(text)
    if command is not None:
        raise NotReadOnly(f"`{command}` is a mysql client command; this console runs no client "
                          "commands and no shell")
    bare = _strip(text).strip()
    while bare.endswith(";"):
        bare = bare[:-1].rstrip()
    if bare.endswith("\\G") or bare.endswith("\\g"):
        bare = bare[:-2].rstrip()
    if not bare:
        raise NotReadOnly("an empty statement")
    if ";" in bare:
        raise NotReadOnly("one statement at a time")
    if "\\" in bare:
        raise NotReadOnly("a backslash command inside a statement")
    words = [w.upper() for w in _WORD.findall(bare)]
    first = words[0] if words else ""
    if first not in READ_ONLY_FIRST:
        raise NotReadOnly(f"{first or 'this'} is not a read-only statement (allowed: SELECT, SHOW, "
                          "EXPLAIN, DESCRIBE, WITH … SELECT)")
    if first in ("SHOW", "HELP", "USE"):
        return _statement(text)
    for word in words:
        if word in WRITE_WORDS:
            raise NotReadOnly(f"{word} has no place in a read-only statement")
    for match in _WORD.finditer(bare):
        if match.group().upper() in BAD_FUNCTIONS and bare[match.end():].lstrip().startswith("("):
            raise NotReadOnly(f"{match.group().upper()}() may lock, wait or read server files: not allowed")
    if re.search(r"\bFOR\s+UPDATE\b|\bLOCK\s+IN\b", bare, re.I):
        raise NotReadOnly("locking reads are not allowed")
    return _statement(text)


def _statement(text: str) -> str:
    text = text.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if text.endswith(("\\G", "\\g")):
        text = text[:-2].rstrip()
    return text


def vertical(sql: str) -> bool:
    """`\\G` at the end asks for one column per line, as in the mysql client."""
    return sql.rstrip().rstrip(";").rstrip().endswith("\\G")
