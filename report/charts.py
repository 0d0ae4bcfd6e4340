"""Line charts as inline SVG, made here: no JavaScript, no CDN, printable, accessible.

Every chart is an `<svg role="img">` whose `<title>` and `<desc>` say in words what it shows
(min/avg/max/last per series, with the unit), and carries a small table of the same numbers
to print beside it. Colour is never the only signal: series also differ by dash pattern and
marker shape, and the legend names them. Labels come from the bundle (disk names, replica
channels, rule ids), so every piece of text is escaped by `Markup.format`; nothing is built
by concatenating raw text. No `style` attributes: pages run under a CSP without inline styles.

`standard_charts(bundle, report)` draws what a bundle holds over its window (status rates,
threads, InnoDB checkpoint age and dirty pages, CPU, disks, swap, replica lag), with restarts,
deadlocks and OOM kills marked and the spans of the window findings' evidence shaded. A chart
whose data is absent is left out.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from markupsafe import Markup

from report.model import Bundle
from report.window import Window, parse_ts

Point = Tuple[float, Optional[float]]
Series = Tuple[str, Sequence[Tuple[Any, Any]]]

#: Values beyond this are clamped so that spans and ticks stay finite.
_LIMIT = 1e300
#: Colours with at least 3:1 contrast against white (WCAG non-text contrast), then dashes and
#: markers so that a series never depends on its colour alone.
_COLOURS = ("#1f5fa8", "#b3401c", "#2b7a2b", "#7a3d9a", "#8a6100", "#0f7373", "#a3245c", "#4d4d4d")
_DASHES = ("", "6 3", "2 3", "8 3 2 3", "4 4", "1 2", "10 4", "3 6")
_MARKERS = ("circle", "square", "triangle", "diamond")
_MAX_SERIES = 8
_MAX_POINTS = 2000


@dataclass
class SeriesStats:
    label: str
    min: Optional[float]
    avg: Optional[float]
    max: Optional[float]
    last: Optional[float]
    n: int


@dataclass
class Chart:
    """One chart: its SVG, the text summary read out by screen readers, the numbers' table."""

    id: str
    title: str
    unit: str
    svg: Markup
    table: Markup
    summary: str
    stats: List[SeriesStats] = field(default_factory=list)
    source: str = ""
    empty: bool = False

    def __html__(self) -> str:
        return str(Markup('<figure class="chart">{}{}</figure>').format(self.svg, self.table))


# -- numbers --------------------------------------------------------------------------------
def _finite(value: Any) -> Optional[float]:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(number):
        return None
    return max(-_LIMIT, min(_LIMIT, number))


#: Characters XML 1.0 forbids (C0 controls but tab/newline/return, lone surrogates, U+FFFE/F):
#: a bundle may carry them, and the SVG must still parse.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: Any, limit: int = 200) -> str:
    """Text that XML (and a UTF-8 encoder) accepts, cut to `limit` characters."""
    return _NOT_XML.sub("\ufffd", str(value))[:limit]


def short_number(value: Optional[float]) -> str:
    """1234567 → "1.23M"; for axis labels and summaries."""
    if value is None:
        return "–"
    size = abs(value)
    if size >= 1e15:
        return f"{value:.3g}"
    for limit, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= limit:
            return f"{value / limit:.3g}{suffix}"
    if size >= 100 or value == int(value):
        return f"{value:.0f}"
    if size >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def table_number(value: Optional[float]) -> str:
    if value is None:
        return "–"
    if abs(value) >= 1e15:
        return f"{value:.4g}"
    if value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.2f}" if abs(value) >= 1 else f"{value:.3g}"


def _stats(label: str, points: Sequence[Point]) -> SeriesStats:
    values = [v for _t, v in points if v is not None]
    if not values:
        return SeriesStats(label, None, None, None, None, 0)
    # The mean of clamped values cannot overflow when summed at a scale.
    scale = max(1.0, max(abs(v) for v in values))
    avg = sum(v / scale for v in values) / len(values) * scale
    return SeriesStats(label, min(values), avg, max(values), values[-1], len(values))


def _clean(points: Sequence[Tuple[Any, Any]]) -> List[Point]:
    cleaned: List[Point] = []
    for item in list(points)[:_MAX_POINTS * 4]:
        try:
            moment, value = item
        except (TypeError, ValueError):
            continue
        t = _finite(moment)
        if t is None:
            continue
        cleaned.append((t, _finite(value)))
    cleaned.sort(key=lambda p: p[0])
    if len(cleaned) > _MAX_POINTS:
        step = math.ceil(len(cleaned) / _MAX_POINTS)
        cleaned = cleaned[::step]
    return cleaned


def _nice_step(span: float, count: int = 4) -> float:
    raw = span / max(1, count)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _y_range(values: List[float]) -> Tuple[float, float]:
    low, high = min(values), max(values)
    if low >= 0 and high > 0:
        low = 0.0  # rates and gauges read best from zero
    if high == low:
        pad = abs(high) * 0.1
        low, high = (0.0, 1.0) if high == 0 else (low - pad, high + pad)
    step = _nice_step(high - low)
    low = math.floor(low / step) * step
    high = math.ceil(high / step) * step
    if high == low:
        high = low + step
    return low, high


def _slug(text: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "chart"
    return f"chart-{base}-{hashlib.sha1(text.encode('utf-8', 'replace')).hexdigest()[:6]}"


def _clock(moment: float, with_date: bool = False) -> str:
    try:
        stamp = datetime.fromtimestamp(moment, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return "?"
    return stamp.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


# -- the chart ------------------------------------------------------------------------------
def line_chart(title: str, series: Sequence[Series], *, unit: str = "",
               shade: Iterable[Tuple[Any, Any, str]] = (), events: Iterable[Tuple[Any, str]] = (),
               width: int = 640, height: int = 220,
               chart_id: Optional[str] = None, source: str = "", compact: bool = False) -> Chart:
    """A line chart of `series` ([(label, [(posix_t, value or None), …]), …]): None breaks the
    line; `shade` spans ([(t0, t1, label)]) are shaded, `events` ([(t, label)]) are vertical
    markers. Never raises on odd data: with nothing to draw it says "no data"."""
    title = xml_text(title)
    unit = xml_text(unit or "", 60)
    width = int(max(120, min(4000, _finite(width) or 640)))
    height = int(max(40, min(2000, _finite(height) or 220)))
    ident = chart_id or _slug(title)
    drawn: List[Tuple[str, List[Point]]] = []
    for item in list(series)[:_MAX_SERIES]:
        try:
            label, points = item
        except (TypeError, ValueError):
            continue
        drawn.append((xml_text(label, 80), _clean(points or [])))
    stats = [_stats(label, points) for label, points in drawn]
    values = [v for _l, points in drawn for _t, v in points if v is not None]
    times = [t for _l, points in drawn for t, v in points if v is not None]
    summary = _summary(title, unit, stats)
    table = _table(ident, title, unit, stats)
    head = Markup('<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart-svg" '
                  'aria-labelledby="{0}-title {0}-desc" viewBox="0 0 {1} {2}" width="{1}" height="{2}">'
                  '<title id="{0}-title">{3}</title><desc id="{0}-desc">{4}</desc>'
                  '<rect x="0" y="0" width="{1}" height="{2}" fill="#ffffff" stroke="none"/>'
                  ).format(ident, width, height, title + (f" ({unit})" if unit else ""), summary)
    if not values:
        body = Markup('<text x="{}" y="{}" text-anchor="middle" font-size="14" fill="#333333">no data</text>'
                      ).format(width // 2, height // 2)
        return Chart(ident, title, unit, Markup("{}{}</svg>").format(head, body), table, summary, stats,
                     source, empty=True)
    left, right = (8, 8) if compact else (60, 12)
    top, bottom = (6, 6) if compact else (22, 34 + 16 * ((len(drawn) + 2) // 3))
    if height - top - bottom < 30:
        bottom = max(6, height - top - 30)
    plot_w, plot_h = width - left - right, height - top - bottom
    low, high = _y_range(values)
    t0, t1 = min(times), max(times)
    if t1 == t0:
        t0, t1 = t0 - max(1.0, abs(t0) * 1e-9), t1 + max(1.0, abs(t1) * 1e-9)
    t_span = t1 / 2 - t0 / 2

    def x_of(t: float) -> float:
        if t_span <= 0:
            return round(left + plot_w / 2, 2)
        return round(left + (t / 2 - t0 / 2) / t_span * plot_w, 2)

    y_span = high / 2 - low / 2

    def y_of(v: float) -> float:
        if y_span <= 0:
            return round(top + plot_h / 2, 2)
        return round(top + plot_h - min(1.0, max(0.0, (v / 2 - low / 2) / y_span)) * plot_h, 2)

    parts: List[Markup] = [head]
    parts.extend(_shades(shade, t0, t1, x_of, top, plot_h))
    if not compact:
        parts.extend(_axes(low, high, t0, t1, left, top, plot_w, plot_h, y_of, x_of))
    parts.extend(_events(events, t0, t1, x_of, top, plot_h, compact))
    for index, (label, points) in enumerate(drawn):
        parts.extend(_line(index, label, points, x_of, y_of, compact))
    if not compact:
        parts.extend(_legend(drawn, left, height - bottom + 30, plot_w))
    parts.append(Markup("</svg>"))
    return Chart(ident, title, unit, Markup("").join(parts), table, summary, stats, source)


def _summary(title: str, unit: str, stats: List[SeriesStats]) -> str:
    described = []
    suffix = f" {unit}" if unit else ""
    for item in stats:
        if not item.n:
            described.append(f"{item.label}: no data")
            continue
        described.append(f"{item.label}: min {short_number(item.min)}, avg {short_number(item.avg)}, "
                         f"max {short_number(item.max)}, last {short_number(item.last)}{suffix} "
                         f"({item.n} point{'s' if item.n != 1 else ''})")
    if not described or all(not s.n for s in stats):
        return f"{title}: no data."
    return f"{title}. " + "; ".join(described) + "."


def _table(ident: str, title: str, unit: str, stats: List[SeriesStats]) -> Markup:
    rows = [Markup('<tr><th scope="row">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>'
                   ).format(s.label, table_number(s.min), table_number(s.avg), table_number(s.max),
                            table_number(s.last), s.n) for s in stats]
    if not rows:
        rows = [Markup('<tr><td colspan="6">no data</td></tr>')]
    caption = title + (f" ({unit})" if unit else "")
    return Markup('<table class="chart-table" id="{}-table"><caption>{}</caption><thead><tr>'
                  '<th scope="col">Series</th><th scope="col">Min</th><th scope="col">Avg</th>'
                  '<th scope="col">Max</th><th scope="col">Last</th><th scope="col">Points</th></tr></thead>'
                  '<tbody>{}</tbody></table>').format(ident, caption, Markup("").join(rows))


def _shades(shade: Iterable[Tuple[Any, Any, str]], t0: float, t1: float, x_of: Any, top: float,
            plot_h: float) -> List[Markup]:
    parts = []
    for item in list(shade or [])[:20]:
        try:
            start, end, label = item
        except (TypeError, ValueError):
            continue
        a, b = _finite(start), _finite(end)
        if a is None or b is None:
            continue
        a, b = max(min(a, b), t0), min(max(a, b), t1)
        if a > t1 or b < t0 or b < a:
            continue
        x, w = x_of(a), max(4.0, x_of(b) - x_of(a))
        label = xml_text(label, 80)
        parts.append(Markup('<g class="chart-shade"><title>{}</title>'
                            '<rect x="{}" y="{}" width="{}" height="{}" '
                            'fill="#f2c94c" fill-opacity="0.3" stroke="#8a6100" stroke-dasharray="3 2"/>'
                            '<text x="{}" y="{}" font-size="10" fill="#5c4200">{}</text></g>'
                            ).format(label, x, top, round(w, 2), plot_h, x + 2, top + 10, str(label)[:40]))
    return parts


def _events(events: Iterable[Tuple[Any, str]], t0: float, t1: float, x_of: Any, top: float, plot_h: float,
            compact: bool) -> List[Markup]:
    parts = []
    for index, item in enumerate(list(events or [])[:40]):
        try:
            moment, label = item
        except (TypeError, ValueError):
            continue
        t = _finite(moment)
        if t is None or not t0 <= t <= t1:
            continue
        x = x_of(t)
        label = xml_text(label, 80)
        text = Markup("") if compact else Markup(
            '<text x="{}" y="{}" font-size="10" fill="#8b1a1a" text-anchor="start">{}</text>'
        ).format(x + 3, top + 22 + 11 * (index % 3), str(label)[:40])
        parts.append(Markup('<g class="chart-event"><title>{} at {}</title>'
                            '<line x1="{}" y1="{}" x2="{}" y2="{}" '
                            'stroke="#8b1a1a" stroke-width="1.5" stroke-dasharray="4 2"/>{}</g>'
                            ).format(label, _clock(t, True), x, top, x, top + plot_h, text))
    return parts


def _axes(low: float, high: float, t0: float, t1: float, left: float, top: float, plot_w: float,
          plot_h: float, y_of: Any, x_of: Any) -> List[Markup]:
    parts = [Markup('<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#767676"/>'
                    ).format(left, top, plot_w, plot_h)]
    step = _nice_step(high - low)
    value, count = low, 0
    while value <= high + step / 1000 and count < 12:
        y = y_of(value)
        parts.append(Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#d9d9d9"/>'
                            '<text x="{}" y="{}" font-size="10" fill="#333333" text-anchor="end">{}</text>'
                            ).format(left, y, left + plot_w, y, left - 4, y + 3, short_number(value)))
        count += 1
        value = low + step * count
    ticks = 4 if plot_w >= 300 else 2
    shown = set()
    for index in range(ticks + 1):
        t = t0 + (t1 - t0) * index / ticks
        if _clock(t) in shown:
            continue  # a short window: one label per second
        shown.add(_clock(t))
        x = x_of(t)
        anchor = "start" if index == 0 else "end" if index == ticks else "middle"
        parts.append(Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#767676"/>'
                            '<text x="{}" y="{}" font-size="10" fill="#333333" text-anchor="{}">{}</text>'
                            ).format(x, top + plot_h, x, top + plot_h + 4, x, top + plot_h + 15, anchor,
                                     _clock(t)))
    parts.append(Markup('<text x="{}" y="{}" font-size="10" fill="#333333" text-anchor="end">UTC</text>'
                        ).format(left + plot_w, top - 6))
    return parts


def _marker(kind: str, x: float, y: float, colour: str, size: float) -> Markup:
    if kind == "square":
        return Markup('<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>').format(
            round(x - size, 2), round(y - size, 2), size * 2, size * 2, colour)
    if kind == "triangle":
        return Markup('<polygon points="{},{} {},{} {},{}" fill="{}"/>').format(
            x, round(y - size * 1.2, 2), round(x - size * 1.2, 2), round(y + size, 2),
            round(x + size * 1.2, 2), round(y + size, 2), colour)
    if kind == "diamond":
        return Markup('<polygon points="{},{} {},{} {},{} {},{}" fill="{}"/>').format(
            x, round(y - size * 1.3, 2), round(x + size * 1.3, 2), y, x, round(y + size * 1.3, 2),
            round(x - size * 1.3, 2), y, colour)
    return Markup('<circle cx="{}" cy="{}" r="{}" fill="{}"/>').format(x, y, size, colour)


def _line(index: int, label: str, points: List[Point], x_of: Any, y_of: Any, compact: bool) -> List[Markup]:
    colour, dash = _COLOURS[index % len(_COLOURS)], _DASHES[index % len(_DASHES)]
    marker = _MARKERS[index % len(_MARKERS)]
    runs: List[List[Tuple[float, float]]] = [[]]
    for t, v in points:
        if v is None:
            if runs[-1]:
                runs.append([])
            continue
        runs[-1].append((x_of(t), y_of(v)))
    parts = [Markup('<g class="chart-series"><title>{}</title>').format(label)]
    for run in runs:
        if len(run) > 1:
            coords = " ".join(f"{x},{y}" for x, y in run)
            parts.append(Markup('<polyline points="{}" fill="none" stroke="{}" stroke-width="{}"{}/>').format(
                coords, colour, 1.5 if compact else 2,
                Markup(' stroke-dasharray="{}"').format(dash) if dash else Markup("")))
    few = sum(len(run) for run in runs) <= 60
    for run in runs:
        for x, y in run:
            if few or len(run) == 1:
                parts.append(_marker(marker, x, y, colour, 2 if compact else 3))
    parts.append(Markup("</g>"))
    return parts


def _legend(drawn: List[Tuple[str, List[Point]]], left: float, y: float, plot_w: float) -> List[Markup]:
    parts = []
    column = plot_w / 3
    for index, (label, _points) in enumerate(drawn):
        x = left + column * (index % 3)
        row_y = y + 16 * (index // 3)
        colour, dash = _COLOURS[index % len(_COLOURS)], _DASHES[index % len(_DASHES)]
        parts.append(Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2"{}/>{}'
                            '<text x="{}" y="{}" font-size="11" fill="#1a1a1a">{}</text>').format(
            x, row_y - 4, x + 22, row_y - 4, colour,
            Markup(' stroke-dasharray="{}"').format(dash) if dash else Markup(""),
            _marker(_MARKERS[index % len(_MARKERS)], x + 11, row_y - 4, colour, 3),
            x + 28, row_y, label[:60]))
    return parts


# -- the bundle's standard charts ------------------------------------------------------------
#: Statement counters charted as rates; those absent from the samples are left out.
STATEMENT_COUNTERS = ("Questions", "Com_select", "Com_insert", "Com_update", "Com_delete", "Com_commit")


def interval_rates(window: Window, name: str) -> List[Point]:
    """Per-interval rates of counter `name`, at each interval's end; an interval where the
    counter or Uptime goes down (a reset, a restart) or a reading is missing is a gap."""
    points: List[Point] = []
    samples = window.samples
    for i in range(1, len(samples)):
        (ta, a), (tb, b) = samples[i - 1], samples[i]
        before, after = _finite(a.get(name)), _finite(b.get(name))
        up_a, up_b = _finite(a.get("Uptime")), _finite(b.get("Uptime"))
        seconds = tb - ta
        broken = (before is None or after is None or after < before or seconds <= 0
                  or (up_a is not None and up_b is not None and up_b < up_a))
        points.append((tb, None if broken else (after - before) / seconds))  # type: ignore[operator]
    return points


def _gauge(window: Window, name: str) -> List[Point]:
    return [(t, _finite(values.get(name))) for t, values in window.samples]


def _present(points: Sequence[Point]) -> bool:
    return any(v is not None for _t, v in points)


def measured_rows(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """OS sampler rows whose rates cover an interval of the window (the first row's rates,
    `window_seconds` null, are since boot)."""
    return [r for r in rows if not ("window_seconds" in r and r.get("window_seconds") is None)]


def os_series(rows: List[Dict[str, Any]], *keys: str) -> List[Point]:
    points: List[Point] = []
    for row in rows:
        t = parse_ts(row.get("ts"))
        if t is None:
            continue
        value: Any = row
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        points.append((t, _finite(value)))
    return points


def restart_events(window: Window) -> List[Tuple[float, str]]:
    events = []
    for i in range(1, len(window.samples)):
        (ta, a), (tb, b) = window.samples[i - 1], window.samples[i]
        up_a, up_b = _finite(a.get("Uptime")), _finite(b.get("Uptime"))
        if up_a is not None and up_b is not None and up_b < up_a:
            moment = tb - up_b
            events.append((moment if ta <= moment <= tb else tb, "restart"))
    return events


def deadlock_events(window: Window) -> List[Tuple[float, str]]:
    events = []
    for t, rate in interval_rates(window, "Innodb_deadlocks"):
        if rate is not None and rate > 0:
            events.append((t, "deadlock"))
    return events


def oom_events(bundle: Bundle) -> List[Tuple[float, str]]:
    data = bundle.json("os/oom_kills.json", {})
    events = data.get("events") if isinstance(data, dict) else None
    found = []
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict):
            continue
        moment = parse_ts(event.get("time"))
        if moment is not None:
            process = event.get("process")
            found.append((moment, f"OOM kill ({str(process)[:30]})" if process else "OOM kill"))
    return found


def finding_shades(report: Any) -> Dict[str, List[Tuple[float, float, str]]]:
    """For each evidence member, the spans (t0, t1, rule ids) of the window findings' samples."""
    spans: Dict[Tuple[str, float, float], List[str]] = {}
    for finding in getattr(report, "findings", None) or []:
        if not getattr(finding, "window", False):
            continue
        for evidence in getattr(finding, "evidence", None) or []:
            moments = []
            for sample in getattr(evidence, "samples", None) or []:
                if isinstance(sample, (list, tuple)) and sample:
                    moment = parse_ts(sample[0])
                    if moment is not None:
                        moments.append(moment)
            if moments:
                key = (str(getattr(evidence, "member", "")), min(moments), max(moments))
                spans.setdefault(key, [])
                if finding.rule not in spans[key]:
                    spans[key].append(str(finding.rule))
    shades: Dict[str, List[Tuple[float, float, str]]] = {}
    for (member, start, end), rules in spans.items():
        shades.setdefault(member, []).append((start, end, ", ".join(rules[:4])))
    return shades


def standard_charts(bundle: Bundle, report: Any) -> List[Chart]:
    """The charts a bundle's window can draw, each left out when its data is absent."""
    charts: List[Chart] = []
    window = bundle.window
    shades = finding_shades(report)
    events = restart_events(window) + deadlock_events(window) + oom_events(bundle)
    status = "mysql/global_status.jsonl"

    def add(title: str, series: List[Tuple[str, List[Point]]], unit: str, member: str) -> None:
        present = [(label, points) for label, points in series if _present(points)]
        if present:
            charts.append(line_chart(title, present, unit=unit, shade=shades.get(member, ()),
                                     events=events, source=member))

    add("Statements per second", [(n, interval_rates(window, n)) for n in STATEMENT_COUNTERS],
        "per second", status)
    add("Threads", [(n, _gauge(window, n)) for n in ("Threads_running", "Threads_connected")],
        "threads", status)
    add("InnoDB checkpoint age", [("Innodb_checkpoint_age", _gauge(window, "Innodb_checkpoint_age"))],
        "bytes", status)
    add("InnoDB dirty pages", [("Innodb_buffer_pool_pages_dirty",
                                _gauge(window, "Innodb_buffer_pool_pages_dirty"))], "pages", status)
    cpu = measured_rows(bundle.jsonl("os/proc_stat.jsonl"))
    add("CPU", [(k, os_series(cpu, "total", k)) for k in ("busy", "iowait", "steal")], "percent",
        "os/proc_stat.jsonl")
    disks = measured_rows(bundle.jsonl("os/diskstats.jsonl"))
    names: List[str] = []
    for row in disks:
        found = row.get("disks")
        for name in found if isinstance(found, dict) else {}:
            if name not in names:
                names.append(str(name)[:60])
    active = [n for n in names if any((v or 0) > 0 for key in ("reads_per_s", "writes_per_s")
                                      for _t, v in os_series(disks, "disks", n, key))][:_MAX_SERIES]
    for name in active:
        add(f"Disk I/O: {name}", [(f"{k.split('_')[0]}/s", os_series(disks, "disks", name, k))
                                  for k in ("reads_per_s", "writes_per_s")], "operations per second",
            "os/diskstats.jsonl")
    add("Disk latency", [(n, os_series(disks, "disks", n, "await_ms")) for n in active], "ms",
        "os/diskstats.jsonl")
    vmstat = bundle.jsonl("os/vmstat.jsonl")
    add("Swap", [(k, _vm_rate(vmstat, k)) for k in ("pswpin", "pswpout")], "pages per second",
        "os/vmstat.jsonl")
    add("Replica lag", _lag(bundle), "seconds", "mysql/replication/replica_status.jsonl")
    return charts


def _vm_rate(rows: List[Dict[str, Any]], name: str) -> List[Point]:
    measured = measured_rows(rows)
    rates = os_series(measured, "rates", f"{name}_per_s")
    if _present(rates):
        return rates
    counted = Window.from_rows(rows, "counters")
    return interval_rates(counted, name)


def _lag(bundle: Bundle) -> List[Tuple[str, List[Point]]]:
    lags: Dict[str, List[Point]] = {}
    for row in bundle.jsonl("mysql/replication/replica_status.jsonl"):
        t = parse_ts(row.get("ts"))
        channels = row.get("channels")
        if t is None or not isinstance(channels, list):
            continue
        for channel in channels:
            if not isinstance(channel, dict):
                continue
            name = str(channel.get("Channel_Name") or channel.get("Channel_name")
                       or channel.get("Connection_name") or "lag")[:60]
            value = channel.get("Seconds_Behind_Source", channel.get("Seconds_Behind_Master"))
            lags.setdefault(name, []).append((t, _finite(value)))
    return list(lags.items())[:_MAX_SERIES]
