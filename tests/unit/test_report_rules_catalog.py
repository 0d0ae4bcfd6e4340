"""The rule catalog as a whole: ids, documentation, counts, and docs/rules/ in step."""

from __future__ import annotations

from pathlib import Path

from report import catalog
from report.ruledocs import pages

ROOT = Path(__file__).resolve().parents[2]


def test_every_rule_is_documented_with_why_example_and_fix():
    for rule in catalog.rules():
        doc = rule.doc
        assert doc.splitlines()[0].strip(), rule.id
        for section in ("Why it matters", "Example", "Fix"):
            assert section in doc, f"{rule.id} lacks '{section}' in its docstring"
        assert rule.advice and rule.risk and rule.verify, rule.id


def test_rule_ids_are_grouped_by_prefix():
    prefixes = {}
    for rule in catalog.rules():
        prefixes.setdefault(rule.id.split("-")[0], set()).add(rule.group)
    assert all(len(groups) == 1 for groups in prefixes.values()), prefixes


def test_at_least_sixty_rules_and_twenty_five_read_the_window():
    rules = catalog.rules()
    assert len(rules) >= 60, len(rules)
    assert sum(1 for r in rules if r.window) >= 25


def test_docs_rules_are_generated_from_the_rules():
    folder = ROOT / "docs" / "rules"
    wanted = pages()
    have = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.md")}
    stale = sorted(set(have) ^ set(wanted)) + sorted(n for n in wanted if have.get(n) != wanted[n])
    assert not stale, f"docs/rules is out of date ({stale[:5]}): run python scripts/rules_docs.py"
