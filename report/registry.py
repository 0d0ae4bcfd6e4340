"""The rule registry: a rule is a short function declared with `@rule`, like a collector.

The declaration says what the rule is (a stable id such as `MEM-01`, grouped by its prefix,
a title, the flavors and versions it applies to, the members it needs, its severity and
confidence, the advice, what the change costs or risks, how to verify or roll it back);
the function looks at the bundle and returns a `Hit` when it fires, None when the server
passes, or raises `Insufficient`/`NotApplicable`. Its docstring is its documentation
(`mydiag report --explain MEM-01`, docs/rules/): what it checks, why it matters, an
example, the fix.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from report.finding import CONFIDENCES, SEVERITIES, Hit

_ID = re.compile(r"^[A-Z]{2,5}-\d{2}$")
#: A rule's version bounds: flavor → (first version it applies to, first it no longer does).
Bounds = Dict[str, Tuple[Optional[Tuple[int, ...]], Optional[Tuple[int, ...]]]]


@dataclass
class Rule:
    id: str
    title: str
    group: str
    severity: str
    confidence: str
    func: Callable[..., Optional[Hit]]
    flavors: Tuple[str, ...]
    versions: Bounds
    needs: Tuple[str, ...]
    window: bool
    advice: str
    risk: str
    verify: str
    tags: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def doc(self) -> str:
        return inspect.cleandoc(self.func.__doc__ or "")

    def applies_to(self, flavor: str, version: Tuple[int, ...]) -> Optional[str]:
        """None when the rule applies; otherwise why not, in a few words."""
        if flavor not in self.flavors:
            return f"not for {flavor}"
        low, high = self.versions.get(flavor, (None, None))
        if version and low and version < low:
            return f"from {'.'.join(map(str, low))}"
        if version and high and version >= high:
            return f"before {'.'.join(map(str, high))} only"
        return None


_RULES: Dict[str, Rule] = {}


def rule(id: str, title: str, *, group: str, severity: str, advice: str, risk: str, verify: str,
         confidence: str = "high", flavors: Tuple[str, ...] = ("mysql", "mariadb"),
         versions: Optional[Bounds] = None, needs: Tuple[str, ...] = (), window: bool = False,
         tags: Tuple[str, ...] = ()) -> Callable:
    """Declare a rule. `window=True` marks a rule that reads the sampled window (a rate, a
    trend, a persistence): what no one-shot tool can do."""
    if not _ID.match(id):
        raise ValueError(f"rule id {id!r} is not like MEM-01")
    if severity not in SEVERITIES or confidence not in CONFIDENCES:
        raise ValueError(f"{id}: severity {severity!r} / confidence {confidence!r}")

    def declare(func: Callable[..., Optional[Hit]]) -> Callable[..., Optional[Hit]]:
        if id in _RULES:
            raise ValueError(f"rule {id} declared twice")
        if not (func.__doc__ or "").strip():
            raise ValueError(f"rule {id} has no docstring: the docstring is its documentation")
        _RULES[id] = Rule(id, title, group, severity, confidence, func, tuple(flavors),
                          dict(versions or {}), tuple(needs), window, advice, risk, verify, tuple(tags))
        return func

    return declare


def all_rules() -> List[Rule]:
    """Every declared rule, by id (import report.catalog first so that all are declared)."""
    return [_RULES[key] for key in sorted(_RULES)]


def get(rule_id: str) -> Optional[Rule]:
    return _RULES.get(rule_id.upper())
