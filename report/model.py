"""A bundle, read once into memory within limits, with typed access to its members.

Everything in a bundle is customer input: members may be missing (a collector failed or
was skipped), malformed (a hostile or damaged bundle) or of another version. Accessors never
raise on bad shapes: they return None or empty, and `why_missing` says what the manifest
recorded about the collector that should have written a member.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Sequence, Tuple, Union

from bundle import age
from bundle.limits import DEFAULT, Limits
from bundle.reader import BundleError, members
from report.window import Window

#: Members larger than this are not read (the report needs none this big; logs are tails).
MAX_MEMBER = 64 << 20
#: Members under these folders are never needed by a rule and are not kept.
_UNREAD_PREFIXES = ("config/systemd/",)


class ReportError(Exception):
    """The bundle could not be read for a report; one printable line."""


@dataclass(frozen=True)
class Version:
    flavor: str  # "mariadb" or "mysql" (Percona Server and others in the MySQL family)
    number: Tuple[int, ...]

    def at_least(self, *version: int) -> bool:
        return self.number >= tuple(version)

    def below(self, *version: int) -> bool:
        return self.number < tuple(version)

    @property
    def is_mariadb(self) -> bool:
        return self.flavor == "mariadb"

    def __str__(self) -> str:
        return f"{'MariaDB' if self.is_mariadb else 'MySQL'} {'.'.join(map(str, self.number))}"


def parse_version(text: Any) -> Tuple[int, ...]:
    parts: List[int] = []
    for piece in str(text or "").split("-")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isascii() and ch.isdigit())
        if not digits:
            break
        parts.append(int(digits[:6]))
    return tuple(parts[:3])


class Bundle:
    """One bundle's members (bytes by path) and its manifest."""

    def __init__(self, files: Dict[str, bytes], manifest: Dict[str, Any], label: str = "the bundle"):
        self.files = files
        self.manifest = manifest if isinstance(manifest, dict) else {}
        self.label = label
        self._parsed: Dict[str, Any] = {}
        self._window: Optional[Window] = None

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Union[str, Path], identities: Sequence[str] = (), limits: Limits = DEFAULT,
             ) -> Bundle:
        """A plain `.tar.zst` or a sealed `.tar.zst.age` (opened with `identities`). Raises
        ReportError, or age.AgeError (its `kind` says which: wrong key, damaged, bad key)."""
        label = str(path)
        try:
            with open(path, "rb") as raw:
                if age.is_age_file(path):
                    if not identities:
                        raise ReportError(f"{label} is sealed: give the identity that opens it "
                                          "(--identity FILE)")
                    return cls.read(age.AgeReader(raw, list(identities)), label, limits)
                return cls.read(raw, label, limits)
        except OSError as exc:
            raise ReportError(f"{label}: {exc.strerror or exc}") from None

    @classmethod
    def read(cls, stream: BinaryIO, label: str = "the bundle", limits: Limits = DEFAULT) -> Bundle:
        files: Dict[str, bytes] = {}
        try:
            for info, handle in members(stream, limits):
                if handle is None or info.name.startswith(_UNREAD_PREFIXES) or info.size > MAX_MEMBER:
                    continue
                files[info.name] = handle.read()
        except BundleError as exc:
            raise ReportError(str(exc)) from None
        if "manifest.json" not in files:
            raise ReportError(f"{label}: no manifest.json: not a mydiag bundle")
        try:
            manifest = json.loads(files["manifest.json"])
        except ValueError:
            raise ReportError(f"{label}: manifest.json is not JSON") from None
        return cls(files, manifest, label)

    @classmethod
    def from_directory(cls, folder: Union[str, Path]) -> Bundle:
        """An unpacked bundle (tests, and `mydiag-server bundle open`'s output)."""
        root = Path(folder)
        files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                 if p.is_file() and p.stat().st_size <= MAX_MEMBER}
        manifest = json.loads(files.get("manifest.json", b"{}") or b"{}")
        return cls(files, manifest, str(folder))

    # -- members --------------------------------------------------------------------------
    def has(self, path: str) -> bool:
        return path in self.files

    def text(self, path: str) -> Optional[str]:
        data = self.files.get(path)
        return None if data is None else data.decode("utf-8", "replace")

    def json(self, path: str, default: Any = None) -> Any:
        if path not in self._parsed:
            data = self.files.get(path)
            try:
                self._parsed[path] = None if data is None else json.loads(data)
            except ValueError:
                self._parsed[path] = None
        value = self._parsed[path]
        return default if value is None else value

    def jsonl(self, path: str) -> List[Dict[str, Any]]:
        key = path + "#lines"
        if key not in self._parsed:
            rows: List[Dict[str, Any]] = []
            for line in (self.text(path) or "").splitlines():
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    rows.append(row)
            self._parsed[key] = rows
        return self._parsed[key]

    def why_missing(self, path: str) -> str:
        """What the manifest says about the collector that writes `path`."""
        for entry in self.manifest.get("collectors") or []:
            if not isinstance(entry, dict):
                continue
            if path in (entry.get("files") or []) or _writes(entry.get("name"), path):
                status = entry.get("status")
                error = entry.get("error") or ""
                return f"{entry.get('name')} {status}" + (f": {error}" if error else "")
        return f"{path} is not in the bundle"

    # -- the server ----------------------------------------------------------------------
    @property
    def host(self) -> str:
        return str(self.manifest.get("host") or "")

    @property
    def version(self) -> Version:
        mysql = self.manifest.get("mysql") if isinstance(self.manifest.get("mysql"), dict) else {}
        flavor = str(mysql.get("flavor") or self.json("mysql/identity.json", {}).get("flavor") or "")
        flavor = "mariadb" if flavor.lower() == "mariadb" else "mysql"
        number = parse_version(mysql.get("version") or self.variable("version"))
        return Version(flavor, number)

    @property
    def variables(self) -> Dict[str, str]:
        data = self.json("mysql/global_variables.json", {})
        if not isinstance(data, dict):
            return {}
        return {str(k).lower(): ("" if v is None else str(v)) for k, v in data.items()}

    def variable(self, name: str) -> Optional[str]:
        return self.variables.get(name.lower())

    def number(self, name: str) -> Optional[float]:
        """A numeric server variable, or None when absent or not a number."""
        return to_number(self.variable(name))

    def switch(self, name: str) -> Optional[bool]:
        """A boolean server variable (ON/OFF/1/0), or None."""
        value = (self.variable(name) or "").strip().upper()
        if value in ("ON", "1", "YES", "TRUE", "FORCE", "FORCE_PLUS_PERMANENT"):
            return True
        if value in ("OFF", "0", "NO", "FALSE", "DEMAND"):
            return False
        return None

    @property
    def window(self) -> Window:
        """The status samples (mysql/global_status.jsonl) as a window."""
        if self._window is None:
            self._window = Window.from_rows(self.jsonl("mysql/global_status.jsonl"), "status")
        return self._window

    def os_window(self, path: str, key: Optional[str] = None) -> Window:
        """An OS sampler's JSON Lines as a window (rows' `key` object, or the row itself)."""
        return Window.from_rows(self.jsonl(path), key)


def _writes(collector: Any, path: str) -> bool:
    """True when `path` belongs to the collector's namespace (mysql.status → mysql/…)."""
    name = str(collector or "")
    return "." in name and path.startswith(name.split(".", 1)[0] + "/") and name.split(".", 1)[1] in path


def to_number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if value == value and abs(value) != float("inf") else None
    text = str(value or "").strip()
    if not text or len(text) > 40:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None
