"""The always-on redaction rules: one place that knows what a secret looks like.

A rule is a named regular expression whose groups `v…` hold the secret; the rest of the
match stays, so `IDENTIFIED BY 'x'` becomes `IDENTIFIED BY '<redacted>'`-like text a
support engineer can still read. `needles` are lowercase words of which every match
holds at least one: the pipeline runs a rule only on lines that contain a needle, which
keeps big logs fast. `is_secret_name` decides, for option files, environment variables,
command-line flags and JSON keys alike, whether a name says "my value is a secret".
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, List, Optional, Pattern, Tuple

from privacy import shapes
from privacy.fingerprint import fingerprint

MASK = "<redacted>"

# A quoted value: single or double quotes (doubled or backslash-escaped quotes inside),
# the backslash-escaped quotes of JSON text, or an unterminated quote up to the line end.
_Q1 = r"'[^'\\\n]*(?:(?:\\.|'')[^'\\\n]*)*(?:'|$)"
_Q2 = r"\"[^\"\\\n]*(?:(?:\\.|\"\")[^\"\\\n]*)*(?:\"|$)"
# Inside JSON text an escaped quote is \" and a quote escaped twice is \\\".
_QE = (
    r"\\\"(?:[^\"\\\n]|\\\\\\\"|\\\\|\\(?!\"))*(?:\\\"|$)"
    r"|\\'(?:[^'\\\n]|\\\\\\'|\\\\|\\(?!'))*(?:\\'|$)"
)
QUOTED = f"(?:{_QE}|{_Q1}|{_Q2})"
#: A value in SQL text: quoted, or a bare word up to a delimiter.
SQL_VALUE = f"(?:{QUOTED}|[^\\s\"',;)]+)"
#: A value inside a line of prose, a URL query or a connection string.
INLINE_VALUE = f"(?:{QUOTED}|[^\\s,;&\"'}}\\])\\x00]+)"
#: A command-line argument: quoted, or everything up to the next blank.
ARG_VALUE = f"(?:{QUOTED}|[^\\s\"'\\x00]+)"


# --- names ----------------------------------------------------------------------------

#: A name with one of these words is a secret's name.
_SECRET_WORDS = frozenset({
    "password", "passwords", "passwd", "pass", "passw", "passwo", "passwor", "pwd", "pw",
    "passphrase", "secret", "secrets", "token", "tokens", "credential", "credentials",
    "creds", "apikey", "privatekey", "secretkey", "accesskey", "filekey", "signature", "sig",
    "authorization", "cookie", "sshpass", "passin", "passout", "pgpass", "rediscli_auth",
})
#: Words that make a secret's name only as its last word (`wsrep_sst_auth`, `api_key`),
#: not in front (`key_buffer_size`, `auth_socket`).
_LAST_WORDS = frozenset({"key", "auth"})
#: Joined spellings (`masterpassword`, `AWSSecretKey` is split by case anyway).
_JOINED = ("password", "passwd", "secret", "token", "apikey", "credential")
#: A last word that makes the name a setting *about* a secret, not a secret.
_BENIGN_LAST = frozenset({
    "path", "file", "filename", "files", "dir", "directory", "sock", "socket", "length",
    "lifetime", "policy", "history", "interval", "rounds", "count", "size", "id", "ids",
    "check", "checks", "plugin", "plugins", "users", "attempts", "time", "timeout", "mode",
    "type", "algorithm", "required", "require", "current", "validation", "enabled", "enable",
    "disabled", "min", "max", "limit", "name", "names", "format", "ttl", "expiry",
    "expiration", "expire", "expired", "strength", "digits", "number", "letters", "level",
    "url", "uri", "host", "port", "user", "username", "prompt", "changed", "last", "reuse",
    "dictionary", "rotation", "age", "version", "label", "list", "store", "source",
    "env", "command", "cmd", "helper", "manager", "location", "method", "methods", "error",
    "errors", "delay", "retries", "tries", "failures", "status", "state", "stats",
})
#: Names that look secret but hold a setting: MySQL and MariaDB password-policy
#: variables and the like (checked after normalizing to lowercase and `_`).
_BENIGN_PREFIXES = (
    "validate_password", "simple_password_check", "strict_password_validation",
    "disconnect_on_expired_password", "password_require", "password_reuse", "old_passwords",
    "max_seeks_for_key", "caching_sha2_password_auto_generate", "sha256_password_auto_generate",
    "check_proxy_users", "mysql_native_password_proxy", "sha256_password_proxy",
    "default_password", "have_", "log_raw",
)
#: Words before a last `key` that make it a data key, not a secret (`primary_key`).
_DATA_KEYS = frozenset({
    "primary", "foreign", "unique", "sort", "partition", "shard", "sharding", "cache",
    "index", "distribution", "row", "lookup", "group", "join", "hash", "range", "max", "min",
    "read", "write", "next", "prev", "first", "last", "buffer",
})
#: Key and certificate *paths* of TLS settings (`ssl_key`, `master_ssl_key`).
_PATH_WORDS = frozenset({"ssl", "tls", "rsa", "x509"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)
def _secrecy(name: str) -> int:
    """2: the name says secret; 1: only its last word does (`*_key`, `*_auth`); 0: not secret."""
    name = name.strip().strip("\"'\\").lstrip("-")
    low = _CAMEL.sub("_", name).lower()
    for prefix in ("loose-", "loose_", "export "):
        if low.startswith(prefix):
            low = low[len(prefix):]
    words = [w for w in _SPLIT.split(low) if w]
    if not words:
        return 0
    flat = "_".join(words)
    if flat in ("authentication_string", "auth_string"):
        return 2
    if flat.startswith(_BENIGN_PREFIXES):
        return 0
    if len(words) > 1 and words[-1] in _BENIGN_LAST:
        return 0
    if _PATH_WORDS.intersection(words) and words[-1] in ("key", "cert", "ca", "crl"):
        return 0
    if any(w in _SECRET_WORDS for w in words):
        return 2
    if len(words) > 1 and words[-1] in _LAST_WORDS:
        return 0 if words[-1] == "key" and words[-2] in _DATA_KEYS else 1
    joined = "".join(words)
    return 2 if any(j in joined for j in _JOINED) else 0


def is_secret_name(name: str) -> bool:
    """True when `name` (an option, variable, flag or JSON key) names a secret."""
    return _secrecy(name) > 0


_BENIGN_VALUES = frozenset({
    "", "?", "on", "off", "true", "false", "yes", "no", "none", "null", "0", "1",
    "basic", "bearer", "digest", "negotiate",
})


def benign_value(value: str, name: str = "") -> bool:
    """A value no one would use as a secret: a switch, empty, already masked, a placeholder.

    Under a name that is secret only by its last word (`Handler_read_key`), a plain
    number is a counter, not a key.
    """
    bare = value.strip().strip("\"'\\").strip()
    if bare.lower() in _BENIGN_VALUES or MASK in bare or set(bare) <= {"*"}:
        return True
    if name and bare.isdigit() and len(bare) <= 20 and _secrecy(name) == 1:
        return True
    # `PWD` is the working directory in an environment, a password in ODBC strings.
    return name.strip().lower() in ("pwd", "oldpwd") and bare.startswith(("/", "~"))


def placeholder(value: str) -> bool:
    """Nothing to hide: empty, a `?` of a fingerprint, or already masked."""
    bare = value.strip().strip("\"'\\").strip()
    return bare in ("", "?") or MASK in bare or set(bare) <= {"*"}


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


def mask_groups(match: re.Match[str], keep_user: bool = False) -> str:
    """The match with every `v…` group that took part replaced by MASK, quotes kept."""
    text = match.group()
    base = match.start()
    spans = sorted(
        match.span(name) for name in match.re.groupindex
        if name.startswith("v") and match.group(name) is not None
    )
    out: List[str] = []
    pos = 0
    for start, end in spans:
        value = text[start - base:end - base]
        quote = value[:2] if value[:2] in ('\\"', "\\'") else value[:1] if value[:1] in "'\"" else ""
        closed = bool(quote) and len(value) >= 2 * len(quote) and value.endswith(quote)
        inner = value[len(quote):len(value) - len(quote)] if closed else value[len(quote):]
        secret = inner.split(":", 1)[0] + ":" + MASK if keep_user and ":" in inner else MASK
        out.append(text[pos:start - base])
        out.append(quote + secret + (quote if closed else ""))
        pos = end - base
    out.append(text[pos:])
    return "".join(out)


def _masking(match: re.Match[str]) -> Optional[str]:
    values = [match.group(g) for g in match.re.groupindex if g.startswith("v") and match.group(g)]
    return None if all(placeholder(v) for v in values) else mask_groups(match)


def _named(match: re.Match[str]) -> Optional[str]:
    name = match.group("name")
    value = match.group("v")
    if not is_secret_name(name) or benign_value(value, name):
        return None
    words = _SPLIT.split(name.lower())
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


_MYSQL_TOOL = re.compile(
    r"mysql|mariadb|xtrabackup|mariabackup|innobackupex|mydumper|myloader|pt-[a-z]|mydiag",
    re.I,
)


def _short_p(match: re.Match[str]) -> Optional[str]:
    text = match.string
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    line = text[start:] if end < 0 else text[start:end]
    if not _MYSQL_TOOL.search(line) or placeholder(match.group("v")):
        return None
    return mask_groups(match)


#: What may follow a bare `--password ` as the next option rather than its value: a long
#: option by its shape (lower case: `--host=db1`) or a lone short one (`-h`). Anything else
#: there is the value, dash or not (a generated secret can start with one).
_NEXT_OPTION = re.compile(r"--[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*(?:=\S*)?|-[A-Za-z]")


def looks_like_option(word: str) -> bool:
    """`word`, after a flag that takes a value, is the next option rather than the value."""
    return _NEXT_OPTION.fullmatch(word) is not None


def _next_option(sep: str, value: str) -> bool:
    return not sep.strip() and looks_like_option(value)


def _secret_flag(match: re.Match[str]) -> Optional[str]:
    name = match.group("name")
    value = match.group("v")
    if not is_secret_name(name) or benign_value(value, name):
        return None
    if _next_option(match.group("sep"), value):
        return None
    return mask_groups(match)


#: Tools whose flag takes a secret though its name does not say so: `sshpass -p` (for
#: `ssh -p` it is a port), `redis-cli -a`, `mongo -p`, `curl -u user:password`.
TOOL_SECRET_FLAGS: Dict[str, Tuple[str, ...]] = {
    "sshpass": ("-p",),
    "curl": ("-u", "--user", "-U", "--proxy-user"),
    "redis-cli": ("-a", "--pass"),
    "mongo": ("-p",),
}
#: Flags whose value is `user:password`: the user stays.
USER_PASSWORD_FLAGS = frozenset({"-u", "--user", "-U", "--proxy-user"})
#: Tools whose options come before the command they run (`sshpass -f F ssh -p 22 host`):
#: their other flags that take a value, and the options that may stand before the secret.
OPTIONS_FIRST: Dict[str, FrozenSet[str]] = {"sshpass": frozenset({"-f", "-d", "-P"})}
_OPTIONS_BEFORE = {"sshpass": re.compile(r"(?:[ \t]+-(?:[dfP][ \t]*\S+|[ve]+))*[ \t]+")}
_TOOL = re.compile(
    r"(?<![\w.-])(?:[\w.~-]*/)*(?P<tool>sshpass|curl|redis-cli|mongo(?:sh|dump|restore|export"
    r"|import|stat|top|files)?)(?![\w.-])"
)


def tool_of(word: str) -> Optional[str]:
    """The TOOL_SECRET_FLAGS entry for a program (`/usr/bin/curl` → curl), or None."""
    found = _TOOL.fullmatch(word)
    if found is None:
        return None
    tool = found.group("tool")
    return "mongo" if tool.startswith("mongo") else tool


def _tool_flag(match: re.Match[str]) -> Optional[str]:
    flag, sep, value = match.group("flag"), match.group("sep"), match.group("v")
    text = match.string
    # The last program named before the flag on its line.
    found = max(_TOOL.finditer(text, text.rfind("\n", 0, match.start()) + 1, match.start()),
                key=lambda t: t.start(), default=None)
    tool = tool_of(found.group()) if found else None
    if tool is None or flag not in TOOL_SECRET_FLAGS[tool]:
        return None
    options = _OPTIONS_BEFORE.get(tool)
    if options is not None and not options.fullmatch(text, found.end(), match.start()):
        return None
    if (sep and _next_option(sep, value)) or benign_value(value):
        return None
    if flag in USER_PASSWORD_FLAGS:
        bare = value.strip("\"'")
        if ":" not in bare or placeholder(bare.split(":", 1)[1]):
            return None
        return mask_groups(match, keep_user=True)
    return mask_groups(match)


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
        _secret_flag,
    ),
    Rule(
        "command_line_secret", tuple(sorted(TOOL_SECRET_FLAGS)),
        re.compile(rf"(?<![\w-])(?P<flag>-[A-Za-z]|--[A-Za-z][\w-]*)(?P<sep>=|[ \t]*)(?P<v>{ARG_VALUE})"),
        lambda m: _tool_flag(m),
    ),
    Rule(
        "command_line_secret", ("-p",),
        re.compile(rf"(?<![\w-])-p(?P<v>(?:{QUOTED}|[^\s\"'\x00][^\s\x00]*))"),
        _short_p,
    ),
    Rule(
        "secret_assignment", _NAME_NEEDLES,
        re.compile(
            r"(?<![\w.-])(?P<q>\\?[\"']?)(?P<name>[A-Za-z_][\w.-]{0,80})(?P=q)"
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
