"""Structured redaction of JSON: a document is walked, never matched in its escaped form.

A key named like a secret loses its value, a row that names a secret setting in one
field (`variable_name`) loses the value in the other, a statement field is reduced to a
fingerprint, a list of strings is read as a command line (`--password x`, `-pSECRET`,
`sshpass -p x`, `curl -u user:x` need their neighbours), and every other string goes
through the line rules.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from privacy.fingerprint import fingerprint
from privacy.linerules import Count, Lines
from privacy.rules import (
    MASK,
    OPTIONS_FIRST,
    TOOL_SECRET_FLAGS,
    USER_PASSWORD_FLAGS,
    benign_value,
    is_secret_name,
    looks_like_option,
    placeholder,
    tool_of,
)

#: JSON keys whose string value is SQL text: reduced to a fingerprint anywhere, and
#: (the generic names) in MySQL members only.
STATEMENT_KEYS = frozenset({
    "sql_text", "query_sample_text", "digest_text", "current_statement", "last_statement",
    "trx_query",
})
MYSQL_STATEMENT_KEYS = STATEMENT_KEYS | {"info", "statement", "query", "argument", "sql"}
#: Rows that name a setting in one field and hold its value in another.
_PAIR_NAMES = ("variable_name", "name", "option", "key", "variable", "option_name", "setting")
_PAIR_VALUES = (
    "value", "variable_value", "val", "current_value", "file_value", "running_value",
    "global_value", "session_value", "default_value",
)


def dump_json(documents: List[Any], kind: str, raw: bytes) -> bytes:
    """Serialize like the collector did: indented when the original was, one per line for JSONL."""
    if kind == "jsonl":
        return "".join(json.dumps(doc, sort_keys=True, default=str) + "\n" for doc in documents).encode()
    indent = 2 if b"\n " in raw[:4096] else None
    body = json.dumps(documents[0], indent=indent, sort_keys=True, default=str)
    return (body + ("\n" if raw.endswith(b"\n") else "")).encode()


def json_documents(data: bytes, kind: str) -> Optional[List[Any]]:
    try:
        text = data.decode("utf-8")
        if kind == "json":
            return [json.loads(text)]
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        return None


class JsonRedaction:
    """Structured redaction of one JSON document."""

    def __init__(self, count: Count, path: str) -> None:
        self.count = count
        self.lines = Lines(count)
        self.statement_keys = MYSQL_STATEMENT_KEYS if path.startswith("mysql/") else STATEMENT_KEYS

    def walk(self, value: Any) -> Any:
        if isinstance(value, dict):
            return self._dict(value)
        if isinstance(value, list):
            if value and all(isinstance(v, str) for v in value):
                return self._argv(value)
            return [self.walk(v) for v in value]
        if isinstance(value, str):
            return self._string(value)
        return value

    def _string(self, value: str) -> str:
        self.lines.in_pem = False
        return self.lines.block(value)

    def _dict(self, value: Dict[Any, Any]) -> Dict[Any, Any]:
        pair_name = next(
            (v for k, v in value.items() if str(k).lower() in _PAIR_NAMES and isinstance(v, str)),
            None,
        )
        secret_pair = pair_name is not None and is_secret_name(pair_name)
        out: Dict[Any, Any] = {}
        for key, item in value.items():
            low = str(key).lower()
            # Only a string can be a secret: a number, a count, a switch or null under a
            # secret's name (`"by_plugin": {"mysql_native_password": 3}`) stays.
            if isinstance(item, str) and (
                (is_secret_name(str(key)) and not benign_value(str(item), str(key)))
                or (secret_pair and low in _PAIR_VALUES and not benign_value(str(item), pair_name))
            ):
                self.count("secret_field", 1)
                out[key] = MASK
            elif low in self.statement_keys and isinstance(item, str):
                reduced = fingerprint(item)
                if reduced != " ".join(item.split()):
                    self.count("statement_fingerprint", 1)
                out[key] = self._string(reduced)
            else:
                out[key] = self.walk(item)
        return out

    def _argv(self, argv: List[str]) -> List[str]:
        """A command line as a list: `--password x`, `-pSECRET`, `sshpass -p x` and
        `curl -u user:x` need their neighbours."""
        tool = any(re.search(r"mysql|mariadb|backup|dump", a, re.I) for a in argv[:2])
        out: List[str] = []
        secret_next = ""
        flags: Tuple[str, ...] = ()
        options_first: FrozenSet[str] = frozenset()
        previous = ""
        for arg in argv:
            if secret_next and not looks_like_option(arg) and not benign_value(arg):
                out.append(self._tool_value(secret_next, arg))
                secret_next = previous = ""
                continue
            secret_next = ""
            program = tool_of(arg)
            if program is not None:
                flags = TOOL_SECRET_FLAGS[program]
                options_first = OPTIONS_FIRST.get(program, frozenset())
            elif options_first and not arg.startswith("-") and previous not in options_first:
                # The command the tool runs begins: its flags are its own (`ssh -p 22`).
                flags, options_first = (), frozenset()
            previous = arg
            if tool and len(arg) > 2 and arg.startswith("-p"):
                self.count("command_line_secret", 1)
                out.append("-p" + MASK)
                continue
            attached = next((f for f in flags if arg.startswith(f) and len(arg) > len(f)
                             and (len(f) == 2 or arg[len(f)] == "=")), None)
            if attached is not None and arg not in flags:
                value = arg[len(attached):]
                sep = "=" if value.startswith("=") else ""
                out.append(attached + sep + self._tool_value(attached, value[len(sep):]))
                continue
            flag = re.fullmatch(r"--?([A-Za-z][\w.-]*)", arg)
            if arg in flags:
                secret_next = arg
            elif flag and is_secret_name(flag.group(1)):
                secret_next = "--password"
            out.append(self._string(arg))
        return out

    def _tool_value(self, flag: str, value: str) -> str:
        if flag in USER_PASSWORD_FLAGS:
            user, colon, secret = value.partition(":")
            if not colon or placeholder(secret):
                return self._string(value)
            self.count("command_line_secret", 1)
            return user + ":" + MASK
        self.count("command_line_secret", 1)
        return MASK
