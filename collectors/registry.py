"""The collector registry: a collector is a plain function declared with `@collector`.

A collector says *what* to collect; the runner decides *how*: deadlines, errors,
redaction, archive paths. A collector yields `Artifact`s and never writes files.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

PROFILES = ("quick", "standard", "full")


class Need(enum.Enum):
    """What a collector needs to run; the runner skips it (and says why) when absent."""

    MYSQL = "mysql"
    ROOT = "root"


class Kind(enum.Enum):
    JSON = "json"
    JSONL = "jsonl"
    TEXT = "text"


@dataclass
class Artifact:
    """One file of the bundle, before redaction. `path` is relative to the bundle root."""

    path: str
    kind: Kind
    data: Any

    @classmethod
    def json(cls, path: str, data: Any) -> Artifact:
        return cls(path, Kind.JSON, data)

    @classmethod
    def jsonl(cls, path: str, rows: Iterable[Any]) -> Artifact:
        return cls(path, Kind.JSONL, list(rows))

    @classmethod
    def text(cls, path: str, text: str) -> Artifact:
        return cls(path, Kind.TEXT, text)

    def encode(self) -> bytes:
        if self.kind is Kind.JSON:
            return (json.dumps(self.data, indent=2, sort_keys=True, default=str) + "\n").encode()
        if self.kind is Kind.JSONL:
            return "".join(
                json.dumps(row, sort_keys=True, default=str) + "\n" for row in self.data
            ).encode()
        text = self.data if isinstance(self.data, str) else self.data.decode("utf-8", "replace")
        return text.encode()


class CollectorError(Exception):
    """A failure a user can act on: `reason` says what happened, `fix` what to do."""

    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


class Skip(CollectorError):
    """The collector does not apply here (feature absent, not enabled)."""


@dataclass
class Collector:
    name: str
    func: Callable[..., Iterator[Artifact]]
    profiles: Tuple[str, ...]
    needs: Tuple[Need, ...]
    timeout: float
    #: Takes `samples` readings `interval` apart: its deadline grows with the window.
    sampled: bool = False
    doc: str = ""
    #: Runs only when the user asks for it by this name (`--stacks`): it can pause the server.
    opt_in: str = ""
    #: Also runs, whatever the profile, when the user asks for it by this name (`--for-share`).
    requested: str = ""


_REGISTRY: Dict[str, Collector] = {}


def collector(
    name: str,
    *,
    profiles: Iterable[str] = ("standard", "full"),
    needs: Iterable[Need] = (),
    timeout: float = 10.0,
    sampled: bool = False,
    opt_in: str = "",
    requested: str = "",
) -> Callable[[Callable[..., Iterator[Artifact]]], Callable[..., Iterator[Artifact]]]:
    """Register `func` as the collector `name` for the given profiles."""
    profiles = tuple(profiles)
    unknown = set(profiles) - set(PROFILES)
    if unknown:
        raise ValueError(f"unknown profiles {sorted(unknown)} for collector {name}")

    def register(func: Callable[..., Iterator[Artifact]]) -> Callable[..., Iterator[Artifact]]:
        if name in _REGISTRY:
            raise ValueError(f"collector {name} registered twice")
        doc = (func.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = Collector(
            name, func, profiles, tuple(needs), timeout, sampled, doc[0] if doc else "", opt_in,
            requested,
        )
        return func

    return register


def registered() -> List[Collector]:
    """The collectors registered so far, in registration order.

    Only those whose modules were imported: `collectors.catalog` imports them all.
    """
    return list(_REGISTRY.values())


@dataclass
class Context:
    """What a collector may use. `shared` carries readings between collectors of one run."""

    profile: str
    session: Any = None
    samples: int = 5
    interval: float = 1.0
    table_guard: int = 10_000
    #: Bytes of each log's tail to include (--log-bytes).
    log_bytes: int = 2 << 20
    #: Extra files to copy (--config-file, repeatable).
    config_files: List[str] = field(default_factory=list)
    deadline: float = 0.0
    notes: Notes = field(default_factory=lambda: Notes())
    shared: Dict[str, Any] = field(default_factory=dict)
    #: What the user asked for by name (`--stacks`, `--for-share`): opt-in collectors, consents.
    asked: Tuple[str, ...] = ()

    @property
    def full(self) -> bool:
        return self.profile == "full"

    @property
    def readings(self) -> int:
        """Readings across the sampling window, for every sampler alike (the runner sets
        `samples`: one in the quick profile, except in a trigger's capture)."""
        return max(1, self.samples)


@dataclass
class Notes:
    """What a collector wants the manifest to say besides its artifacts."""

    items: List[str] = field(default_factory=list)
    partial: bool = False

    def add(self, text: str, *, partial: bool = False) -> None:
        self.items.append(text)
        self.partial = self.partial or partial


def first(rows: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    return rows[0] if rows else None
