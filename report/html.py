"""The report and the diff as HTML: one set of Jinja2 templates (report/templates/) for
`mydiag report --html` (a standalone document that works offline, its CSS inlined) and the
support server's pages (the body fragment; the page links report/static/report.css itself).

Everything from a bundle is customer input and hostile: autoescaping is on, no value from a
bundle is ever marked safe, and the only Markup that reaches a template is our own (the CSS
file, and the charts, whose every label `report.charts` escapes). No inline style attributes
and no script: the pages run under a strict Content-Security-Policy.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from jinja2 import ChainableUndefined, Environment, FileSystemLoader
from markupsafe import Markup

from report.charts import Chart, line_chart, standard_charts, table_number, xml_text
from report.engine import HEADLINE_SEVERITY, Report
from report.finding import SEVERITIES, Finding
from report.model import Bundle, to_number
from report.window import parse_ts

_HERE = Path(__file__).resolve().parent
TEMPLATES = _HERE / "templates"
STYLESHEET = _HERE / "static" / "report.css"

#: Digest columns in the order an engineer reads them; others follow, up to `_MAX_COLUMNS`.
_DIGEST_COLUMNS = ("digest_text", "query", "schema_name", "calls", "count_star", "total_seconds",
                   "avg_seconds", "max_seconds", "lock_seconds", "rows_examined", "rows_sent",
                   "tmp_disk_tables", "no_index_used", "full_joins", "digest")
_MAX_COLUMNS = 9
_MAX_TEXT = 4000


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=ChainableUndefined,
                      trim_blocks=True, lstrip_blocks=True, finalize=_printable)
    env.filters["plain"] = plain
    env.filters["anchor"] = anchor
    env.filters["figure"] = figure
    env.filters["change"] = change
    return env


@lru_cache(maxsize=1)
def stylesheet() -> str:
    return STYLESHEET.read_text(encoding="utf-8")


def _printable(value: Any) -> Any:
    """Every printed value: text a UTF-8 page can hold (no NUL, controls or lone surrogates);
    our own Markup (the charts, the CSS) passes as it is, everything else is escaped later."""
    if isinstance(value, Markup) or value is None:
        return value
    return xml_text(value, 1 << 20)


# -- filters (all return plain str: Jinja escapes them) -----------------------------------------
def plain(value: Any, limit: int = _MAX_TEXT) -> str:
    """Any value from a bundle as display text: scalars as they are, lists and dicts as JSON."""
    if value is None:
        return "–"
    if isinstance(value, float):
        text = table_number(value) if value == value and abs(value) != float("inf") else str(value)
    elif isinstance(value, (dict, list, tuple)):
        try:
            text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
        except (TypeError, ValueError):
            text = str(value)
    else:
        text = str(value)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit:,} more characters)"


def anchor(value: Any) -> str:
    """An id fragment made only of safe characters (rule ids are ours, but stay careful)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(value))[:60].strip("-") or "x"


def figure(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return "–"
    if isinstance(value, (int, float)):
        return table_number(float(value))
    return plain(value)


def change(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    return f"{value:+.0%}"


# -- view models -----------------------------------------------------------------------------
def _digest_columns(digests: Sequence[Any]) -> List[str]:
    keys: List[str] = []
    for row in digests:
        if isinstance(row, dict):
            keys.extend(str(k) for k in row if str(k) not in keys)
    ordered = [k for k in _DIGEST_COLUMNS if k in keys] + [k for k in keys if k not in _DIGEST_COLUMNS]
    return ordered[:_MAX_COLUMNS]


def _evidence_view(finding_index: int, index: int, evidence: Any) -> Dict[str, Any]:
    values = getattr(evidence, "values", None)
    digests = [d for d in (getattr(evidence, "digests", None) or []) if isinstance(d, dict)][:50]
    samples = [s for s in (getattr(evidence, "samples", None) or []) if isinstance(s, (list, tuple))][:200]
    points = []
    for sample in samples:
        moment = parse_ts(sample[0]) if sample else None
        value = sample[1] if len(sample) > 1 else None
        points.append((moment, None if isinstance(value, bool) else to_number(value)))
    numeric = [p for p in points if p[0] is not None and p[1] is not None]
    mini: Optional[Chart] = None
    if len(numeric) >= 2:
        mini = line_chart(f"Samples of {getattr(evidence, 'member', '')}", [("value", numeric)],
                          width=260, height=56, compact=True, chart_id=f"ev-{finding_index}-{index}")
    return {
        "member": getattr(evidence, "member", ""), "note": getattr(evidence, "note", ""),
        "values": list(values.items())[:100] if isinstance(values, dict) else [],
        "digests": digests, "columns": _digest_columns(digests),
        "samples": [[s[0] if s else None, s[1] if len(s) > 1 else None] for s in samples], "mini": mini,
    }


def _finding_view(index: int, finding: Finding) -> Dict[str, Any]:
    evidence = list(getattr(finding, "evidence", None) or [])[:20]
    return {"f": finding, "evidence": [_evidence_view(index, i, e) for i, e in enumerate(evidence)]}


def _groups(findings: Sequence[Finding], offset: int = 0) -> List[Dict[str, Any]]:
    groups = []
    order = list(reversed(SEVERITIES))
    others = [f for f in findings if f.severity not in SEVERITIES]
    for severity in order + (["other"] if others else []):
        chosen = others if severity == "other" else [f for f in findings if f.severity == severity]
        if chosen:
            groups.append({"severity": severity, "findings": chosen})
    views: Dict[int, Dict[str, Any]] = {}
    for position, finding in enumerate(findings):
        views[id(finding)] = _finding_view(offset + position, finding)
    for group in groups:
        group["views"] = [views[id(f)] for f in group["findings"]]
    return groups


def render_report(bundle: Bundle, report: Report, *, standalone: bool = True,
                  charts: Optional[Sequence[Chart]] = None,
                  upgrade: Optional[Sequence[Finding]] = None) -> str:
    """The report as a standalone HTML5 document, or (standalone=False) the body fragment."""
    if charts is None:
        charts = standard_charts(bundle, report)
    counts: Dict[str, int] = {}
    for outcome in report.outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    not_judged = [o for o in report.outcomes if o.status in ("insufficient", "error")]
    upgrade_list = list(upgrade) if upgrade is not None else None
    template = environment().get_template("report.html")
    return template.render(
        standalone=standalone, css=Markup(stylesheet()) if standalone else "",
        page_title=f"mydiag report: {report.host or bundle.host or 'unknown host'}",
        report=report, bundle_label=bundle.label, window=report.window or {}, meta=report.meta or {},
        headline=_headline(report.findings), groups=_groups(report.findings), charts=list(charts),
        not_judged=not_judged, outcome_counts=counts, findings_count=len(report.findings),
        upgrade=_groups(upgrade_list, offset=len(report.findings)) if upgrade_list is not None else None,
        upgrade_count=len(upgrade_list or []), few_samples=_few_samples(report.window),
    )


def _headline(findings: Sequence[Finding], count: int = 5) -> List[Finding]:
    """Report.headline, tolerant of a severity outside SEVERITIES (a report read back from JSON)."""
    floor = SEVERITIES.index(HEADLINE_SEVERITY)
    worst = [f for f in findings if f.severity in SEVERITIES and SEVERITIES.index(f.severity) >= floor]
    return sorted(worst, key=lambda f: -SEVERITIES.index(f.severity))[:count]


def _few_samples(window: Any) -> bool:
    samples = window.get("samples") if isinstance(window, dict) else None
    return isinstance(samples, int) and not isinstance(samples, bool) and samples < 2


def render_diff(diff: Dict[str, Any], *, standalone: bool = True) -> str:
    """A diff (report.diff.diff) as a standalone HTML5 document or the body fragment."""
    template = environment().get_template("diff.html")
    data = diff if isinstance(diff, dict) else {}
    before = data.get("before") if isinstance(data.get("before"), dict) else {}
    after = data.get("after") if isinstance(data.get("after"), dict) else {}
    findings = data.get("findings") if isinstance(data.get("findings"), dict) else {}
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    files = config.get("option_files") if isinstance(config.get("option_files"), dict) else {}
    return template.render(
        standalone=standalone, css=Markup(stylesheet()) if standalone else "",
        page_title=f"mydiag diff: {before.get('host') or 'unknown host'}",
        before=before, after=after, same_host=bool(data.get("same_host")),
        warnings=_rows(data.get("warnings")), variables=_rows(data.get("variables")),
        files=files, effective=_rows(config.get("effective")), status=_rows(data.get("status")),
        os_rows=_rows(data.get("os")), appeared=_rows(findings.get("appeared")),
        gone=_rows(findings.get("gone")), changed=_rows(findings.get("changed")),
        unchanged=_rows(findings.get("unchanged")),
    )


def _rows(value: Any) -> List[Any]:
    return list(value) if isinstance(value, list) else []
