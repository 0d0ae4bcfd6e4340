"""Statement fingerprints: literals become `?` and comments go, so no data leaves the host.

The same query shape always gives the same fingerprint (pt-fingerprint's idea), so
statements from the processlist, the slow log and performance_schema can be grouped.
"""

from __future__ import annotations

import re

_COMMENTS = re.compile(r"/\*(?!\+).*?\*/|(?:--\s|#)[^\n]*", re.S)
_STRINGS = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"", re.S)
_UNTERMINATED = re.compile(r"'[^']*$|\"[^\"]*$", re.S)
_HEX = re.compile(r"\b0x[0-9a-f]+\b|\bx'[0-9a-f]*'", re.I)
_NUMBERS = re.compile(r"(?<![\w.$])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?\b", re.I)
_LISTS = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_VALUES = re.compile(r"(values\s*\(\?\))(?:\s*,\s*\(\?\))+", re.I)
_SPACES = re.compile(r"\s+")


def fingerprint(statement: str) -> str:
    """Reduce a statement to its shape: no literals, no comments, one space between words."""
    text = _COMMENTS.sub(" ", statement)
    text = _STRINGS.sub("?", text)
    text = _UNTERMINATED.sub("?", text)
    text = _HEX.sub("?", text)
    text = _NUMBERS.sub("?", text)
    text = _LISTS.sub("(?+)", text)
    text = _VALUES.sub(r"\1+", text)
    return _SPACES.sub(" ", text).strip()
