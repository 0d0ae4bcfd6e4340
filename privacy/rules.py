"""The always-on redaction rules: one place that knows what a secret looks like.

A rule is a named regular expression whose groups `v…` hold the secret; the rest of the
match stays, so `IDENTIFIED BY 'x'` becomes `IDENTIFIED BY '<redacted>'`-like text a
support engineer can still read. `needles` are lowercase words of which every match
holds at least one: the pipeline runs a rule only on lines that contain a needle, which
keeps big logs fast. Which names are secret and which values harmless is
`privacy.names`'s to say; command-line flags are `privacy.flags`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Pattern, Tuple

from privacy import shapes
from privacy.fingerprint import fingerprint
from privacy.flags import (
    OPTIONS_FIRST,
    TOOL_SECRET_FLAGS,
    USER_PASSWORD_FLAGS,
    looks_like_option,
    secret_flag,
    short_p,
    tool_flag,
    tool_of,
)
from privacy.names import (
    ARG_VALUE,
    INLINE_VALUE,
    MASK,
    QUOTED,
    SQL_VALUE,
    benign_value,
    is_secret_name,
    json_literal,
    mask_groups,
    placeholder,
)

__all__ = [
    "ARG_VALUE", "INLINE_VALUE", "MASK", "NEEDLES", "OPTIONS_FIRST", "PROBE_RULES", "QUOTED",
    "RULES", "Rule", "SQL_VALUE", "TOOL_SECRET_FLAGS", "USER_PASSWORD_FLAGS", "benign_value",
    "is_secret_name", "json_literal", "looks_like_option", "mask_groups", "placeholder",
    "tool_of",
]

# --- rules ----------------------------------------------------------------------------

Render = Callable[["re.Match[str]"], Optional[str]]


@dataclass(frozen=True)
class Rule:
    name: str
    #: Lowercase words of which every match holds one (or matches `probe`).
    needles: Tuple[str, ...]
    pattern: Pattern[str]
    #: Returns the replacement, or None to leave this match as it is (not counted).
    render: Render
    #: For secrets without a fixed word: a fast pattern (a fixed first character) run over
    #: a whole block of lines to find the lines worth the full pattern, besides the needles.
    probe: Optional[Pattern[str]] = None


def _masking(match: re.Match[str]) -> Optional[str]:
    values = [match.group(g) for g in match.re.groupindex if g.startswith("v") and match.group(g)]
    return None if all(placeholder(v) for v in values) else mask_groups(match)


def _named(match: re.Match[str]) -> Optional[str]:
    name = match.group("name")
    value = match.group("v")
    if not is_secret_name(name) or benign_value(value, name) or json_literal(match):
        return None
    words = re.split(r"[^a-z0-9]+", name.lower())
    return mask_groups(match, keep_user=bool(words) and words[-1] == "auth")


def _identified(match: re.Match[str]) -> Optional[str]:
    values = [match.group(g) for g in ("v", "v2", "v3") if match.group(g)]
    if all(v.upper() == "RANDOM" or placeholder(v) for v in values):
        return None
    return mask_groups(match)


def _pem(match: re.Match[str]) -> Optional[str]:
    return f"<redacted:pem {match.group('kind').strip().lower()}>"


def _whole(match: re.Match[str]) -> Optional[str]:
    return MASK


def _error_statement(match: re.Match[str]) -> Optional[str]:
    statement = match.group("v")
    reduced = fingerprint(statement)
    return None if reduced == statement else reduced


def _after(prefix: str, replaced: Optional[str]) -> Optional[str]:
    """`replaced` behind the part of the match that stays, or None when nothing changed."""
    return None if replaced is None else prefix + replaced


_NAME_NEEDLES = (
    "pass", "pwd", "pw", "secret", "token", "credential", "creds", "key", "auth", "sig",
    "cookie",
)

RULES: List[Rule] = [
    Rule(
        "pem_block", ("-----begin",),
        re.compile(r"-----BEGIN (?P<kind>[A-Z0-9 ]{1,60})-----(?P<v>.*?)(?:-----END (?P=kind)-----|$)"),
        _pem,
    ),
    Rule(
        "encryption_key_file", (),
        re.compile(r"^(?P<p>\s*[0-9]+\s*;\s*)(?P<v>[0-9A-Fa-f]{32,})\s*$"),
        _masking,
        re.compile(r";[ \t]*[0-9A-Fa-f]{32}"),
    ),
    Rule(
        "identified_by", ("identified",),
        re.compile(
            rf"\bIDENTIFIED\s+BY\s+(?:PASSWORD\s+)?(?P<v>{SQL_VALUE})"
            r"|\b(?:IDENTIFIED\s+(?:WITH|VIA)|OR)\s+['\"`]?\w+['\"`]?\s+(?:AS|BY|USING)\s+"
            rf"(?:PASSWORD\s*\(\s*(?P<v2>{QUOTED})\s*\)|(?P<v3>{SQL_VALUE}))",
            re.I,
        ),
        _identified,
    ),
    Rule(
        "password_function", ("password",),
        re.compile(rf"\b(?:OLD_)?PASSWORD\s*\(\s*(?P<v>{QUOTED})\s*\)", re.I),
        _masking,
    ),
    Rule(
        "set_password", ("password",),
        re.compile(rf"\bSET\s+PASSWORD\b(?:\s+FOR\s+[^=\n]+?)?\s*=\s*(?P<v>{QUOTED})", re.I),
        _masking,
    ),
    Rule(
        "replication_password", ("master_password", "source_password"),
        re.compile(rf"\b(?:MASTER|SOURCE)_PASSWORD\s*=\s*(?P<v>{SQL_VALUE})", re.I),
        _masking,
    ),
    Rule(
        "option_file_secret", _NAME_NEEDLES,
        re.compile(
            r"^(?P<p>[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][\w.-]*)[ \t]*=[ \t]*)"
            r"(?P<v>[^\s\x00](?:[^\x00\n]*[^\s\x00])?)(?=[ \t]*(?:\x00|$))"
        ),
        _named,
    ),
    Rule(
        "server_password", ("password",),
        re.compile(rf"(?<![\w$\"'\\])PASSWORD(?:\s*=\s*|\s+)(?P<v>{QUOTED})", re.I),
        _masking,
    ),
    Rule(
        "url_credentials", ("://",),
        re.compile(
            r"\b[A-Za-z][A-Za-z0-9+.-]*://(?:[^\s:/@'\"]*:(?P<v>[^\s/'\"]+)"
            r"|(?P<v2>[A-Za-z0-9._~%+-]{20,}))@"
        ),
        _masking,
    ),
    Rule(
        "aws_key", ("akia", "asia"),
        re.compile(
            r"(?<![A-Z0-9])(?P<v>(?:AKIA|ASIA)[0-9A-Z]{16})(?![A-Z0-9])"
            r"(?:[^\n]{0,160}?(?<![A-Za-z0-9/+])(?P<v2>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=]))?"
        ),
        _masking,
    ),
    Rule(
        "azure_key", ("accountkey", "sharedaccesskey", "sharedaccesssignature", "sig="),
        re.compile(
            r"\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)\s*=\s*(?P<v>[^;\"'\s]+)"
            r"|[?&]sig=(?P<v2>[^&\"'\s]+)",
            re.I,
        ),
        _masking,
    ),
    Rule(
        "bearer_token", ("bearer", "authorization"),
        re.compile(
            r"\bBearer\s+(?P<v>[A-Za-z0-9._~+/=-]{8,})"
            r"|\bAuthorization\s*[:=]\s*(?:(?:Basic|Bearer|Digest|Token|Negotiate)\s+)?(?P<v2>[^\s\"',;]+)",
            re.I,
        ),
        _masking,
    ),
    Rule(
        "command_line_secret", _NAME_NEEDLES,
        re.compile(rf"(?<![\w-])--?(?P<name>[A-Za-z][\w.-]*)(?P<sep>=|[ \t]+)(?P<v>{ARG_VALUE})"),
        secret_flag,
    ),
    Rule(
        "command_line_secret", tuple(sorted(TOOL_SECRET_FLAGS)),
        re.compile(rf"(?<![\w-])(?P<flag>-[A-Za-z]|--[A-Za-z][\w-]*)(?P<sep>=|[ \t]*)(?P<v>{ARG_VALUE})"),
        tool_flag,
    ),
    Rule(
        "command_line_secret", ("-p",),
        re.compile(rf"(?<![\w-])-p(?P<v>(?:{QUOTED}|[^\s\"'\x00][^\s\x00]*))"),
        short_p,
    ),
    Rule(
        "secret_assignment", _NAME_NEEDLES,
        re.compile(
            r"(?<![\w.+/-])(?P<q>\\?[\"']?)(?P<name>[A-Za-z_][\w.-]{0,80})(?P=q)"
            rf"\s*[:=]\s*(?P<v>{INLINE_VALUE})"
        ),
        _named,
    ),
    # The statement quoted by a replication error: the whole Last_SQL_Error, or an error
    # log line where `', Gtid …` (MariaDB) or `', Error_code: …` (MySQL) follows it.
    Rule(
        "error_statement", ("query: '",),
        re.compile(r"(?<=Query: ')(?P<v>.+)(?='$|', (?:Gtid |Error_code|Internal MariaDB error code))"),
        _error_statement,
    ),
    # The statement of an "Unsafe statement written to the binary log" warning.
    Rule(
        "error_statement", ("unsafe",),
        re.compile(r"(?<=[Uu]nsafe)(?P<pre>.*?\bStatement: )(?P<v>.+)$"),
        lambda m: _after(m.group("pre"), _error_statement(m)),
    ),
    # The key value a duplicate-key error quotes is row data (an e-mail, a card number).
    Rule(
        "duplicate_entry_value", ("duplicate entry '",),
        re.compile(r"(?<=Duplicate entry ')(?P<v>.+)(?=' for key )"),
        lambda m: MASK,
    ),
    # The InnoDB record dumps of the error log (deadlocks, corrupt records, page dumps):
    # row data, whatever message printed them.
    Rule(
        "innodb_row_data", ("; hex ",),
        re.compile(r"(?P<p>\blen [0-9]+; )hex [0-9a-fA-F]*(?:; asc .*|\s*$)"),
        lambda m: m.group("p") + MASK + " row data",
    ),
]


def _shape_value(match: re.Match[str]) -> Optional[str]:
    values = [v for g, v in match.groupdict().items() if g.startswith("v") and v is not None]
    return None if all(shapes.masked(v) for v in values) else mask_groups(match)


#: The hash families, token formats and contexts of `privacy.shapes`, one rule per table.
RULES += [
    Rule(name, family.needles, family.pattern, _shape_value, family.probe)
    for name, family in (("password_hash", shapes.HASH_FAMILY), ("known_token", shapes.TOKEN_FAMILY),
                         ("temporary_password", shapes.CONTEXT_FAMILY))
]


def _needles() -> Tuple[str, ...]:
    words = {n for rule in RULES for n in rule.needles}
    # One `$` finds the lines of every crypt(3) family (each rule then checks its own).
    words.add("$")
    # A needle that contains a shorter one adds nothing: the shorter one finds its lines.
    return tuple(sorted(w for w in words if not any(o != w and o in w for o in words)))


#: The needles worth searching for: a line without any of them (and no probe match)
#: holds nothing any rule would change.
NEEDLES: Tuple[str, ...] = _needles()
PROBE_RULES: Tuple[Rule, ...] = tuple(r for r in RULES if r.probe is not None)
