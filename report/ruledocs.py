"""docs/rules/ made from the rules themselves (one page per rule and an index), so the
documentation cannot drift from the code: `python scripts/rules_docs.py` writes it, and a
test fails when the committed pages differ from what the rules say."""

from __future__ import annotations

from typing import Dict, List

from report import catalog
from report.registry import Rule


def applies(rule: Rule) -> str:
    parts = []
    for flavor in rule.flavors:
        low, high = rule.versions.get(flavor, (None, None))
        span = (f" from {'.'.join(map(str, low))}" if low else "") + (
            f" before {'.'.join(map(str, high))}" if high else "")
        parts.append(("MariaDB" if flavor == "mariadb" else "MySQL") + span)
    return ", ".join(parts)


def page(rule: Rule) -> str:
    needs = ", ".join(f"`{n}`" for n in rule.needs) or "—"
    return "\n".join([
        f"# {rule.id}: {rule.title}", "",
        "| group | severity | confidence | reads | applies to | bundle members |",
        "|---|---|---|---|---|---|",
        f"| {rule.group} | {rule.severity} | {rule.confidence} | "
        f"{'the sampled window' if rule.window else 'one reading'} | {applies(rule)} | {needs} |", "",
        rule.doc, "",
        "## Advice", "", rule.advice, "",
        "## Risk of the change", "", rule.risk, "",
        "## How to verify or roll back", "", rule.verify, "",
        f"*Generated from `report/rules/{rule.func.__module__.rsplit('.', 1)[-1]}.py`; "
        f"print it with `mydiag report --explain {rule.id}`.*", "",
    ])


def index(rules: List[Rule]) -> str:
    window = sum(1 for r in rules if r.window)
    lines = ["# Report rules", "",
             f"{len(rules)} rules, {window} of them read the sampled window (a rate, a trend or a "
             "persistence over the samples) rather than one reading. Each page is generated from "
             "the rule's declaration and docstring (`python scripts/rules_docs.py`).", "",
             "| rule | title | severity | reads |", "|---|---|---|---|"]
    for rule in rules:
        lines.append(f"| [{rule.id}]({rule.id}.md) | {rule.title} | {rule.severity} | "
                     f"{'window' if rule.window else 'reading'} |")
    return "\n".join(lines) + "\n"


def pages() -> Dict[str, str]:
    rules = catalog.rules()
    out = {f"{rule.id}.md": page(rule) for rule in rules}
    out["README.md"] = index(rules)
    return out
