"""Reply policies: for a customer's plan and a ticket's severity, the first-reply and
next-reply targets and the business calendar they run on.

Configured in the `support` section of config.json (docs/conversations.md, "Policies"):

```json
"support": {
  "calendars": {"office": {"timezone": "Europe/Berlin", "holidays": "DE",
                           "hours": {"mon": ["09:00-17:00"], "tue": ["09:00-17:00"]}}},
  "policies": [
    {"name": "urgent", "severity": "urgent", "first_reply": "1h", "next_reply": "2h", "calendar": "24x7"},
    {"name": "gold", "plan": "gold", "first_reply": "2h", "next_reply": "4h", "calendar": "office"},
    {"name": "default", "first_reply": "4h", "next_reply": "8h", "calendar": "office"}
  ]
}
```

The first policy whose `plan` and `severity` match (absent or "*": any) applies; a
customer's plan is set with `mydiag-server customer set-plan` (default "standard"), a
ticket's severity with `mydiag-server customer ticket-terms` (default "normal"). The
calendar "24x7" always exists. Without a `support` section the defaults below apply.
The server process loads them once at start (`configure`); a policy change applies to
obligations opened after it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from server.config import ConfigError
from server.support import calendar as cal

DEFAULT_PLAN = "standard"
DEFAULT_SEVERITY = "normal"
SEVERITIES = ("low", "normal", "high", "urgent")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

DEFAULTS: Dict[str, Any] = {
    "calendars": {"business": {"timezone": "UTC",
                               "hours": {d: ["09:00-17:00"] for d in cal.DAYS[:5]}}},
    "policies": [
        {"name": "urgent", "severity": "urgent", "first_reply": "1h", "next_reply": "2h",
         "calendar": "24x7"},
        {"name": "default", "first_reply": "4h", "next_reply": "8h", "calendar": "business"},
    ],
}


class PolicyError(ConfigError):
    """The `support` section of config.json cannot be used; the message says where."""


@dataclass(frozen=True)
class Policy:
    name: str
    plan: str
    severity: str
    first_reply: float
    next_reply: float
    calendar: cal.Calendar

    def matches(self, plan: str, severity: str) -> bool:
        return self.plan in ("*", plan) and self.severity in ("*", severity)

    def target(self, kind: str) -> float:
        return self.first_reply if kind == "first" else self.next_reply


@dataclass(frozen=True)
class PolicySet:
    policies: Tuple[Policy, ...]
    calendars: Dict[str, cal.Calendar]

    def choose(self, plan: str, severity: str) -> Policy:
        for policy in self.policies:
            if policy.matches(plan, severity):
                return policy
        return self.policies[-1]

    def calendar(self, name: str) -> cal.Calendar:
        """A calendar by name; one that is gone from the settings falls back to 24x7."""
        return self.calendars.get(name, cal.ALWAYS)


def duration(value: Any, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    m = _DURATION.match(str(value).strip())
    if not m or float(m.group(1)) <= 0:
        raise PolicyError(f"{where} must be a positive duration like 3600, \"45m\", \"4h\" or \"2d\"")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(section: Optional[Dict[str, Any]]) -> PolicySet:
    section = section or {}
    if not isinstance(section, dict):
        raise PolicyError("config.json: support must be an object")
    calendars = {"24x7": cal.ALWAYS}
    for name, spec in {**DEFAULTS["calendars"], **(section.get("calendars") or {})}.items():
        try:
            calendars[str(name)] = cal.parse(str(name), spec)
        except cal.CalendarError as exc:
            raise PolicyError(f"config.json support.calendars: {exc}") from None
    given = section.get("policies") or DEFAULTS["policies"]
    if not isinstance(given, list):
        raise PolicyError("config.json support.policies must be a list")
    policies: List[Policy] = []
    for i, spec in enumerate(given):
        where = f"config.json support.policies[{i}]"
        if not isinstance(spec, dict):
            raise PolicyError(f"{where} must be an object")
        unknown = set(spec) - {"name", "plan", "severity", "first_reply", "next_reply", "calendar"}
        if unknown:
            raise PolicyError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
        calendar_name = str(spec.get("calendar", "business"))
        if calendar_name not in calendars:
            raise PolicyError(f"{where}: no calendar named {calendar_name!r}")
        policies.append(Policy(str(spec.get("name", f"policy-{i}")), str(spec.get("plan", "*")),
                               str(spec.get("severity", "*")),
                               duration(spec.get("first_reply"), f"{where}.first_reply"),
                               duration(spec.get("next_reply"), f"{where}.next_reply"),
                               calendars[calendar_name]))
    if not policies:
        raise PolicyError("config.json support.policies is empty")
    return PolicySet(tuple(policies), calendars)


_active = parse(None)


def configure(section: Optional[Dict[str, Any]]) -> PolicySet:
    """Make these settings the process's policies (the server calls it once at start)."""
    global _active
    _active = parse(section)
    return _active


def active() -> PolicySet:
    return _active
