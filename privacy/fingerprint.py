"""Statement fingerprints: literals become `?` and comments go, so no data leaves the host.

The same query shape always gives the same fingerprint (pt-fingerprint's idea), so
statements from the processlist, the slow log and performance_schema can be grouped.
One left-to-right pass finds strings and comments, so a quote inside a comment or a
comment marker inside a string cannot shift what counts as a literal; an unterminated
string or comment runs to the end and goes entirely. Fingerprinting a fingerprint
changes nothing.
"""

from __future__ import annotations

import re
from typing import List, Pattern, Tuple

# Strings, quoted identifiers, optimizer hints and comments, in the order they start.
# Every branch begins with a fixed character (no group in front of it), so the regex
# engine skips plain text quickly; the callback tells the kinds apart by that character.
_LEXEMES = re.compile(
    r"'[^'\\]*(?:(?:\\.|'')[^'\\]*)*'?"
    r"|\"[^\"\\]*(?:(?:\\.|\"\")[^\"\\]*)*\"?"
    r"|`[^`]*(?:``[^`]*)*`?"
    r"|/\*.*?(?:\*/|\Z)"
    # `--` starts a comment only before an ASCII space or control character (not U+00A0).
    r"|--(?=[\x00-\x20]|\Z)[^\n]*"
    r"|\#[^\n]*",
    re.S,
)
#: Strings as NO_BACKSLASH_ESCAPES (and ANSI_QUOTES) servers read them: `'C:\'` is closed.
_RAW_STRINGS = re.compile(
    r"'[^']*(?:''[^']*)*'?|\"[^\"]*(?:\"\"[^\"]*)*\"?|`[^`]*(?:``[^`]*)*`?"
    r"|/\*.*?(?:\*/|\Z)|--(?=[\x00-\x20]|\Z)[^\n]*|\#[^\n]*",
    re.S,
)
_HEX = re.compile(r"0[xX][0-9a-fA-F]+")
# A run starting with a digit (or a sign before one); the callback keeps identifiers
# such as `t1` or `1abc` and the minus of `a-1`.
_DIGITS = re.compile(r"(?:[-+](?=[0-9])|[0-9])[\w.$]*(?:(?<=[eE])[-+][0-9]+)?")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_LISTS = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_VALUES = re.compile(r"([vV][aA][lL][uU][eE][sS]\s*\(\?\+?\))(?:\s*,\s*\(\?\+?\))+")


def _lexeme(match: re.Match[str]) -> str:
    text = match.group()
    first = text[0]
    if first in "'\"":
        return "?"
    if first == "`":
        return text
    if text.startswith("/*+"):
        body = text[3:]
        end = "*/" if body.endswith("*/") else ""
        return "/*+" + _literals(body[: len(body) - len(end)]) + end
    return " "


def _digits(match: re.Match[str]) -> str:
    start = match.start()
    text = match.string
    run = match.group()
    before = text[start - 1] if start else " "
    sign = ""
    if run[0] in "-+":
        if before.isalnum() or before in "_$`)?":
            sign, before = run[0], run[0]
        run = run[1:]
    if before.isalnum() or before in "_$`":
        return sign + run
    if run[:2] in ("0x", "0X") and _HEX.fullmatch(run):
        return sign + "?"
    if before == "." and start > 1 and (text[start - 2].isalnum() or text[start - 2] in "_$`"):
        return sign + run
    if _NUMBER.fullmatch(run):
        return sign + "?"
    return match.group()


def _string_spans(pattern: Pattern[str], text: str) -> List[Tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text) if m.group()[0] in "'\""]


#: What stays of code that the other lexing reads as a string: blanks, the commas and
#: parentheses of a list and the closing `;` (the statement's shape), nothing else.
_SHAPE_ONLY = re.compile(r"[^\s(),;]+")


def _either_lexing(text: str) -> str:
    """Strings as either lexing sees them become `?`, so a server in either mode cannot
    read as code what the fingerprint kept (`'C:\' , '…'` is two strings without escapes).

    The lexing with escapes (the server's default) gives the statement its shape; where
    the other one sees a string in what this one reads as code, only blanks, commas,
    parentheses and semicolons stay (`'it\'s', 1), ('x'` keeps its rows).
    """
    other = _string_spans(_RAW_STRINGS, text)
    out: List[str] = []
    pos = 0
    for lexeme in _LEXEMES.finditer(text):
        out.append(_code(text, pos, lexeme.start(), other))
        out.append(_lexeme(lexeme))
        pos = lexeme.end()
    out.append(_code(text, pos, len(text), other))
    return "".join(out)


def _code(text: str, start: int, end: int, strings: List[Tuple[int, int]]) -> str:
    """text[start:end], code to one lexing, without what the other reads as `strings`."""
    out: List[str] = []
    pos = start
    for a, b in strings:
        a, b = max(a, pos), min(b, end)
        if a >= b:
            continue
        out.append(text[pos:a])
        out.append(_SHAPE_ONLY.sub("?", text[a:b]))
        pos = b
    out.append(text[pos:end])
    return "".join(out)


def _literals(text: str) -> str:
    if "\\" in text and ("'" in text or '"' in text):
        text = _either_lexing(text)
    elif "'" in text or '"' in text or "/*" in text or "--" in text or "#" in text or "`" in text:
        text = _LEXEMES.sub(_lexeme, text)
    return _DIGITS.sub(_digits, text)


def fingerprint(statement: str, *, rows: bool = True) -> str:
    """Reduce a statement to its shape: no literals, no comments, one space between words.

    A list of values becomes `(?+)`; the rows of a multi-row VALUES become one `(?+)+`,
    unless `rows` is False: then each row stays as its `(?+)`.
    """
    text = " ".join(_literals(statement).split())
    if "?" in text and "," in text:
        text = _LISTS.sub("(?+)", text)
        if rows and ("),(" in text or "), (" in text):
            text = _VALUES.sub(r"\1+", text)
    return text


# --- where a statement's quotes and comments stand -----------------------------------------

#: Which quote or comment a statement's text leaves open at its end, once lexed with
#: backslash escapes (the server's default) and once without (NO_BACKSLASH_ESCAPES,
#: where `'C:\'` is closed): "" when closed. A log line that looks like one of the
#: server's own is the server's only where both say closed.
Open = Tuple[str, str]
CLOSED: Open = ("", "")


def _quoted(quote: str, escapes: bool) -> str:
    q = re.escape(quote)
    if escapes:
        return f"{q}[^{q}\\\\]*(?:(?:\\\\[\\s\\S]|{q}{q})[^{q}\\\\]*)*{q}"
    return f"{q}[^{q}]*(?:{q}{q}[^{q}]*)*{q}"


def _scanner(escapes: bool) -> Pattern[str]:
    return re.compile(
        _quoted("'", escapes) + "|" + _quoted('"', escapes) + "|" + _quoted("`", False)
        # A comment the server skips; `/*!…*/`, `/*M!…*/` and hints are code to it.
        + r"|/\*(?!M?!|\+)[\s\S]*?\*/|/\*(?:M?!|\+)"
        # `--` starts a comment only before a space or a control character.
        + r"|--(?=[\x00-\x20])[^\n]*|\#[^\n]*"
        + r"|(?P<open>['\"`]|/\*)"
    )


def _closer(opener: str, escapes: bool) -> Pattern[str]:
    if opener == "/*":
        return re.compile(r"[\s\S]*?\*/")
    # The rest of a quoted lexeme after its opening quote.
    return re.compile(_quoted(opener, escapes and opener != "`")[len(re.escape(opener)):])


_SCANNERS = {True: _scanner(True), False: _scanner(False)}
_CLOSERS = {(o, e): _closer(o, e) for o in ("'", '"', "`", "/*") for e in (True, False)}
_LEXICAL = re.compile(r"['\"`#]|/\*|--")
_OTHER_LEXICAL = re.compile(r"[\"`#\\]|/\*|--")


def _left_open(text: str, opener: str, escapes: bool) -> str:
    if not opener and text.count("'") % 2 == 0 and not _OTHER_LEXICAL.search(text):
        # Only paired single quotes, no backslash: every string closed (the common case).
        return ""
    pos = 0
    if opener:
        close = _CLOSERS[(opener, escapes)].match(text)
        if close is None:
            return opener
        pos = close.end()
    if not _LEXICAL.search(text, pos):
        return ""
    for lexeme in _SCANNERS[escapes].finditer(text, pos):
        if lexeme.lastgroup == "open":
            return lexeme.group()
    return ""


def left_open(text: str, state: Open = CLOSED) -> Open:
    """The quotes or comments still open after `text`, which follows `state`."""
    with_escapes = _left_open(text, state[0], True)
    if "\\" not in text and state[0] == state[1]:
        return with_escapes, with_escapes
    return with_escapes, _left_open(text, state[1], False)
