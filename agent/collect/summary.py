"""What the DBA sees: a progress bar while collecting, then a table of what happened."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from agent.collect.runner import Result
from bundle.manifest import CollectorEntry

_STYLE = {"ok": "green", "partial": "yellow", "failed": "red", "skipped": "dim"}


class LiveProgress:
    """A progress bar on stderr, one step per collector; silent when disabled."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Optional[Progress] = None
        self._task: Any = None

    def __enter__(self) -> LiveProgress:
        if self.enabled:
            from collectors.catalog import all_collectors

            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("collecting", total=len(all_collectors()))
        return self

    def update(self, name: str, entry: Optional[CollectorEntry]) -> None:
        if self._progress is None:
            return
        if entry is None:
            self._progress.update(self._task, description=name)
        else:
            self._progress.advance(self._task)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _reason(reason: str, fix: Optional[str]) -> Text:
    """A reason and its fix as plain text: server messages may hold `[...]`, never markup."""
    return Text(reason + (f"\nfix: {fix}" if fix else ""))


def summary_dict(result: Result) -> Dict[str, Any]:
    manifest = result.manifest
    return {
        "bundle": str(result.bundle) if result.bundle else None,
        "host": manifest.host,
        "profile": manifest.profile,
        "mysql": manifest.mysql,
        "started": manifest.started,
        "finished": manifest.finished,
        "statements": result.statements,
        "ok": result.all_ok,
        "connect_error": result.connect_error.reason if result.connect_error else None,
        "collectors": [
            {"name": e.name, "status": e.status, "duration": e.duration, "error": e.error,
             "fix": e.fix, "notes": e.notes, "files": e.files}
            for e in manifest.collectors
        ],
    }


def connection_casualties(result: Result) -> List[CollectorEntry]:
    """The collectors that did not run because the server was not reached: one fact, told once."""
    error = result.connect_error
    if error is None:
        return []
    return [e for e in result.manifest.collectors
            if e.status == "failed" and e.error == error.reason and not e.files]


#: How the collectors that look for the server on this host say it is not here.
_NOT_HERE = re.compile(r"(?:no server runs on|nothing listens on TCP) port ([0-9]+) here")


def absent_server_skips(result: Result) -> List[CollectorEntry]:
    """The collectors skipped because no server runs here on the asked port (its process,
    settings, slow log): when the connection failed too, that is one fact, told once."""
    if result.connect_error is None:
        return []
    skipped = [(e, _NOT_HERE.search(e.error or "")) for e in result.manifest.collectors
               if e.status == "skipped" and not e.files]
    ports = {m.group(1) for _, m in skipped if m}
    return [e for e, m in skipped if m] if len(ports) == 1 else []


def print_summary(result: Result, console: Optional[Console] = None) -> None:
    console = console or Console()
    manifest = result.manifest
    table = Table(title=f"mydiag {manifest.profile} collection of {manifest.host}")
    names = [e.name for e in manifest.collectors] or ["collector"]
    # Names are what a DBA looks up: never cut; the reason column wraps instead.
    table.add_column("collector", no_wrap=True, min_width=max(map(len, names)))
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("files", justify="right", no_wrap=True)
    table.add_column("reason and fix")
    folded = connection_casualties(result)
    absent = absent_server_skips(result)
    skip = {id(e) for e in folded[1:] + absent[1:]}
    for e in manifest.collectors:
        if id(e) in skip:
            continue
        if folded and e is folded[0]:
            what = "MySQL collector" + ("s" if len(folded) > 1 else "")
            table.add_row(f"{len(folded)} {what}", "[red]not run[/]", "", "0",
                          _reason(e.error or "", e.fix))
            continue
        if len(absent) > 1 and e is absent[0]:
            port = _NOT_HERE.search(e.error or "").group(1)  # type: ignore[union-attr]
            table.add_row(
                f"{len(absent)} collectors", f"[{_STYLE['skipped']}]skipped[/]", "", "0",
                _reason(f"no server runs on port {port} here, so its process, settings and "
                        f"logs are unknown ({', '.join(a.name for a in absent)})",
                        "start the server, or collect with the --port of this host's server"))
            continue
        reason = e.error or ""
        if e.status == "partial" and not reason:
            reason = "; ".join(e.notes)
        table.add_row(
            e.name, f"[{_STYLE[e.status]}]{e.status}[/]", f"{e.duration:.2f}s",
            str(len(e.files)), _reason(reason, e.fix),
        )
    console.print(table)
    if manifest.mysql.get("label"):
        console.print(
            f"server: {manifest.mysql['label']}  statements: {result.statements}"
        )
    if result.bundle:
        console.print(f"bundle: [bold]{result.bundle}[/]")
    else:
        console.print("[red]no bundle written: nothing could be collected[/]")
