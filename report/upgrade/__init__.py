"""Offline upgrade checks: what breaks or changes when this bundle's server is upgraded to a
target (in the spirit of MySQL Shell's `util.checkForServerUpgrade()`), read from the bundle
alone.

`parse_target("mysql 8.4")` → a `Target`; `check_upgrade(bundle, target)` → the findings
(group "upgrade", rule ids `UPG-NN`) and the checks that could not be done because the bundle
lacks their data (`Outcome(status="insufficient")`: "not checked", never a pass).
"""

from __future__ import annotations

from typing import List, Tuple

from report.finding import Finding, Insufficient, NotApplicable, Outcome
from report.model import Bundle
from report.upgrade.checks import CHECKS, Check, Upgrade
from report.upgrade.targets import TARGETS, Target, parse_target

__all__ = ["CHECKS", "TARGETS", "Target", "check_upgrade", "parse_target"]

GROUP = "upgrade"


def check_upgrade(bundle: Bundle, target: Target) -> Tuple[List[Finding], List[Outcome]]:
    """Every check against `target`. Raises ValueError (one printable line) when the target is
    of another flavor than the bundle's server or not newer than it."""
    version = bundle.version
    if version.flavor != target.flavor:
        raise ValueError(f"the bundle's server is {version}: it cannot be upgraded in place to "
                         f"{target.label}")
    if version.number and tuple(version.number[:2]) >= target.version:
        raise ValueError(f"the bundle's server is {version}: already at or past {target.label}")
    upgrade = Upgrade(bundle, target, tuple(version.number))
    findings: List[Finding] = []
    outcomes: List[Outcome] = []
    for item in CHECKS:
        result = _run(item, upgrade)
        if isinstance(result, Finding):
            findings.append(result)
        elif result is not None:
            outcomes.append(result)
    order = ("critical", "error", "warning", "notice", "info")
    findings.sort(key=lambda f: (order.index(f.severity), f.rule))
    return findings, outcomes


def _run(item: Check, upgrade: Upgrade):
    try:
        hit = item.func(upgrade)
    except Insufficient as exc:
        return Outcome(item.id, "insufficient", str(exc))
    except NotApplicable:
        return None
    except Exception as exc:  # noqa: BLE001 - a hostile bundle fails one check, not the report
        return Outcome(item.id, "error", f"{type(exc).__name__} in {item.id}")
    if hit is None:
        return None
    return Finding(rule=item.id, group=GROUP, title=item.title, severity=hit.severity or item.severity,
                   confidence=hit.confidence or "high", summary=hit.summary, evidence=list(hit.evidence),
                   advice=hit.advice or item.advice, risk=hit.risk or item.risk,
                   verify=hit.verify or item.verify, window=False)
