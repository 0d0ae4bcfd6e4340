"""The diag console's tokenizer, written to MariaDB/MySQL's own lexical rules.

The server decides what a statement means, so the console reads it the way the server's
lexer does (sql_lex.cc), not the way a regular expression or another SQL library does:

- whitespace is ASCII space, tab, LF, CR, FF and VT only (`my_isspace`); U+00A0 and the
  other Unicode spaces are not, and outside strings and quoted names they are refused;
- `-- ` starts a comment only when an ASCII space or control character (or the end)
  follows the two dashes; `#` comments run to the end of the line; `/* */` comments do
  not nest, so a `/*` inside one, or a `*/` outside one, is refused;
- executable comments (`/*! … */`, `/*M! … */`) are refused: the server runs them;
- strings take backslash escapes unless the session's sql_mode has
  NO_BACKSLASH_ESCAPES, and `"` quotes a name instead of a string under ANSI_QUOTES;
- anything odd (a NUL byte, a control character, an unterminated quote, `?`, `{`, a
  backslash outside a string) is refused rather than guessed at.

The tokens are then written out again (`server_text`), comments dropped, strings and
names in one canonical quoting: that text, not what was typed, is what the checker
parses and what the server runs, so a trick in the spelling cannot survive the trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List

#: `my_isspace` for the ASCII-compatible client character sets: nothing else is a space.
WHITESPACE = " \t\n\r\f\v"
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_$")
#: Operators of more than one character, longest first (the server reads them whole).
_OPERATORS = ("<=>", "->>", "<=", ">=", "<>", "!=", "<<", ">>", "&&", "||", ":=", "->", "@@")
_SINGLE = frozenset("()+-*/%=<>!~^&|,.;@:")
_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_HEX_NUMBER = re.compile(r"0x[0-9A-Fa-f]+")
_BIT_NUMBER = re.compile(r"0b[01]+")
#: Backslash escapes the server decodes inside a string (others stand for the character).
_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


class Odd(ValueError):
    """Text the console will not try to read; the message says what, in one line."""


@dataclass(frozen=True)
class Mode:
    """The parts of the session's sql_mode that change how text is read."""

    backslash_escapes: bool = True
    ansi_quotes: bool = False

    @classmethod
    def from_sql_mode(cls, sql_mode: str) -> Mode:
        flags = {flag.strip().upper() for flag in sql_mode.split(",")}
        return cls(backslash_escapes="NO_BACKSLASH_ESCAPES" not in flags,
                   ansi_quotes="ANSI_QUOTES" in flags or "ANSI" in flags)


@dataclass(frozen=True)
class Token:
    """One token. `kind` is word, number, string, national, hex, bits, name (a quoted
    name) or op; `text` is the value for strings and names, the source otherwise."""

    kind: str
    text: str
    #: Nothing (no space, no comment) between this token and the one before.
    tight: bool = False

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


#: How a session reads text when its sql_mode changes nothing of it.
DEFAULT_MODE = Mode()


def tokenize(sql: str, mode: Mode) -> List[Token]:
    """The tokens of `sql` as the server reads them in `mode`, comments dropped; or Odd."""
    tokens: List[Token] = []
    i, end = 0, len(sql)
    tight = False
    while i < end:
        c = sql[i]
        if c in WHITESPACE:
            i += 1
            tight = False
            continue
        if c == "#" or (sql.startswith("--", i) and (i + 2 >= end or _space_or_control(sql[i + 2]))):
            newline = sql.find("\n", i)
            i = end if newline < 0 else newline + 1
            tight = False
            continue
        if sql.startswith("/*", i):
            i = _comment(sql, i)
            tight = False
            continue
        if sql.startswith("*/", i):
            raise Odd("`*/` outside a comment")
        token, i = _token(sql, i, mode)
        tokens.append(Token(token.kind, token.text, tight and bool(tokens)))
        tight = True
    return tokens


def _space_or_control(c: str) -> bool:
    return c in WHITESPACE or ord(c) < 32 or ord(c) == 127


def _comment(sql: str, start: int) -> int:
    if sql.startswith(("/*!", "/*M!", "/*m!"), start):
        raise Odd("executable comments (/*! … */, /*M! … */) are not allowed: the server runs their contents")
    close = sql.find("*/", start + 2)
    if close < 0:
        raise Odd("an unterminated /* comment")
    if "/*" in sql[start + 2:close]:
        raise Odd("a comment inside a comment (the server does not nest them)")
    if "\0" in sql[start:close]:
        raise Odd("a NUL byte")
    return close + 2


def _token(sql: str, i: int, mode: Mode) -> tuple:
    c = sql[i]
    if c == "'" or (c == '"' and not mode.ansi_quotes):
        value, after = _quoted(sql, i, mode.backslash_escapes)
        return Token("string", value), after
    if c == "`" or c == '"':
        value, after = _quoted(sql, i, False)
        if not value:
            raise Odd("an empty quoted name")
        return Token("name", value), after
    if c in "nN" and sql.startswith("'", i + 1):
        value, after = _quoted(sql, i + 1, mode.backslash_escapes)
        return Token("national", value), after
    if c in "xXbB" and sql.startswith("'", i + 1):
        close = sql.find("'", i + 2)
        body = sql[i + 2:close] if close > 0 else ""
        digits = "0123456789abcdefABCDEF" if c in "xX" else "01"
        if close < 0 or any(ch not in digits for ch in body) or (c in "xX" and len(body) % 2):
            raise Odd(f"a malformed {c.upper()}'…' literal")
        return Token("hex" if c in "xX" else "bits", body), close + 1
    if c.isascii() and (c.isdigit() or (c == "." and sql[i + 1:i + 2].isdigit() and not _after_name(sql, i))):
        return _number(sql, i)
    if c in _WORD_CHARS:
        j = i
        while j < len(sql) and sql[j] in _WORD_CHARS:
            j += 1
        return Token("word", sql[i:j]), j
    for op in _OPERATORS:
        if sql.startswith(op, i):
            return Token("op", op), i + len(op)
    if c in _SINGLE:
        return Token("op", c), i + 1
    if c == "\0":
        raise Odd("a NUL byte")
    if not c.isascii():
        raise Odd(f"the character U+{ord(c):04X} outside a string or quoted name "
                  "(the server does not take it for a space)")
    if ord(c) < 32 or ord(c) == 127:
        raise Odd(f"the control character 0x{ord(c):02x}")
    raise Odd(f"the character `{c}` (no placeholders, client escapes or ODBC braces here)")


def _after_name(sql: str, i: int) -> bool:
    """A `.` right after a name separates it from the next (`t.1a` names a column `1a`)."""
    return i > 0 and (sql[i - 1] in _WORD_CHARS or sql[i - 1] == "`")


def _number(sql: str, i: int) -> tuple:
    for pattern, kind in ((_HEX_NUMBER, "number"), (_BIT_NUMBER, "number"), (_NUMBER, "number")):
        match = pattern.match(sql, i)
        if match:
            after = match.end()
            if after < len(sql) and (sql[after] in _WORD_CHARS or not sql[after].isascii()):
                break
            return Token(kind, match.group()), after
    raise Odd("a name that starts with a digit: quote it with backticks")


def _quoted(sql: str, start: int, backslash_escapes: bool) -> tuple:
    """The value of the quoted string or name at `start`, and where it ends."""
    quote = sql[start]
    out: List[str] = []
    i = start + 1
    while i < len(sql):
        c = sql[i]
        if c == "\0":
            raise Odd("a NUL byte")
        if c == quote:
            if sql.startswith(quote, i + 1):
                out.append(quote)
                i += 2
                continue
            return "".join(out), i + 1
        if c == "\\" and backslash_escapes:
            if i + 1 >= len(sql):
                break
            nxt = sql[i + 1]
            if nxt == "\0" or nxt == "0":
                raise Odd("a NUL byte")
            # \% and \_ keep their backslash: they are LIKE's own escapes.
            out.append("\\" + nxt if nxt in "%_" else _ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    raise Odd(f"an unterminated {quote} quote")


def _string(value: str, mode: Mode, prefix: str = "") -> str:
    if mode.backslash_escapes:
        value = value.replace("\\", "\\\\")
    return prefix + "'" + value.replace("'", "''") + "'"


def token_text(token: Token, mode: Mode) -> str:
    """One token in its canonical spelling for a session in `mode`."""
    if token.kind == "string":
        return _string(token.text, mode)
    if token.kind == "national":
        return _string(token.text, mode, "N")
    if token.kind == "name":
        return "`" + token.text.replace("`", "``") + "`"
    if token.kind == "hex":
        return f"X'{token.text}'"
    if token.kind == "bits":
        return f"B'{token.text}'"
    return token.text


def server_text(tokens: List[Token], mode: Mode) -> str:
    """The statement written out again from its tokens, for a session in `mode`.

    One space between tokens, except around `.`, after `@@` and before the `(` of a
    function call typed without one (the server reads `COUNT (*)` differently).
    """
    out: List[str] = []
    previous = None
    for token in tokens:
        call = token.kind == "op" and token.text == "(" and token.tight
        glued = previous is not None and (
            token.text == "." and token.kind == "op"
            or (previous.kind == "op" and previous.text in (".", "@@"))
            or (call and previous.kind in ("word", "name")))
        if out and not glued:
            out.append(" ")
        out.append(token_text(token, mode))
        previous = token
    return "".join(out)
