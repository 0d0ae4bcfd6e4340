"""What the diag console prints: result sets cut to their limits, and always redacted.

A result set shows at most MAX_ROWS rows (as a table, or as lists after `\\G`) and at most
MAX_CELL characters of a cell, with control characters made visible; a collector's
artifact shows at most MAX_ARTIFACT bytes. Every text passes through the redaction rules
first, like everything that goes into a bundle.
"""

from __future__ import annotations

from typing import Any, Callable, List

from agent.session.sqlcheck import MAX_ROWS

MAX_CELL = 200
MAX_ARTIFACT = 256 << 10


def redacted(text: str) -> str:
    from privacy.redact import Redactor

    return Redactor().text(text, "console.txt")


def show_artifact(out: Callable[[str], None], path: str, data: bytes) -> None:
    """One collector artifact, redacted by its member path, cut at MAX_ARTIFACT bytes."""
    from privacy.redact import Redactor

    data = Redactor().apply(path, data)
    out(f"== {path}\n")
    out(data[:MAX_ARTIFACT].decode("utf-8", "replace").rstrip("\n") + "\n")
    if len(data) > MAX_ARTIFACT:
        out(f"… {len(data) - MAX_ARTIFACT} more bytes not shown\n")


def render_result(result: Any, vertical: bool) -> str:
    """A streamed result (agent.diagsql.Result): at most MAX_ROWS rows, and whether there were more."""
    text = render(result.names, result.rows[:MAX_ROWS], vertical, result.more)
    return text + "".join(f"warning: {w}\n" for w in result.warnings)


def render(names: List[str], rows: List[tuple], vertical: bool, more: bool = False) -> str:
    if not names:
        return "(no result set)\n"
    if not rows:
        return "(no rows)\n"
    shown = rows[:MAX_ROWS]
    cells = [[_cell(value) for value in row] for row in shown]
    out: List[str] = []
    if vertical:
        width = max(len(n) for n in names)
        for number, row in enumerate(cells, 1):
            out.append(f"*************************** {number}. row ***************************")
            out += [f"{name:>{width}}: {value}" for name, value in zip(names, row)]
    else:
        widths = [max([len(name)] + [len(r[i]) for r in cells]) for i, name in enumerate(names)]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        out.append(rule)
        out.append("| " + " | ".join(n.ljust(w) for n, w in zip(names, widths)) + " |")
        out.append(rule)
        out += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
        out.append(rule)
    if more:
        out.append(f"{len(shown)} rows shown; the server has more (the console shows at most {MAX_ROWS}: "
                   "narrow the query or page with LIMIT … OFFSET …)")
    else:
        out.append(f"{len(shown)} row{'s' if len(shown) != 1 else ''}")
    return "\n".join(out) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    text = str(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"
