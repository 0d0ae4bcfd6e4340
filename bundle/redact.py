"""The redaction pipeline: every artifact passes through it before it is written.

Always-on rules remove secrets (passwords, keys, tokens, hashes, PEM blocks,
credentials in URLs). The report counts which rule fired how often, never what it
removed.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Dict, List, Pattern, Union

MASK = "<redacted>"

Replacement = Union[str, Callable[["re.Match[str]"], str]]


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: Pattern[str]
    replacement: Replacement


def _keep_prefix(match: re.Match[str]) -> str:
    return match.group("prefix") + MASK


_SECRET_WORDS = r"(?:password|passwd|pwd|secret|token|api[_-]?key|private[_-]?key|auth)"

RULES: List[Rule] = [
    Rule(
        "pem_block",
        re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.S),
        "-----BEGIN PRIVATE KEY-----" + MASK + "-----END PRIVATE KEY-----",
    ),
    Rule(
        "identified_by",
        re.compile(
            r"(?P<prefix>\bIDENTIFIED\s+(?:WITH\s+\S+\s+)?(?:BY|AS)\s+(?:PASSWORD\s+)?)"
            r"(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s\"',;)]+)",
            re.I,
        ),
        _keep_prefix,
    ),
    Rule(
        "password_function",
        re.compile(r"(?P<prefix>\bPASSWORD\s*\(\s*)(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")", re.I),
        _keep_prefix,
    ),
    Rule(
        "replication_password",
        re.compile(
            r"(?P<prefix>\b(?:MASTER|SOURCE)_PASSWORD\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s\"',;)]+)",
            re.I,
        ),
        _keep_prefix,
    ),
    Rule(
        "url_credentials",
        re.compile(r"(?P<prefix>\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s/]+(?=@)", re.I),
        _keep_prefix,
    ),
    Rule(
        "password_hash",
        re.compile(r"(?<![0-9A-Za-z])\*[0-9A-F]{40}(?![0-9A-Za-z])|\$(?:5|6|A\$005)\$[^\s'\"]{20,}"),
        MASK,
    ),
    Rule(
        "secret_option",
        re.compile(
            r"(?P<prefix>^[ \t]*(?:loose[-_])?[\w-]*" + _SECRET_WORDS + r"[\w-]*[ \t]*=[ \t]*)\S.*$",
            re.I | re.M,
        ),
        _keep_prefix,
    ),
    Rule(
        "secret_argument",
        re.compile(r"(?P<prefix>--[\w-]*" + _SECRET_WORDS + r"[\w-]*=)[^\s\"',]+", re.I),
        _keep_prefix,
    ),
    Rule(
        "bearer_token",
        re.compile(r"(?P<prefix>\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.I),
        _keep_prefix,
    ),
    Rule("aws_access_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
]


class Redactor:
    """Applies the rules to text members and counts what fired."""

    def __init__(self, rules: List[Rule] = RULES) -> None:
        self.rules = rules
        self._counts: Counter[str] = Counter()

    def apply(self, path: str, data: bytes) -> bytes:
        text = data.decode("utf-8", "surrogateescape")
        for rule in self.rules:
            text, count = rule.pattern.subn(rule.replacement, text)
            if count:
                self._counts[rule.name] += count
        return text.encode("utf-8", "surrogateescape")

    def report(self) -> Dict[str, int]:
        return dict(sorted(self._counts.items()))
