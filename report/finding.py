"""What a rule says: a finding with its evidence, or why it could not say anything."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

#: Least to most serious; a finding's severity is one of these.
SEVERITIES = ("info", "notice", "warning", "error", "critical")
CONFIDENCES = ("low", "medium", "high")


def severity_rank(severity: str) -> int:
    """0 (info) … 4 (critical); an unknown severity (a report read back from JSON) ranks as info."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


class Insufficient(Exception):
    """Too little data to judge (one sample, a tiny volume, a window cut by a restart):
    the rule says so instead of guessing."""


class NotApplicable(Exception):
    """The rule's precondition does not hold on this server (feature off, not a replica)."""


@dataclass
class Evidence:
    """Where a finding comes from: the bundle member, the values that triggered it, and for
    sampled rules the samples (`[ts, value]`), for workload rules the digests behind it."""

    member: str
    values: Dict[str, Any] = field(default_factory=dict)
    samples: List[List[Any]] = field(default_factory=list)
    digests: List[Dict[str, Any]] = field(default_factory=list)
    note: str = ""


@dataclass
class Hit:
    """What a rule function returns when it fires; the engine adds the declaration's fields.
    `advice`, `risk`, `verify` and `severity` override the declaration's when given."""

    summary: str
    evidence: List[Evidence] = field(default_factory=list)
    advice: Optional[str] = None
    risk: Optional[str] = None
    verify: Optional[str] = None
    severity: Optional[str] = None
    confidence: Optional[str] = None


@dataclass
class Finding:
    rule: str
    group: str
    title: str
    severity: str
    confidence: str
    summary: str
    evidence: List[Evidence]
    advice: str
    risk: str
    verify: str
    window: bool

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Finding:
        evidence = [Evidence(**e) for e in data.get("evidence", [])]
        return cls(**{**data, "evidence": evidence})


@dataclass
class Outcome:
    """A rule that did not fire, and why: `insufficient`, `not_applicable`, `passed`, `error`."""

    rule: str
    status: str
    reason: str = ""
