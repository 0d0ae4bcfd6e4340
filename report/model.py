"""A bundle, read once into memory within limits, with typed access to its members.

Everything in a bundle is customer input: members may be missing (a collector failed or
was skipped), malformed (a hostile or damaged bundle) or of another version. Accessors never
raise on bad shapes: they return None or empty, and `why_missing` says what the manifest
recorded about the collector that should have written a member.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Dict, List, Optional, Sequence, Tuple, Union

from bundle import age
from bundle.limits import DEFAULT, Limits
from bundle.manifest_schema import ManifestError, parse, printable
from bundle.reader import BundleError, manifest_bytes, members
from report.window import Window, to_number

#: Members larger than this are not read (the report needs none this big; logs are tails).
MAX_MEMBER = 32 << 20
#: Bytes of members kept in memory in all: past it, later members are left out (and
#: `why_missing` says so), so that a bundle of many big members cannot exhaust memory.
MAX_KEPT = 96 << 20
#: JSON members with more structural characters than this are not parsed: a few MiB of
#: `[{},{},…]` would otherwise become millions of objects. Real members hold far fewer.
MAX_JSON_ITEMS = 1_000_000
#: Longest digit string read as an integer (longer ones are read as a float: CPython before
#: 3.11 converts huge digit strings in quadratic time).
_INT_DIGITS = 40
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
        #: Members not kept (over a size limit), with why: `why_missing` tells the rules.
        self.left_out: Dict[str, str] = {}

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Union[str, Path], identities: Sequence[str] = (), limits: Limits = DEFAULT,
             ) -> Bundle:
        """A plain `.tar.zst` or a sealed `.tar.zst.age` (opened with `identities`). Raises
        ReportError, or age.AgeError (its `kind` says which: wrong key, damaged, bad key)."""
        label = printable(str(path))
        try:
            packed = os.stat(path).st_size
            if os.path.isdir(path):
                raise ReportError(f"{label} is a folder, not a bundle (a .tar.zst or .tar.zst.age file)")
            with open(path, "rb") as raw:
                if age.is_age_file(path):
                    if not identities:
                        raise ReportError(f"{label} is sealed: give the identity that opens it "
                                          "(--identity FILE)")
                    return cls.read(age.AgeReader(raw, list(identities)), label, limits, packed)
                return cls.read(raw, label, limits, packed)
        except OSError as exc:
            raise ReportError(f"{label}: {printable(exc.strerror or str(exc))}") from None

    @classmethod
    def read(cls, stream: BinaryIO, label: str = "the bundle", limits: Limits = DEFAULT,
             packed_bytes: Optional[int] = None) -> Bundle:
        """Every member the report may need, within the bundle limits and MAX_KEPT.

        `packed_bytes` (the file's size) bounds the compression ratio: a stream alone (a
        sealed bundle being opened) does not tell it. The manifest is checked the way
        `mydiag verify` checks it: a malformed one is not a readable bundle."""
        files: Dict[str, bytes] = {}
        left_out: Dict[str, str] = {}
        manifest: Optional[Dict[str, Any]] = None
        kept = 0
        try:
            for info, handle in members(stream, limits, packed_bytes):
                if manifest is None:  # the reader's rules make the first member manifest.json
                    if handle is None:
                        raise ReportError(f"{label}: manifest.json is not a regular file")
                    data = manifest_bytes(handle, limits)
                    manifest = _manifest(data, label, limits)
                    files[info.name] = data
                    continue
                if handle is None or info.name.startswith(_UNREAD_PREFIXES):
                    continue
                if info.size > MAX_MEMBER:
                    left_out[info.name] = (f"{info.name} was not read: {info.size} bytes, over the "
                                           f"report's limit of {MAX_MEMBER} per member")
                elif kept + info.size > MAX_KEPT:
                    left_out[info.name] = (f"{info.name} was not read: the members before it already "
                                           f"hold {kept} bytes (the report keeps at most {MAX_KEPT})")
                else:
                    files[info.name] = handle.read()
                    kept += len(files[info.name])
        except BundleError as exc:
            raise ReportError(_one_line(str(exc), label)) from None
        if manifest is None:
            raise ReportError(f"{label}: empty: no manifest.json, not a mydiag bundle")
        bundle = cls(files, manifest, label)
        bundle.left_out = left_out
        return bundle

    @classmethod
    def from_directory(cls, folder: Union[str, Path]) -> Bundle:
        """An unpacked bundle (tests, and `mydiag-server bundle open`'s output)."""
        root = Path(folder)
        files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                 if p.is_file() and p.stat().st_size <= MAX_MEMBER}
        manifest = _loads(files.get("manifest.json", b"{}") or b"{}")
        return cls(files, manifest if isinstance(manifest, dict) else {}, str(folder))

    # -- members --------------------------------------------------------------------------
    def has(self, path: str) -> bool:
        return path in self.files

    def text(self, path: str) -> Optional[str]:
        data = self.files.get(path)
        return None if data is None else data.decode("utf-8", "replace")

    def json(self, path: str, default: Any = None) -> Any:
        if path not in self._parsed:
            data = self.files.get(path)
            self._parsed[path] = None if data is None else _loads(data)
        value = self._parsed[path]
        return default if value is None else value

    def jsonl(self, path: str) -> List[Dict[str, Any]]:
        key = path + "#lines"
        if key not in self._parsed:
            rows: List[Dict[str, Any]] = []
            data = self.files.get(path) or b""
            if _items(data) <= MAX_JSON_ITEMS:
                for line in data.splitlines():
                    row = _loads(line)
                    if isinstance(row, dict):
                        rows.append(row)
            self._parsed[key] = rows
        return self._parsed[key]

    def why_missing(self, path: str) -> str:
        """What the manifest says about the collector that writes `path`."""
        if path in self.left_out:
            return self.left_out[path]
        collectors = self.manifest.get("collectors")
        for entry in collectors if isinstance(collectors, list) else []:
            if not isinstance(entry, dict):
                continue
            listed = entry.get("files")
            if (isinstance(listed, list) and path in listed) or _writes(entry.get("name"), path):
                status = entry.get("status")
                error = entry.get("error") or ""
                return printable(f"{entry.get('name')} {status}" + (f": {error}" if error else ""))
        return f"{path} is not in the bundle"

    # -- the server ----------------------------------------------------------------------
    @property
    def host(self) -> str:
        host = self.manifest.get("host")
        return host if isinstance(host, str) else ""

    @property
    def version(self) -> Version:
        mysql = self.manifest.get("mysql") if isinstance(self.manifest.get("mysql"), dict) else {}
        identity = self.json("mysql/identity.json", {})
        flavor = str(mysql.get("flavor") or (identity.get("flavor") if isinstance(identity, dict) else "")
                     or "")
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


def _manifest(data: bytes, label: str, limits: Limits) -> Dict[str, Any]:
    try:
        return parse(data, limits)
    except ManifestError as exc:
        raise ReportError(f"{label}: manifest.json is not valid: {exc}") from None


def _one_line(message: str, label: str) -> str:
    """The reader's message, naming the file (it calls a stream "the bundle")."""
    text = " ".join(message.split())
    if text.startswith("the bundle: "):
        text = text[len("the bundle: "):]
    return text if text.startswith(label) else f"{label}: {text}"


def _items(data: bytes) -> int:
    return data.count(b",") + data.count(b"[") + data.count(b"{")


def _finite(text: str) -> Optional[float]:
    number = float(text)
    return number if math.isfinite(number) else None


def _integer(text: str) -> Any:
    return int(text) if len(text) <= _INT_DIGITS else _finite(text)


def _constant(_name: str) -> None:
    """NaN and ±Infinity (Python's JSON extension) read as absent values."""
    return None


def _loads(data: bytes) -> Any:
    """A member's JSON, or None when it is not JSON, nests too deep or is too big to parse."""
    if _items(data) > MAX_JSON_ITEMS:
        return None
    try:
        return json.loads(data, parse_float=_finite, parse_int=_integer, parse_constant=_constant)
    except (ValueError, RecursionError):
        return None
