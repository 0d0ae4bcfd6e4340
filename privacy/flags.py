"""Secrets on command lines: flags whose value is a secret, by name or by the tool given it.

`--password x`, `--master-password=x` say so by their name; `sshpass -p`, `redis-cli -a`,
`mongo -p` and `curl -u user:x` only by the tool that takes them, and `-pSECRET` only on
the command line of a MySQL tool (`ssh -p 22` is a port). The renders here are the
`command_line_secret` rules' (privacy.rules); the JSON walker reads a command line given
as a list with the same tables.
"""

from __future__ import annotations

import re
from typing import Dict, FrozenSet, Optional, Tuple

from privacy.names import benign_value, is_secret_name, mask_groups, placeholder

_MYSQL_TOOL = re.compile(
    r"mysql|mariadb|xtrabackup|mariabackup|innobackupex|mydumper|myloader|pt-[a-z]|mydiag",
    re.I,
)


def short_p(match: re.Match[str]) -> Optional[str]:
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


def secret_flag(match: re.Match[str]) -> Optional[str]:
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


def tool_flag(match: re.Match[str]) -> Optional[str]:
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
