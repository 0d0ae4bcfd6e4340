"""What the DBA sees: a progress bar while collecting, then a table of what happened."""

from __future__ import annotations

from typing import Any, Dict, Optional

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

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


def print_summary(result: Result, console: Optional[Console] = None) -> None:
    console = console or Console()
    manifest = result.manifest
    table = Table(title=f"mydiag {manifest.profile} collection of {manifest.host}")
    table.add_column("collector")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("files", justify="right")
    table.add_column("reason and fix")
    for e in manifest.collectors:
        reason = e.error or ""
        if e.status == "partial" and not reason:
            reason = "; ".join(e.notes)
        if e.fix:
            reason += f"\nfix: {e.fix}"
        table.add_row(
            e.name, f"[{_STYLE[e.status]}]{e.status}[/]", f"{e.duration:.2f}s",
            str(len(e.files)), reason,
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
