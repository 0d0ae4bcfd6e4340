"""The report's charts: inline SVG that parses as XML, says in words what it shows, survives
any data (none, one point, NaN, huge, negative, constant), escapes every label, uses no style
attributes, and the bundle's standard charts draw what the window holds and leave out the rest."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from report.charts import Chart, interval_rates, line_chart, short_number, standard_charts
from report.engine import evaluate
from report.finding import Evidence, Finding
from tests.reportkit import START, counters, make_bundle

SVG = "{http://www.w3.org/2000/svg}"
T0 = START.timestamp()


def parse(chart: Chart) -> ET.Element:
    return ET.fromstring(str(chart.svg))


def numbers_in(root: ET.Element) -> list:
    found = []
    for element in root.iter():
        for name in ("x", "y", "x1", "x2", "y1", "y2", "cx", "cy", "width", "height", "points"):
            if name in element.attrib:
                found += [float(n) for n in re.findall(r"-?[0-9.eE+-]+", element.attrib[name])]
    return found


def assert_well_formed(chart: Chart, width: int = 640, height: int = 220) -> ET.Element:
    root = parse(chart)
    assert root.tag == SVG + "svg"
    assert root.attrib["role"] == "img"
    title_id, desc_id = root.attrib["aria-labelledby"].split()
    assert root.find(f"{SVG}title").attrib["id"] == title_id
    assert root.find(f"{SVG}desc").attrib["id"] == desc_id
    for element in root.iter():
        assert "style" not in element.attrib, element.tag
        assert not any(a.startswith("on") for a in element.attrib), element.attrib
    for number in numbers_in(root):
        assert math.isfinite(number)
        assert -1 <= number <= max(width, height) + 1, number
    return root


def test_chart_has_title_desc_summary_and_numbers_table() -> None:
    chart = line_chart("Threads", [("running", [(T0, 1), (T0 + 10, 3), (T0 + 20, 2)]),
                                   ("connected", [(T0, 10), (T0 + 10, 10), (T0 + 20, 12)])], unit="threads")
    root = assert_well_formed(chart)
    desc = root.find(f"{SVG}desc").text
    assert "running: min 1, avg 2, max 3, last 2 threads" in desc
    assert "connected: min 10, avg 10.67, max 12, last 12 threads" in desc
    assert root.find(f"{SVG}title").text == "Threads (threads)"
    table = ET.fromstring(str(chart.table))
    assert [th.attrib["scope"] for th in table.iter("th")] == ["col"] * 6 + ["row", "row"]
    assert [td.text for td in table.iter("td")][:5] == ["1", "2", "3", "2", "3"]
    assert len(root.findall(f".//{SVG}polyline")) == 2
    assert not chart.empty


def test_series_differ_by_dash_and_marker_not_colour_alone() -> None:
    chart = line_chart("two", [("a", [(T0, 1), (T0 + 1, 2)]), ("b", [(T0, 2), (T0 + 1, 1)])])
    lines = parse(chart).findall(f".//{SVG}g[@class='chart-series']/{SVG}polyline")
    assert lines[0].attrib.get("stroke-dasharray") != lines[1].attrib.get("stroke-dasharray")
    legend = [t.text for t in parse(chart).iter(f"{SVG}text")]
    assert "a" in legend and "b" in legend


def test_no_data_all_none_nan_and_empty_render_no_data() -> None:
    for series in ([], [("x", [])], [("x", [(T0, None), (T0 + 1, None)])],
                   [("x", [(T0, float("nan")), (T0 + 1, float("inf"))])],
                   [("x", [(float("nan"), 1), (None, 2)])], [("x", None)], [("x", [("bad",), 7, None])],
                   [("x", [(T0, "not a number"), (T0 + 1, True)])]):
        chart = line_chart("Empty", series, unit="ops")
        root = assert_well_formed(chart)
        assert chart.empty
        assert "no data" in [t.text for t in root.iter(f"{SVG}text")]
        assert "no data" in root.find(f"{SVG}desc").text


def test_one_point_is_drawn_as_a_marker() -> None:
    chart = line_chart("One", [("x", [(T0, 5)])])
    root = assert_well_formed(chart)
    assert not chart.empty
    assert root.findall(f".//{SVG}polyline") == []
    assert len(root.findall(f".//{SVG}g[@class='chart-series']/{SVG}circle")) == 1


def test_constant_huge_and_negative_values_stay_inside_the_box() -> None:
    for points in ([(T0, 7), (T0 + 1, 7), (T0 + 2, 7)], [(T0, 0), (T0 + 1, 0)],
                   [(T0, -5), (T0 + 1, -5)], [(T0, -1e308), (T0 + 1, 1e308), (T0 + 2, 3)],
                   [(T0, 1e300), (T0 + 1, 1e300)], [(T0, -3), (T0 + 1, 4), (T0 + 2, -10)],
                   [(T0, 1e-300), (T0 + 1, 2e-300)], [(-1e308, 1), (1e308, 2)], [(T0, 1), (T0, 2)]):
        chart = line_chart("Odd", [("x", points)], unit="u")
        assert_well_formed(chart)
        assert not chart.empty


def test_none_breaks_the_line() -> None:
    chart = line_chart("Gaps", [("x", [(T0, 1), (T0 + 1, 2), (T0 + 2, None), (T0 + 3, 4), (T0 + 4, 5)])])
    assert len(parse(chart).findall(f".//{SVG}polyline")) == 2


def test_labels_titles_units_shades_and_events_are_escaped() -> None:
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    chart = line_chart(evil, [(evil, [(T0, 1), (T0 + 10, 2)])], unit=evil,
                       shade=[(T0, T0 + 5, evil)], events=[(T0 + 5, evil)])
    root = assert_well_formed(chart)
    tags = {element.tag for element in root.iter()}
    assert SVG + "script" not in tags and SVG + "img" not in tags and "script" not in tags
    assert evil in root.find(f"{SVG}desc").text
    assert evil + " (" + evil + ")" == root.find(f"{SVG}title").text
    table = ET.fromstring(str(chart.table))
    assert "script" not in {e.tag for e in table.iter()}
    assert "<script>" not in str(chart.svg) and "<script>" not in str(chart.table)


def test_shades_and_events_inside_the_range_are_drawn_others_dropped() -> None:
    chart = line_chart("Marks", [("x", [(T0, 1), (T0 + 60, 2)])],
                       shade=[(T0 + 10, T0 + 20, "CONN-01"), (T0 + 500, T0 + 600, "far"), (None, T0, "bad")],
                       events=[(T0 + 30, "restart"), (T0 - 100, "before"), (float("nan"), "nan")])
    root = assert_well_formed(chart)
    shades = root.findall(f".//{SVG}g[@class='chart-shade']")
    events = root.findall(f".//{SVG}g[@class='chart-event']")
    assert [g.find(f"{SVG}title").text for g in shades] == ["CONN-01"]
    assert len(events) == 1 and events[0].find(f"{SVG}title").text.startswith("restart at ")


def test_compact_chart_has_no_axes_and_fits() -> None:
    chart = line_chart("mini", [("v", [(T0, 1), (T0 + 1, 3), (T0 + 2, 2)])], width=260, height=56,
                       compact=True)
    assert_well_formed(chart, 260, 56)


def test_short_number() -> None:
    assert [short_number(v) for v in (0, 12, 1234, 2.5e6, -3e9, 0.004, None, 1.5, 1e20)] == \
        ["0", "12", "1.23k", "2.5M", "-3G", "0.004", "–", "1.5", "1e+20"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.floats(allow_nan=True), st.none(), st.integers()),
                          st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none(),
                                    st.integers(min_value=-10**30, max_value=10**30))), max_size=30),
       st.text(max_size=20))
def test_any_series_renders_valid_svg(points: list, label: str) -> None:
    chart = line_chart("any", [(label, points)], unit="u")
    assert_well_formed(chart)


# -- per-interval rates and the standard charts ---------------------------------------------------
def test_interval_rates_leave_resets_and_restarts_as_gaps() -> None:
    bundle = make_bundle(status=[{"Questions": 0, "Uptime": 100}, {"Questions": 100, "Uptime": 110},
                                 {"Questions": 50, "Uptime": 120}, {"Questions": 250, "Uptime": 130},
                                 {"Questions": 300, "Uptime": 5}, {"Questions": 400, "Uptime": 15}])
    rates = [v for _t, v in interval_rates(bundle.window, "Questions")]
    assert rates == [10.0, None, 20.0, None, 10.0]


def _os_rows(samples: int = 6) -> dict:
    cpu = [{"window_seconds": None if i == 0 else 10, "total": {"busy": 90 if i == 0 else 20 + i,
            "iowait": 1.5, "steal": 0.0}} for i in range(samples)]
    disks = [{"window_seconds": None if i == 0 else 10,
              "disks": {"vda": {"reads_per_s": 10 + i, "writes_per_s": 5, "await_ms": 1.5 + i},
                        "zram0": {"reads_per_s": 0, "writes_per_s": 0, "await_ms": 0}}}
             for i in range(samples)]
    vm = [{"window_seconds": None if i == 0 else 10, "rates": {"pswpin_per_s": 0, "pswpout_per_s": 3 * i},
           "counters": {}} for i in range(samples)]
    lag = [{"channels": [{"Connection_name": "", "Seconds_Behind_Master": 5 * i}]} for i in range(samples)]
    return {"os/proc_stat.jsonl": cpu, "os/diskstats.jsonl": disks, "os/vmstat.jsonl": vm,
            "mysql/replication/replica_status.jsonl": lag}


def test_standard_charts_draw_each_source_of_the_window() -> None:
    status = counters({"Questions": 1000, "Com_select": 500, "Innodb_deadlocks": 0},
                      {"Questions": 50, "Com_select": 30},
                      gauges={"Threads_running": 3, "Threads_connected": 20, "Innodb_checkpoint_age": 5 << 20,
                              "Innodb_buffer_pool_pages_dirty": 800})
    status[3]["Innodb_deadlocks"] = 2
    status[4]["Innodb_deadlocks"] = 2
    status[5]["Innodb_deadlocks"] = 2
    oom = {"events": [{"time": "2026-12-02T10:00:25Z", "process": "mariadbd", "pid": 7}, {"time": "junk"}]}
    bundle = make_bundle(status=status, jsonl=_os_rows(), files={"os/oom_kills.json": oom})
    report = evaluate(bundle, [])
    charts = standard_charts(bundle, report)
    titles = [c.title for c in charts]
    assert titles == ["Statements per second", "Threads", "InnoDB checkpoint age", "InnoDB dirty pages",
                      "CPU",
                      "Disk I/O: vda", "Disk latency", "Swap", "Replica lag"]
    by_title = {c.title: c for c in charts}
    for chart in charts:
        assert_well_formed(chart)
    statements = by_title["Statements per second"]
    assert [s.label for s in statements.stats] == ["Questions", "Com_select"]
    assert statements.stats[0].avg == 50.0 and statements.stats[0].n == 5
    # The first OS row's rates are since boot (window_seconds null): not part of the window.
    assert by_title["CPU"].stats[0].max == 25 and by_title["CPU"].stats[0].n == 5
    assert [s.label for s in by_title["Disk latency"].stats] == ["vda"]
    assert by_title["Replica lag"].stats[0].last == 25
    marks = parse(statements).findall(f".//{SVG}g[@class='chart-event']")
    events = [g.find(f"{SVG}title").text for g in marks]
    assert any(e.startswith("deadlock at 2026-12-02 10:00:30") for e in events)
    assert any(e.startswith("OOM kill (mariadbd) at 2026-12-02 10:00:25") for e in events)


def test_a_restart_is_marked_and_its_interval_is_a_gap() -> None:
    status = [{"Questions": 100 * i, "Uptime": 1000 + 10 * i} for i in range(3)]
    status += [{"Questions": 20 + 100 * i, "Uptime": 4 + 10 * i} for i in range(3)]
    bundle = make_bundle(status=status)
    chart = standard_charts(bundle, evaluate(bundle, []))[0]
    root = parse(chart)
    events = [g.find(f"{SVG}title").text for g in root.findall(f".//{SVG}g[@class='chart-event']")]
    assert events == ["restart at 2026-12-02 10:00:26"]
    assert len(root.findall(f".//{SVG}polyline")) == 2


def test_absent_data_leaves_the_chart_out() -> None:
    bundle = make_bundle(status=counters({"Questions": 10}, {"Questions": 5}))
    assert [c.title for c in standard_charts(bundle, evaluate(bundle, []))] == ["Statements per second"]
    one = make_bundle(status=[{"Questions": 1, "Threads_running": 2}])
    assert [c.title for c in standard_charts(one, evaluate(one, []))] == ["Threads"]
    assert standard_charts(make_bundle(), evaluate(make_bundle(), [])) == []


def test_malformed_members_never_crash() -> None:
    rows = {"os/proc_stat.jsonl": [{"total": "busy"}, {"total": {"busy": "lots"}}, {"total": []}],
            "os/diskstats.jsonl": [{"disks": ["vda"]}, {"disks": {"vda": "x"}},
                                   {"disks": {"<b>": {"reads_per_s": 1e308}}}],
            "os/vmstat.jsonl": [{"rates": [], "counters": "x"}],
            "mysql/replication/replica_status.jsonl": [{"channels": "x"}, {"channels": [1, None]}]}
    bundle = make_bundle(status=[{"Questions": "x"}, {"Questions": "NaN"}, {"Questions": "1e999"}],
                         jsonl=rows, files={"os/oom_kills.json": {"events": "many"}})
    for chart in standard_charts(bundle, evaluate(bundle, [])):
        assert_well_formed(chart)


def test_window_findings_shade_the_charts_of_their_member() -> None:
    bundle = make_bundle(status=counters({"Threads_created": 0}, {"Threads_created": 5},
                                         gauges={"Threads_running": 2}), jsonl=_os_rows())
    report = evaluate(bundle, [])
    samples = bundle.window.evidence_samples("Threads_created")[1:4]
    report.findings.append(Finding("CONN-01", "connections", "t", "warning", "high", "s",
                                   [Evidence("mysql/global_status.jsonl", {}, samples=samples)],
                                   "", "", "", True))
    report.findings.append(Finding("SNAP-01", "x", "t", "warning", "high", "s",
                                   [Evidence("os/proc_stat.jsonl", {}, samples=samples)], "", "", "", False))
    charts = {c.title: c for c in standard_charts(bundle, report)}
    shaded = parse(charts["Threads"]).findall(f".//{SVG}g[@class='chart-shade']")
    assert [g.find(f"{SVG}title").text for g in shaded] == ["CONN-01"]
    rect = shaded[0].find(f"{SVG}rect")
    assert float(rect.attrib["width"]) > 100  # 20 of the window's 50 seconds
    assert parse(charts["CPU"]).findall(f".//{SVG}g[@class='chart-shade']") == []
