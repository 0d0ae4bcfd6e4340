"""Where the bundle says a variable is set: the option files and the persisted variables.

The option files are the copies under config/files/ that config/option_files.json lists;
only the groups the target server reads count (`[mysqld]`, `[server]`, `[mariadb]`,
`[mariadbd]`, and a versioned group such as `[mysqld-8.4]` only for that series). The
persisted variables are config/mysqld-auto.cnf (SET PERSIST, MySQL 8+).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

from report.model import Bundle

OPTION_FILES = "config/option_files.json"
PERSISTED = "config/mysqld-auto.cnf"
_SERVER_GROUPS = ("mysqld", "server", "mariadb", "mariadbd")
_VERSIONED = re.compile(r"^(mysqld|mariadb|mariadbd)-(\d+)\.(\d+)$")
_PREFIXES = ("loose_", "skip_", "disable_", "enable_", "maximum_")


@dataclass(frozen=True)
class Setting:
    source: str  # the file (its original path) or the persisted file
    line: int
    name: str  # as written
    key: str  # lower case, dashes as underscores, loose_/skip_ prefixes off
    value: str
    loose: bool = False

    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line else self.source


def normalize(name: str) -> Tuple[str, bool]:
    """The variable an option names, and whether it has the `loose-` prefix."""
    key = name.strip().lower().replace("-", "_")
    loose = key.startswith("loose_")
    if loose:
        key = key[len("loose_"):]
    return key, loose


def lookup_keys(key: str) -> List[str]:
    """The names an option key may mean: itself, then without skip_/disable_/… prefixes."""
    keys = [key]
    for prefix in _PREFIXES[1:]:
        if key.startswith(prefix):
            keys.append(key[len(prefix):])
    return keys


def option_settings(bundle: Bundle, series: Tuple[int, int]) -> Optional[List[Setting]]:
    """Every server-group setting in the copied option files; None when the bundle has no
    listing of them (the collector failed or was not run)."""
    listing = bundle.json(OPTION_FILES)
    if not isinstance(listing, dict):
        return None
    copies = listing.get("copied_as")
    out: List[Setting] = []
    for original, member in (copies.items() if isinstance(copies, dict) else []):
        text = bundle.text(str(member))
        if text is None:
            continue
        out.extend(_parse(str(original), text, series))
    return out


def _parse(source: str, text: str, series: Tuple[int, int]) -> Iterator[Setting]:
    reading = False
    for number, raw in enumerate(text.splitlines()[:20000], 1):
        line = raw.strip()
        if not line or line[0] in "#;" or line.startswith("!"):
            continue
        if line.startswith("["):
            group = line[1:line.find("]")].strip().lower() if "]" in line else ""
            versioned = _VERSIONED.match(group)
            reading = group in _SERVER_GROUPS or bool(
                versioned and (int(versioned.group(2)), int(versioned.group(3))) == series)
            continue
        if not reading:
            continue
        name, _, value = line.partition("=")
        value = value.split(" #")[0].strip().strip("'\"")
        key, loose = normalize(name)
        if key:
            yield Setting(source, number, name.strip(), key, value, loose)


def persisted_settings(bundle: Bundle) -> Optional[List[Setting]]:
    """The persisted variables; [] when the collector found none, None when unknown."""
    text = bundle.text(PERSISTED)
    if text is None:
        return [] if _nothing_persisted(bundle) else None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    out: List[Setting] = []
    for name, value in _persisted_values(data.get("mysql_server") if isinstance(data, dict) else None):
        key, _ = normalize(name)
        out.append(Setting(PERSISTED, 0, name, key, value))
    return out


def _persisted_values(node: Any, depth: int = 0) -> Iterator[Tuple[str, str]]:
    """(name, value) pairs: a variable is a key whose object has a `Value` (format 1 and 2
    nest the static and sensitive ones one level deeper)."""
    if not isinstance(node, dict) or depth > 2:
        return
    for name, entry in node.items():
        if isinstance(entry, dict) and "Value" in entry:
            yield str(name), str(entry.get("Value"))
        elif isinstance(entry, dict):
            yield from _persisted_values(entry, depth + 1)


def _persisted_entry(bundle: Bundle) -> Optional[Dict[str, Any]]:
    for entry in bundle.manifest.get("collectors") or []:
        if isinstance(entry, dict) and entry.get("name") == "config.persisted":
            return entry
    return None


def _nothing_persisted(bundle: Bundle) -> bool:
    entry = _persisted_entry(bundle)
    return bool(entry and entry.get("status") == "skipped"
                and "no persisted variables" in str(entry.get("error")))


def why_persisted_missing(bundle: Bundle) -> str:
    """What the manifest says about the persisted-variables collector (its file's name does not
    carry the collector's)."""
    entry = _persisted_entry(bundle)
    if entry is None:
        return f"{PERSISTED} is not in the bundle"
    error = entry.get("error") or ""
    return f"config.persisted {entry.get('status')}" + (f": {error}" if error else "")


def explicitly_set(settings: Optional[List[Setting]], name: str) -> Optional[Setting]:
    for setting in settings or []:
        if name in lookup_keys(setting.key):
            return setting
    return None
