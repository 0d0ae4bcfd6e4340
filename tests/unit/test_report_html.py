"""The report and the diff as HTML: a complete offline document or the body fragment, every
part of the report present, accessible structure, and a hostile bundle rendered as text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Dict, List, Optional, Tuple

import report.catalog  # noqa: F401 - registers the rules for the full evaluation below
from report.diff import diff
from report.engine import Report, evaluate
from report.finding import Evidence, Finding, Outcome
from report.html import render_diff, render_report
from report.model import Bundle
from tests.reportkit import counters, make_bundle

EVIL = '"><script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:alert(3)">x</a>'


class Page(HTMLParser):
    """Every element with its attributes, the headings' levels and the text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: List[Tuple[str, Dict[str, Optional[str]]]] = []
        self.text: List[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def tags(self, name: str) -> List[Dict[str, Optional[str]]]:
        return [attrs for tag, attrs in self.elements if tag == name]

    @property
    def headings(self) -> List[int]:
        return [int(tag[1]) for tag, _a in self.elements if re.fullmatch(r"h[1-6]", tag)]


def assert_inert(html: str) -> Page:
    """No script, no img, no event handler, no javascript: URL, no style attribute."""
    page = Page(html)
    for tag, attrs in page.elements:
        assert tag not in ("script", "img", "iframe", "object", "embed", "link", "meta") or \
            (tag == "meta" and set(attrs) <= {"charset", "name", "content"}), (tag, attrs)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert name != "style", tag
            if name in ("href", "src", "xlink:href", "action"):
                assert (value or "").startswith("#"), (tag, name, value)
    assert "<script" not in html.lower() and "<img" not in html.lower()
    # onerror= may only appear inside escaped text, i.e. right after the escaped "<img src=x ".
    assert html.count("onerror=") == html.count("&lt;img src=x onerror=")
    return page


def assert_svgs_are_xml(html: str) -> int:
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.S)
    for svg in svgs:
        ET.fromstring(svg)
    return len(svgs)


def assert_accessible(page: Page) -> None:
    levels = page.headings
    assert levels[0] == 1 and levels.count(1) == 1
    for before, after in zip(levels, levels[1:]):
        assert after <= before + 1, levels  # no skipped level
    for attrs in page.tags("th"):
        assert attrs.get("scope") in ("col", "row"), attrs
    ids = [attrs["id"] for _t, attrs in page.elements if attrs.get("id")]
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    for attrs in page.tags("svg"):
        assert attrs["role"] == "img" and all(i in ids for i in attrs["aria-labelledby"].split())


def finding(rule: str, severity: str, evidence: List[Evidence], summary: str = "summary",
            window: bool = False, text: str = "") -> Finding:
    return Finding(rule, "group" + text, "Title of " + rule + text, severity, "high", summary + text,
                   evidence, "advice" + text, "risk" + text, "verify" + text, window)


def sample_report() -> Tuple[Bundle, Report]:
    bundle = make_bundle(status=counters({"Questions": 0, "Threads_created": 0},
                                         {"Questions": 40, "Threads_created": 3},
                                         gauges={"Threads_running": 4, "Threads_connected": 30}))
    report = evaluate(bundle, [])
    samples = bundle.window.evidence_samples("Threads_created")
    threads = Evidence("mysql/global_status.jsonl", {"Threads_created_per_s": 3.0, "miss_ratio": 0.5},
                       samples=samples)
    digests = Evidence("mysql/performance_schema/statement_digests.json", {"top": 1},
                       digests=[{"digest_text": "SELECT * FROM `t` WHERE `a` = ?", "calls": 12,
                                 "total_seconds": 3.5}], note="during the window")
    report.findings += [
        finding("CONN-01", "warning", [threads], "3.0 new threads per second", window=True),
        finding("WORK-01", "critical", [digests]),
        finding("SEC-09", "info", []),
    ]
    missing = "mysql/replication/replica_status.json is not in the bundle"
    report.outcomes += [Outcome("REPL-01", "insufficient", missing),
                        Outcome("MEM-07", "error", "TypeError in MEM-07"), Outcome("X-01", "passed")]
    return bundle, report


def test_standalone_report_is_a_complete_offline_document() -> None:
    bundle, report = sample_report()
    html = render_report(bundle, report)
    assert html.lstrip().startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    page = assert_inert(html)
    assert page.tags("html")[0]["lang"] == "en"
    assert len(page.tags("style")) == 1 and "@media print" in html
    assert page.tags("main") and page.tags("footer") and page.tags("nav")
    assert_accessible(page)
    assert assert_svgs_are_xml(html) >= 3  # the standard charts and the evidence's mini chart


def test_fragment_is_the_body_only() -> None:
    bundle, report = sample_report()
    html = render_report(bundle, report, standalone=False)
    page = assert_inert(html)
    for tag in ("html", "head", "body", "style", "main"):
        assert not page.tags(tag), tag
    assert html.lstrip().startswith('<div class="mydiag-report">')
    assert "CONN-01" in html
    assert_accessible(page)


def test_report_shows_header_findings_evidence_charts_and_what_was_not_judged() -> None:
    bundle, report = sample_report()
    page = Page(render_report(bundle, report, standalone=False))
    text = " ".join(" ".join(page.text).split())
    assert "Report for db1" in text and "MariaDB 10.11.6" in text
    assert "from 2026-12-02T10:00:00.000Z (UTC), 50 s, 6 samples" in text
    # severity grouping, worst first, the severity written as a word
    assert text.index("Critical (1)") < text.index("Warning (1)") < text.index("Info (1)")
    assert "Severity: critical · Confidence: high" in text
    assert "Threads_created_per_s 3" in text and "miss_ratio 0.5" in text
    assert "SELECT * FROM `t` WHERE `a` = ? 12 3.50" in text and "during the window" in text
    assert "6 samples" in text and "2026-12-02T10:00:50.000Z" in text
    assert "Advice advice Risk risk Verify or roll back verify" in text
    headline = [a["href"] for a in page.tags("a") if (a.get("href") or "").startswith("#finding-")]
    assert headline == ["#finding-WORK-01", "#finding-CONN-01"]  # warning or worse only
    assert "Statements per second" in text and "Threads" in text
    assert "REPL-01 insufficient data mysql/replication/replica_status.json is not in the bundle" in text
    assert "MEM-07 error TypeError in MEM-07" in text and "X-01" not in text
    assert "Upgrade checks" not in text


def test_restart_warning_and_upgrade_findings() -> None:
    bundle = make_bundle(status=[{"Questions": 10, "Uptime": 900}, {"Questions": 1, "Uptime": 2}])
    report = evaluate(bundle, [])
    upgrade = [finding("UPG-03", "error", [Evidence("mysql/accounts.json", {"accounts": ["app@%"]})])]
    text = " ".join(" ".join(Page(render_report(bundle, report, upgrade=upgrade)).text).split())
    assert "Warning: the server restarted during the window." in text
    assert "Upgrade checks (1)" in text and "UPG-03 Title of UPG-03" in text
    empty = " ".join(Page(render_report(bundle, report, upgrade=[])).text)
    assert "No upgrade check found a problem." in empty


def test_a_bundle_without_samples_renders() -> None:
    bundle = make_bundle()
    html = render_report(bundle, evaluate(bundle, []))
    page = assert_inert(html)
    text = " ".join(page.text)
    assert "no status samples" in text and "fewer than two status samples" in text
    assert not page.tags("svg")


def hostile_bundle() -> Bundle:
    status = counters({"Questions": 0}, {"Questions": 10}, gauges={"Threads_running": 1})
    rows = {"os/diskstats.jsonl": [{"disks": {EVIL: {"reads_per_s": 3, "writes_per_s": 1, "await_ms": 2}}}
                                   for _ in range(6)],
            "mysql/replication/replica_status.jsonl": [{"channels": [{"Connection_name": EVIL,
                                                                      "Seconds_Behind_Master": i}]}
                                                       for i in range(6)],
            "mysql/processlist.jsonl": [{"rows": [{"Info": EVIL, "User": EVIL, "Host": EVIL}]}]}
    bundle = make_bundle(variables={"version": "10.11.6-MariaDB" + EVIL, "sql_mode": EVIL,
                                    "init_connect": EVIL + "\x00\ud800", "max_connections": EVIL,
                                    "datadir": EVIL},
                         status=status, jsonl=rows,
                         files={"mysql/processlist.json": [{"Info": EVIL, "User": EVIL, "db": EVIL}],
                                "mysql/performance_schema/statement_digests.json": [
                                    {"digest_text": EVIL, "schema_name": EVIL, "calls": EVIL,
                                     "digest": EVIL}],
                                "mysql/accounts.json": [{"user": EVIL, "host": EVIL, "plugin": EVIL}],
                                "os/oom_kills.json": {"events": [{"time": "2026-12-02T10:00:20Z",
                                                                  "process": EVIL}]}},
                         text={"logs/error.log": f"2026-12-02 10:00:00 0 [ERROR] {EVIL}\n\x00 {EVIL}\n"})
    bundle.manifest["host"] = EVIL
    bundle.manifest["profile"] = EVIL
    bundle.manifest["tool_version"] = EVIL
    return bundle


def hostile_report(bundle: Bundle) -> Report:
    report = evaluate(bundle)  # every rule of the catalog, on hostile members
    samples = [[EVIL, 1], ["2026-12-02T10:00:10Z", EVIL], ["2026-12-02T10:00:20Z", 3], [EVIL]]
    evidence = [Evidence(EVIL, {EVIL: EVIL, "nested": {EVIL: [EVIL]}}, samples=samples,
                         digests=[{EVIL: EVIL, "digest_text": EVIL, "calls": EVIL}], note=EVIL)]
    report.findings += [finding(EVIL, "warning", evidence, summary=EVIL, window=True, text=EVIL),
                        finding("X-02", EVIL, evidence, summary=EVIL, text=EVIL)]
    report.outcomes.append(Outcome(EVIL, "error", EVIL))
    report.host = EVIL
    report.server = EVIL
    report.window["start"] = EVIL
    return report


def test_markup_in_every_field_renders_as_text() -> None:
    bundle = hostile_bundle()
    report = hostile_report(bundle)
    assert not [o for o in report.outcomes if o.status == "error" and o.rule != EVIL and "Error" in o.reason
                and "in " + o.rule not in o.reason]
    upgrade = [finding("UPG-01", "error", report.findings[-1].evidence, summary=EVIL, text=EVIL)]
    for standalone in (True, False):
        html = render_report(bundle, report, standalone=standalone, upgrade=upgrade)
        page = assert_inert(html)
        assert_svgs_are_xml(html)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert EVIL in "".join(page.text)  # shown, as text
        assert "\x00" not in html and "\ud800" not in html
        html.encode("utf-8")
    texts = "".join(Page(render_report(bundle, report)).text)
    assert texts.count(EVIL) >= 20


def test_hostile_diff_renders_as_text() -> None:
    a, b = make_bundle(), hostile_bundle()
    result = diff(a, b, evaluate(a, []), hostile_report(b))
    result["warnings"].append(EVIL)
    for standalone in (True, False):
        html = render_diff(result, standalone=standalone)
        page = assert_inert(html)
        assert EVIL in "".join(page.text)
        assert "&lt;script&gt;" in html


def test_diff_page_shows_changes_side_by_side() -> None:
    a = make_bundle(status=counters({"Questions": 0}, {"Questions": 100}))
    b = make_bundle(variables={"max_connections": 500}, status=[{"Questions": 3}])
    report_a, report_b = evaluate(a, []), evaluate(b, [])
    report_b.findings.append(finding("NEW-01", "error", []))
    html = render_diff(diff(a, b, report_a, report_b))
    page = assert_inert(html)
    assert_accessible(page)
    text = " ".join(" ".join(page.text).split())
    assert "Diff for db1" in text
    assert "max_connections 151 500" in text
    assert "Questions per second 100 insufficient –" in text
    assert "Appeared (1)" in text and "NEW-01 Title of NEW-01" in text
    fragment = render_diff(diff(a, b, report_a, report_b), standalone=False)
    assert not Page(fragment).tags("style") and not Page(fragment).tags("html")


def test_render_diff_tolerates_a_malformed_dict() -> None:
    for value in ({}, {"variables": "x", "status": [1, None, "x"], "findings": [], "before": "x"},
                  {"config": {"option_files": {"added": [EVIL]}, "effective": [{"before": EVIL}]}}):
        assert_inert(render_diff(value))


def test_a_short_real_shaped_window_with_every_rule() -> None:
    """The shapes a real collection writes (3 samples a second apart), with the whole catalog."""
    proc = [{"window_seconds": None if i == 0 else 1.0, "cpus": [],
             "total": {"busy": 5.0 + i, "iowait": 0.2, "steal": 0.0}} for i in range(3)]
    bundle = make_bundle(status=counters({"Questions": 100, "Com_select": 50, "Innodb_checkpoint_age": 2391},
                                         {"Questions": 15, "Com_select": 11}, samples=3, interval=1),
                         jsonl={"os/proc_stat.jsonl": proc}, interval=1)
    html = render_report(bundle, evaluate(bundle))
    assert_accessible(assert_inert(html))
    assert "CPU" in html and "Statements per second" in html
