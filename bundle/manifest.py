"""The manifest: the first member of every bundle, describing everything after it."""

from __future__ import annotations

import datetime as _dt
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from bundle.version import FORMAT_VERSION, __version__

MANIFEST_PATH = "manifest.json"
STATUSES = ("ok", "partial", "failed", "skipped")


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def iso(moment: _dt.datetime) -> str:
    """UTC, ISO 8601, second precision with a Z: what every bundle and API uses."""
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(moment: Optional[_dt.datetime] = None) -> str:
    """UTC, ISO 8601 with milliseconds and a Z: a sample's `ts`, a file's `captured_at`."""
    moment = (moment or utc_now()).astimezone(_dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class CollectorEntry:
    name: str
    status: str
    duration: float
    error: Optional[str] = None
    fix: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    files: List[str] = field(default_factory=list)


@dataclass
class FileEntry:
    path: str
    bytes: int
    sha256: str
    #: What redaction changed in this file: rule -> count (never the values).
    redactions: Dict[str, int] = field(default_factory=dict)
    #: When its collector produced it (UTC, `stamp`); JSON Lines rows carry their own `ts`.
    captured_at: Optional[str] = None


@dataclass
class Manifest:
    host: str
    profile: str
    started: str
    finished: str = ""
    format_version: int = FORMAT_VERSION
    tool: str = "mydiag"
    tool_version: str = __version__
    mysql: Dict[str, Any] = field(default_factory=dict)
    collectors: List[CollectorEntry] = field(default_factory=list)
    files: List[FileEntry] = field(default_factory=list)
    redaction: Dict[str, int] = field(default_factory=dict)
    options: Dict[str, Any] = field(default_factory=dict)
    #: Set when an agent trigger caused this capture: name, condition, the values that fired it.
    trigger: Optional[Dict[str, Any]] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Manifest:
        data = dict(data)
        data["collectors"] = [CollectorEntry(**_known(CollectorEntry, c)) for c in data.get("collectors", [])]
        data["files"] = [FileEntry(**_known(FileEntry, f)) for f in data.get("files", [])]
        return cls(**_known(cls, data))


def _known(kind: type, data: Dict[str, Any]) -> Dict[str, Any]:
    """The keys `kind` has: readers ignore keys they do not know (docs/bundle-format.md)."""
    return {k: v for k, v in data.items() if k in kind.__dataclass_fields__}
