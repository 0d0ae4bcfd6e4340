"""MySQL option files (my.cnf), read the way the server and its clients read them.

Sections, `key = value`, bare `key` flags, quotes and escapes, `loose-` prefixes,
`!include FILE` and `!includedir DIR` (only `*.cnf`, in name order), with loop
protection. Unreadable or malformed parts become notes, never exceptions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set

#: The client search order of MySQL and MariaDB on Linux; ~ expanded at read time.
CLIENT_SEARCH_ORDER = ("/etc/my.cnf", "/etc/mysql/my.cnf", "~/.my.cnf")

_MAX_INCLUDE_DEPTH = 10
_MAX_FILE_BYTES = 1 << 20


@dataclass
class Option:
    file: str
    line: int
    section: str
    key: str
    value: Optional[str]


@dataclass
class OptionFiles:
    options: List[Option] = field(default_factory=list)
    files: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    #: Each file's text as read (path -> text), so a copy shows exactly what was parsed.
    texts: Dict[str, str] = field(default_factory=dict)

    def group(self, *sections: str) -> Dict[str, Optional[str]]:
        """The options of `sections`, later files and lines winning, keys normalized."""
        wanted = {s.lower() for s in sections}
        merged: Dict[str, Optional[str]] = {}
        for opt in self.options:
            if opt.section.lower() in wanted:
                merged[normalize_key(opt.key)] = opt.value
        return merged


def normalize_key(key: str) -> str:
    key = key.strip().lower().replace("_", "-")
    return key[len("loose-"):] if key.startswith("loose-") else key


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        if value[0] == '"':
            return bytes(inner, "utf-8").decode("unicode_escape", "replace") if "\\" in inner else inner
        return inner
    # An unquoted value ends at a comment that follows whitespace.
    for marker in (" #", "\t#"):
        cut = value.find(marker)
        if cut >= 0:
            value = value[:cut].rstrip()
    return value


def read(paths: Iterable[str], *, missing_ok: bool = True) -> OptionFiles:
    """Read `paths` in order, following includes."""
    result = OptionFiles()
    seen: Set[str] = set()
    for path in paths:
        expanded = os.path.expanduser(path)
        try:
            os.stat(expanded)
        except FileNotFoundError:
            if not missing_ok:
                result.notes.append(f"{path}: no such file")
            continue
        except OSError as exc:
            result.notes.append(f"{path}: cannot read ({exc.strerror})")
            continue
        _read_file(Path(expanded), result, seen, depth=0)
    return result


def looks_binary(raw: bytes) -> bool:
    """NUL bytes, or many control characters: not an option file (or not one any more)."""
    head = raw[:4096]
    controls = sum(1 for b in head if (b < 32 and b not in b"\t\n\r\f\v") or b == 127)
    return b"\0" in raw or (bool(head) and controls > len(head) // 20)


def _read_file(path: Path, result: OptionFiles, seen: Set[str], depth: int) -> None:
    real = os.path.realpath(path)
    if real in seen:
        result.notes.append(f"{path}: already read (include loop or repeat), skipped")
        return
    if depth > _MAX_INCLUDE_DEPTH:
        result.notes.append(f"{path}: includes nested deeper than {_MAX_INCLUDE_DEPTH}, skipped")
        return
    seen.add(real)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        result.notes.append(f"{path}: cannot read ({exc.strerror})")
        return
    if len(raw) > _MAX_FILE_BYTES:
        result.notes.append(f"{path}: larger than 1 MiB, only the first MiB read")
        raw = raw[:_MAX_FILE_BYTES]
    if looks_binary(raw):
        result.notes.append(f"{path}: binary content, skipped")
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        result.notes.append(f"{path}: not UTF-8, read as Latin-1")
        text = raw.decode("latin-1")
    result.files.append(str(path))
    result.texts[str(path)] = text
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("!include "):
            target = Path(stripped[len("!include "):].strip())
            target = target if target.is_absolute() else path.parent / target
            if os.path.lexists(target) or not os.access(target.parent, os.X_OK):
                _read_file(target, result, seen, depth + 1)
            else:
                result.notes.append(f"{path}:{number}: !include {target}: no such file")
            continue
        if stripped.startswith("!includedir "):
            folder = Path(stripped[len("!includedir "):].strip())
            folder = folder if folder.is_absolute() else path.parent / folder
            try:
                names = sorted(n for n in os.listdir(folder) if n.endswith(".cnf"))
            except OSError as exc:
                result.notes.append(f"{path}:{number}: !includedir {folder}: {exc.strerror}")
                continue
            for name in names:
                _read_file(folder / name, result, seen, depth + 1)
            continue
        if stripped.startswith("["):
            end = stripped.find("]")
            if end < 0:
                result.notes.append(f"{path}:{number}: unterminated section header")
                continue
            section = stripped[1:end].strip()
            continue
        if not section:
            result.notes.append(f"{path}:{number}: option outside any section, ignored")
            continue
        key, sep, value = stripped.partition("=")
        result.options.append(
            Option(str(path), number, section, key.strip(), _unquote(value) if sep else None)
        )
