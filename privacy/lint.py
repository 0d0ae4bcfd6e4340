"""The last look before a bundle is finished: does anything still look like a secret?

Redaction works by rules; this pass works by shape, on the staged files and the
manifest exactly as they will be written: PEM headers, every password-hash family and
token format of `privacy.shapes` (the same table the rules are made from, searched here
on its own), credentials in URLs, a value still standing after a secret's name (found
at every position, so one name that is no secret cannot hide the next), secret flags
of tools (`sshpass -p`, `curl -u user:…`), InnoDB record dumps, and high-entropy tokens
on a line that also says password, secret, token, key or the like. A finding names the
file, the line and what it looks like, never the value.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List

from privacy import shapes
from privacy.rules import (
    INLINE_VALUE,
    RULES,
    Rule,
    benign_value,
    is_secret_name,
    json_literal,
)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


class SecretFindings(Exception):
    """The finished bundle would still hold something that looks like a secret."""

    def __init__(self, findings: List[Finding]) -> None:
        self.findings = findings
        shown = "; ".join(str(f) for f in findings[:5])
        more = f" and {len(findings) - 5} more" if len(findings) > 5 else ""
        super().__init__(f"{len(findings)} possible secret(s) left after redaction: {shown}{more}")


_SHAPES = (
    (re.compile(r"-----BEGIN [A-Z0-9 ]{1,60}-----"), "PEM header"),
    (re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"), "AWS access key id"),
    (re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@<>'\"]+:(?!<redacted)[^\s/@<>'\"]+@", re.I),
     "credentials in a URL"),
    (re.compile(r"\blen [0-9]+; hex [0-9a-fA-F]+; asc "), "InnoDB record dump"),
)
#: `name = value`, `name: value`, `"name": "value"` at every position of a line.
_NAMED = re.compile(
    r"(?=(?<![\w.+/-])(?P<q>\\?[\"']?)(?P<name>[A-Za-z_][\w.-]{0,80})(?P=q)"
    rf"\s*[:=]\s*(?P<v>{INLINE_VALUE}))"
)
_COUNT = re.compile(r"[0-9]{1,9},?")
#: The rules that know a secret by the tool it is given to.
_TOOL_RULES = tuple(rule for rule in RULES if rule.name == "command_line_secret"
                    and "sshpass" in rule.needles)
_SECRET_WORDS = re.compile(
    r"pass|pwd|secret|token|key|auth|credential|private|bearer|signature|cookie", re.I
)
#: Words that name where a secret is kept, not a secret (`--imap-password-file PATH`,
#: `--passenv VAR`, `token_file`): the recommended way to pass one. Alone on a line they do
#: not make its random-looking tokens (a path, a database name) suspects.
_WHERE_SECRET = re.compile(r"(?:pass(?:word|wd)?|secret|token|key|credentials?)[-_]?(?:file|path)\b"
                           r"|passenv\b", re.I)
_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_PSEUDONYM = re.compile(r"(?:host|ip|user|schema)-[0-9a-f]{10}")
_HEX = re.compile(r"[0-9a-fA-F]+")
#: A written word of an identifier or a path (`Innodb`, `have`, `bzip2`, `UTF8`, `e2e`).
#: Written words: lower, Capitalized, UPPER, CamelCase of a few humps ("MariaDB"), numbers.
_WORD = re.compile(r"[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+|(?:[A-Z]?[a-z]+){1,3}[A-Z]{1,3}")
_SHORT = re.compile(r"[a-z0-9]{1,8}")


def _written(part: str) -> bool:
    return bool(_WORD.fullmatch(part) or _SHORT.fullmatch(part))
#: Lines longer than this are scanned in pieces of this size (with an overlap).
_PIECE = 1 << 16


def _entropy(token: str) -> float:
    counts = Counter(token)
    size = len(token)
    return -sum(c / size * math.log2(c / size) for c in counts.values())


def random_looking(token: str) -> bool:
    """A token that looks generated, not written: mixed classes and high entropy."""
    if token.startswith(("/", "--")) or _UUID.fullmatch(token) or _PSEUDONYM.fullmatch(token):
        return False
    parts = [p for p in re.split(r"[/_.+=-]+", token) if p]
    if len(parts) > 1 and all(_written(p) for p in parts):
        return False
    letters = [c for c in token if c.isalpha()]
    if not letters:
        return False
    has_digit = any(c.isdigit() for c in token)
    if _HEX.fullmatch(token):
        return has_digit and len(token) >= 32 and _entropy(token) >= 3.0
    upper = sum(1 for c in letters if c.isupper()) / len(letters)
    if not has_digit:
        # Letters only: generated text switches case all the time, CamelCase words do not.
        return len(token) >= 20 and 0.3 <= upper <= 0.7 and _entropy(token) >= 3.8
    classes = sum((upper < 1, upper > 0, has_digit, any(c in "+/_=-" for c in token)))
    return classes >= 3 and _entropy(token) >= 3.3


def lint_line(line: str) -> List[str]:
    """What on this line looks like a secret (descriptions, never values)."""
    found: List[str] = []
    for pattern, what in _SHAPES:
        if pattern.search(line):
            found.append(what)
    low = line.lower()
    for family in shapes.FAMILIES:
        if not any(n in low for n in family.needles) and (
                family.probe is None or not family.probe.search(line)):
            continue
        for match in family.pattern.finditer(line):
            shape, value = family.found(match)
            if not shapes.masked(value) and shape.what not in found:
                found.append(shape.what)
    for rule in _TOOL_RULES:
        if any(n in low for n in rule.needles) and _fires(rule, line):
            found.append("a secret given to a tool on its command line")
    words = _SECRET_WORDS.search(_WHERE_SECRET.sub(" ", line))
    if words and _named_secret(line):
        found.append("a value after a secret's name")
    if words:
        suspects = [token for token in _TOKEN.findall(line) if random_looking(token)]
        if suspects:
            # The word must be said outside the generated part: a random value may spell one
            # itself (MariaDB's server_uid `…KeY…` on every line that names it), and that says
            # nothing. A token's written head still counts (`key_` of `key_Xy7…`).
            rest = line
            for token in suspects:
                rest = rest.replace(token, f" {_written_head(token)} ")
            outside = _SECRET_WORDS.search(_WHERE_SECRET.sub(" ", rest))
            if outside:
                found.append(f"high-entropy value on a line that says '{outside.group().lower()}'")
    return found


def _written_head(token: str) -> str:
    """The written words a generated token starts with (`api key` of `api_key_Xy7…`)."""
    head = []
    for part in re.split(r"[/_.+=-]+", token):
        if not part or not _written(part) or random_looking(part):
            break
        head.append(part)
    return " ".join(head)


def _named_secret(line: str) -> bool:
    for match in _NAMED.finditer(line):
        name, value = match.group("name"), match.group("v")
        # A count (`"secret_field": 3` in the redaction report) is no finding; the rules
        # still mask a number where a secret's name stands before it.
        if _COUNT.fullmatch(value) or shapes.masked(value) or json_literal(match):
            continue
        if is_secret_name(name) and not benign_value(value, name):
            return True
    return False


def _fires(rule: Rule, line: str) -> bool:
    """Would `rule` still change something on `line`, at any position?"""
    at = 0
    while True:
        match = rule.pattern.search(line, at)
        if match is None:
            return False
        if rule.render(match) is not None:
            return True
        at = match.start() + 1


def lint_lines(path: str, lines: Iterable[str]) -> List[Finding]:
    findings: List[Finding] = []
    for number, line in enumerate(lines, 1):
        for piece in _pieces(line):
            for what in lint_line(piece):
                findings.append(Finding(path, number, what))
    return findings


def lint_bytes(path: str, data: bytes) -> List[Finding]:
    return lint_lines(path, data.decode("utf-8", "replace").split("\n"))


def lint_file(path: str, staged: Path) -> List[Finding]:
    with open(staged, "rb") as handle:
        return lint_lines(path, (raw.decode("utf-8", "replace") for raw in handle))


def _pieces(line: str) -> Iterable[str]:
    if len(line) <= _PIECE:
        yield line
        return
    for start in range(0, len(line), _PIECE - 256):
        yield line[start:start + _PIECE]
