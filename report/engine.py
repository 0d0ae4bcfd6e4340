"""Runs every rule over a bundle: findings, and for each rule that did not fire, why.

A rule that raises anything else than its two signals is recorded as an error of that rule
(its id and the exception's type), never a crash of the report: a hostile or odd bundle can
make one rule fail, not the engineer's view.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from report import catalog
from report.finding import Finding, Hit, Insufficient, NotApplicable, Outcome, severity_rank
from report.model import Bundle
from report.registry import Rule
from report.window import _iso

#: Findings at or above this severity are the headline.
HEADLINE_SEVERITY = "warning"


@dataclass
class Report:
    host: str
    server: str
    window: Dict[str, Any]
    findings: List[Finding]
    outcomes: List[Outcome]
    rules_run: int
    seconds: float = 0.0
    meta: Dict[str, Any] = field(default_factory=dict)

    def headline(self, count: int = 5) -> List[Finding]:
        worst = [f for f in self.findings if severity_rank(f.severity) >= severity_rank(HEADLINE_SEVERITY)]
        return worst[:count]

    def counts(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for finding in self.findings:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
        return counts

    def to_dict(self) -> Dict[str, Any]:
        return {
            "host": self.host, "server": self.server, "window": self.window,
            "rules_run": self.rules_run, "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "outcomes": [o.__dict__ for o in self.outcomes], "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> Report:
        return cls(data.get("host", ""), data.get("server", ""), data.get("window", {}),
                   [Finding.from_dict(f) for f in data.get("findings", [])],
                   [Outcome(**o) for o in data.get("outcomes", [])], data.get("rules_run", 0),
                   meta=data.get("meta", {}))


def evaluate(bundle: Bundle, rules: Optional[Sequence[Rule]] = None) -> Report:
    started = time.monotonic()
    version = bundle.version
    findings: List[Finding] = []
    outcomes: List[Outcome] = []
    chosen = list(rules) if rules is not None else catalog.rules()
    for rule in chosen:
        outcome = _run(rule, bundle, version.flavor, version.number)
        if isinstance(outcome, Finding):
            findings.append(outcome)
        else:
            outcomes.append(outcome)
    findings.sort(key=lambda f: (-severity_rank(f.severity), f.rule))
    window = bundle.window
    return Report(
        host=bundle.host, server=str(version) if version.number else "unknown server",
        window={"start": _iso(window.start) if window.start else None,
                "seconds": round(window.seconds, 3), "samples": len(window),
                "restarted": window.restarted},
        findings=findings, outcomes=outcomes, rules_run=len(chosen),
        seconds=time.monotonic() - started,
        meta={"started": bundle.manifest.get("started"), "profile": bundle.manifest.get("profile"),
              "tool_version": bundle.manifest.get("tool_version")},
    )


def _run(rule: Rule, bundle: Bundle, flavor: str, version: tuple) -> Any:
    reason = rule.applies_to(flavor, version)
    if reason:
        return Outcome(rule.id, "not_applicable", reason)
    for member in rule.needs:
        if not bundle.has(member):
            return Outcome(rule.id, "insufficient", bundle.why_missing(member))
    try:
        hit = rule.func(bundle)
    except Insufficient as exc:
        return Outcome(rule.id, "insufficient", str(exc))
    except NotApplicable as exc:
        return Outcome(rule.id, "not_applicable", str(exc))
    except Exception as exc:  # noqa: BLE001 - one rule's failure must not end the report
        return Outcome(rule.id, "error", f"{type(exc).__name__} in {rule.id}")
    if hit is None:
        return Outcome(rule.id, "passed")
    if not isinstance(hit, Hit):
        return Outcome(rule.id, "error", f"{rule.id} returned {type(hit).__name__}")
    return Finding(
        rule=rule.id, group=rule.group, title=rule.title,
        severity=hit.severity or rule.severity, confidence=hit.confidence or rule.confidence,
        summary=hit.summary, evidence=list(hit.evidence), advice=hit.advice or rule.advice,
        risk=hit.risk or rule.risk, verify=hit.verify or rule.verify, window=rule.window,
    )
