"""SQL text as the share builder reads and writes it: tokens, in the server's lexical rules.

The rewriters (ddl.py, query.py) never edit text with regular expressions: they read
tokens, map the names and literals among them, and write the text again from the tokens,
so what a package holds is exactly what was checked. Comments are dropped, versioned
comments (`/*!50100 … */`, `/*M!100000 … */`, as MySQL's SHOW CREATE TABLE writes
partitioning) are unwrapped, optimizer hints (`/*+ … */`) dropped. Strings take backslash
escapes (the servers' default sql_mode); `"` quotes a string, as without ANSI_QUOTES.
Anything the reader cannot read (an unterminated quote or comment) is a ShareError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List

from report.share.errors import ShareError

WHITESPACE = " \t\n\r\f\v"
_WORD = re.compile(r"[A-Za-z0-9_$\u0080-\U0010ffff]+")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_HEX = re.compile(r"0x[0-9A-Fa-f]+|[xX]'[0-9A-Fa-f]*'|0b[01]+|[bB]'[01]*'")
_OPERATORS = ("<=>", "->>", "<=", ">=", "<>", "!=", "<<", ">>", "&&", "||", ":=", "->")
_VERSIONED = re.compile(r"/\*M?!\d{0,6}")
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


@dataclass
class Token:
    """kind: name (a backquoted name; `value` unquoted), word (a bare word: a keyword,
    a function or a bare name), string (`value` decoded), number, hex, op."""

    kind: str
    value: str
    space: bool = False  # whitespace (or a dropped comment) stood before it

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.value.upper() in words


def tokenize(sql: str) -> List[Token]:
    tokens: List[Token] = []
    i, n, space = 0, len(sql), False
    while i < n:
        c = sql[i]
        if c in WHITESPACE:
            i, space = i + 1, True
            continue
        if sql.startswith("/*", i):
            versioned = _VERSIONED.match(sql, i)
            if versioned:  # its contents are SQL: read on, and drop the closing */
                i, space = versioned.end(), True
                continue
            end = sql.find("*/", i + 2)
            if end < 0:
                raise ShareError("an unterminated /* comment")
            i, space = end + 2, True
            continue
        if sql.startswith("*/", i):
            i, space = i + 2, True  # the end of a versioned comment
            continue
        if c == "#" or (sql.startswith("--", i) and (i + 2 == n or sql[i + 2] in WHITESPACE)):
            end = sql.find("\n", i)
            i, space = (n if end < 0 else end + 1), True
            continue
        hexed = _HEX.match(sql, i)
        if hexed and not _WORD.match(sql, hexed.end()):
            tokens.append(Token("hex", hexed.group(), space))
        elif c == "`":
            value, end = _quoted(sql, i, "`", backslash=False)
            tokens.append(Token("name", value, space))
            i, space = end, False
            continue
        elif c in "'\"":
            value, end = _quoted(sql, i, c, backslash=True)
            tokens.append(Token("string", value, space))
            i, space = end, False
            continue
        elif (c.isdigit() or (c == "." and i + 1 < n and sql[i + 1].isdigit())) and \
                not (tokens and tokens[-1].kind == "op" and tokens[-1].value == "." and not space):
            number = _NUMBER.match(sql, i)
            assert number is not None
            if _WORD.match(sql, number.end()) and not sql[number.end()].isdigit():
                word = _WORD.match(sql, i)
                assert word is not None
                tokens.append(Token("word", word.group(), space))
                i, space = word.end(), False
                continue
            tokens.append(Token("number", number.group(), space))
            i, space = number.end(), False
            continue
        else:
            word = _WORD.match(sql, i)
            if word:
                tokens.append(Token("word", word.group(), space))
                i, space = word.end(), False
                continue
            op = next((o for o in _OPERATORS if sql.startswith(o, i)), c)
            tokens.append(Token("op", op, space))
            i, space = i + len(op), False
            continue
        i, space = hexed.end(), False
    return tokens


def _quoted(sql: str, start: int, quote: str, backslash: bool) -> tuple:
    out: List[str] = []
    i, n = start + 1, len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\" and i + 1 < n:
            out.append(_ESCAPES.get(sql[i + 1], sql[i + 1]))
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise ShareError(f"an unterminated {quote} quote")


def quote_name(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''").replace("\0", "\\0") + "'"


def text(token: Token) -> str:
    if token.kind == "name":
        return quote_name(token.value)
    if token.kind == "string":
        return quote_string(token.value)
    return token.value


def write(tokens: List[Token]) -> str:
    """The tokens as text: one space where the source had space (or a comment)."""
    out: List[str] = []
    for index, token in enumerate(tokens):
        glued = tokens[index - 1].kind in ("word", "number") and token.kind in ("word", "number") \
            if index else False
        if index and (token.space or glued):
            out.append(" ")
        out.append(token.value if token.kind == "raw" else text(token))
    return "".join(out)
