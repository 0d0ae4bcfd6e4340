"""The manifest's shape, checked before anything uses it.

A manifest arrives from a customer's host and is hostile until checked: any field may
hold the wrong type (a number as the host, a list as a path, an object as a status), a
lone surrogate that no database or terminal accepts, a NUL, nesting deep enough to
exhaust the parser's stack, or a key twice (two parsers would disagree on which one
counts). `parse` turns the exact bytes into a document whose every field the code reads
has the type docs/bundle-format.md gives it; anything else raises ManifestError with a
one-line reason that names the field.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, Iterator, List, Tuple

from bundle.limits import DEFAULT, Limits
from bundle.manifest import STATUSES
from bundle.paths import member_problem
from bundle.version import FORMAT_VERSION

_SHA256 = re.compile(r"[0-9a-f]{64}")
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
#: A JSON string literal, so that brackets inside strings do not count as nesting.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
#: Longest short text (host, profile, tool, a time stamp, a collector's name).
NAME_CHARS = 255
_LARGEST = (1 << 63) - 1
_PLAIN = re.compile(r"[A-Za-z0-9_]{1,40}")


class ManifestError(ValueError):
    """manifest.json is not what the format says: one line that names the field and reads
    after "manifest.json is not valid: "."""


def parse(data: bytes, limits: Limits = DEFAULT) -> Dict[str, Any]:
    """The manifest document in `data`, checked (see the module docstring)."""
    if len(data) > limits.manifest_bytes:
        raise ManifestError(f"it is {len(data)} bytes; the limit is {limits.manifest_bytes}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"it is not UTF-8 (byte {exc.start})") from None
    depth = _depth(data, limits.json_depth)
    if depth > limits.json_depth:
        raise ManifestError(f"it nests arrays and objects more than {limits.json_depth} deep")
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise ManifestError("it nests too deeply to read") from None
    except ManifestError:
        raise
    except ValueError as exc:
        raise ManifestError(f"it is not JSON ({shown(str(exc).splitlines()[0], 120)[1:-1]})") from None
    if not isinstance(document, dict):
        raise ManifestError(f"it is {_kind(document)}, not a JSON object")
    _check(document, limits)
    return document


def _depth(data: bytes, stop: int) -> int:
    """The deepest nesting of arrays and objects, counting no further than `stop` + 1."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    level = deepest = 0
    for byte in brackets:
        level += 1 if byte in b"[{" else -1
        if level > deepest:
            deepest = level
            if deepest > stop:
                break
    return deepest


def _unique_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ManifestError(f"the key {shown(key)} appears twice in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ManifestError(f"it holds {name}, which is not JSON")


def _check(doc: Dict[str, Any], limits: Limits) -> None:
    for key in ("host", "profile", "started"):
        if key not in doc:
            raise ManifestError(f"it has no {key!r}")
    version = doc.get("format_version", FORMAT_VERSION)
    if not _is_int(version) or not 1 <= version <= FORMAT_VERSION:
        raise ManifestError(f"format_version must be a whole number from 1 to {FORMAT_VERSION}, "
                            f"not {_brief(version)} (a newer mydiag may read it)")
    for key in ("host", "profile", "tool", "tool_version"):
        if key in doc:
            _name(doc[key], key)
    for key in ("started", "finished"):
        if key in doc:
            _stamp(doc[key], key)
    _mysql(doc.get("mysql", {}))
    files = _list(doc.get("files", []), "files")
    if len(files) > limits.members:
        raise ManifestError(f"files lists {len(files)} members; the limit is {limits.members}")
    paths = set()
    for index, entry in enumerate(files):
        where = f"files[{index}]"
        _object(entry, where)
        path = _path(entry.get("path"), f"{where}.path", limits)
        if path in paths:
            raise ManifestError(f"{where}.path {shown(path)} is listed twice")
        paths.add(path)
        _count(entry.get("bytes"), f"{where}.bytes")
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise ManifestError(f"{where}.sha256 must be 64 lowercase hex digits, not {_brief(sha)}")
        _counts(entry.get("redactions", {}), f"{where}.redactions")
        if entry.get("captured_at") is not None:
            _stamp(entry["captured_at"], f"{where}.captured_at")
    collectors = _list(doc.get("collectors", []), "collectors")
    if len(collectors) > limits.members:
        raise ManifestError(f"collectors lists {len(collectors)} entries; the limit is {limits.members}")
    for index, entry in enumerate(collectors):
        _collector(entry, f"collectors[{index}]", limits)
    _counts(doc.get("redaction", {}), "redaction")
    _object(doc.get("options", {}), "options")
    trigger = doc.get("trigger")
    if trigger is not None:
        _object(trigger, "trigger")
    for where, value in _leaves(doc):
        if isinstance(value, float) and not math.isfinite(value):
            raise ManifestError(f"{where} is a number too large for JSON")
        if isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value):
            raise ManifestError(f"{where} holds a lone surrogate (not Unicode text)")
        if isinstance(value, str) and "\x00" in value:
            raise ManifestError(f"{where} holds a NUL character")


def _collector(entry: Any, where: str, limits: Limits) -> None:
    _object(entry, where)
    _name(entry.get("name"), f"{where}.name")
    status = entry.get("status")
    if status not in STATUSES:
        raise ManifestError(f"{where}.status must be one of {', '.join(STATUSES)}, not {_brief(status)}")
    duration = entry.get("duration")
    if not _is_number(duration) or not math.isfinite(duration) or duration < 0:
        raise ManifestError(f"{where}.duration must be a number of seconds, not {_brief(duration)}")
    for key in ("error", "fix"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise ManifestError(f"{where}.{key} must be text or null, not {_kind(entry[key])}")
    for index, note in enumerate(_list(entry.get("notes", []), f"{where}.notes")):
        if not isinstance(note, str):
            raise ManifestError(f"{where}.notes[{index}] must be text, not {_kind(note)}")
    for index, path in enumerate(_list(entry.get("files", []), f"{where}.files")):
        _path(path, f"{where}.files[{index}]", limits)


def _mysql(value: Any) -> None:
    _object(value, "mysql")
    for key in ("flavor", "version", "version_string", "version_comment", "label", "time_zone",
                "system_time_zone"):
        if value.get(key) is not None and not isinstance(value[key], str):
            raise ManifestError(f"mysql.{key} must be text or null, not {_kind(value[key])}")
    if "statements" in value:
        _count(value["statements"], "mysql.statements")
    connection = value.get("connection")
    if connection is not None and not isinstance(connection, (str, dict)):
        raise ManifestError(f"mysql.connection must be text or an object, not {_kind(connection)}")


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{where} must be text, not {_kind(value)}")
    if len(value) > NAME_CHARS:
        raise ManifestError(f"{where} is longer than {NAME_CHARS} characters")
    if any("\ud800" <= c <= "\udfff" for c in value):
        raise ManifestError(f"{where} holds a lone surrogate (not Unicode text)")
    if not value.replace(" ", "").isprintable():
        raise ManifestError(f"{where} holds a control or invisible character")
    return value


def _stamp(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise ManifestError(f"{where} must be text, not {_kind(value)}")
    if value and not _STAMP.fullmatch(value):
        raise ManifestError(f"{where} must be a UTC time like 2026-01-02T03:04:05Z, not {_brief(value)}")


def _path(value: Any, where: str, limits: Limits) -> str:
    if not isinstance(value, str):
        raise ManifestError(f"{where} must be text, not {_kind(value)}")
    problem = member_problem(value, limits.path_bytes)
    if problem:
        raise ManifestError(f"{where} {shown(value)} is not a member path: {problem}")
    return value


def _count(value: Any, where: str) -> None:
    if not _is_int(value) or not 0 <= value <= _LARGEST:
        raise ManifestError(f"{where} must be a whole number from 0, not {_brief(value)}")


def _counts(value: Any, where: str) -> None:
    for key, count in _object(value, where).items():
        _count(count, f"{where}[{shown(key)}]")


def _object(value: Any, where: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(f"{where} must be an object, not {_kind(value)}")
    return value


def _list(value: Any, where: str) -> List[Any]:
    if not isinstance(value, list):
        raise ManifestError(f"{where} must be an array, not {_kind(value)}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _leaves(doc: Any) -> Iterator[Tuple[str, Any]]:
    """Every key, string and number with where it is, walked without recursion."""
    stack: List[Tuple[str, Any]] = [("", doc)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                yield f"a key of {where or 'the manifest'}", key
                stack.append((_field(where, key), item))
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
        else:
            yield where, value


def _field(where: str, key: str) -> str:
    """`where.key`, or `where['key']` when the key is not a plain name."""
    if _PLAIN.fullmatch(key):
        return f"{where}.{key}" if where else key
    return f"{where}[{shown(key)}]"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    return {dict: "an object", list: "an array", str: "text", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _brief(value: Any) -> str:
    if isinstance(value, str):
        return shown(value)
    if _is_number(value):
        return str(value)[:40]
    return _kind(value)


def printable(text: str) -> str:
    """`text` with each control, invisible or surrogate character shown as its escape:
    fit for a terminal or a one-line reason. Free text in a manifest (a collector's
    error) may hold them; nothing that prints it may pass them through raw."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def shown(text: str, most: int = 60) -> str:
    """Text fit for a one-line reason: quoted, cut short, control characters and
    surrogates escaped (repr escapes everything that is not printable)."""
    return repr(text[:most] + ("…" if len(text) > most else ""))
