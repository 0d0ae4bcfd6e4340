"""Collectors run from the diag console: one at a time and shown, or a whole bundle.

One collector runs in a thread under its own deadline, on its own session (collectors read
whole tables, so the console's row cap does not apply); what it returns is shown redacted
and cut (agent.session.diagoutput). A whole collection goes through the same runner as
`mydiag collect` and leaves its bundle on the customer's host. The caller checks the
account before either uses MySQL.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, List

from agent.session.diagerrors import Failed
from agent.session.diagoutput import show_artifact

Out = Callable[[str], None]


def show_collector(item: Any, spec: Any, out: Out, statement_timeout: float) -> None:
    """Run one collector (a catalog entry) and show what it returned; Failed if it did not work."""
    from collectors.mysql.session import Session
    from collectors.registry import CollectorError, Need

    session = None
    if Need.MYSQL in item.needs:
        session = Session(spec, statement_timeout=statement_timeout)
        try:
            session.connect()
        except CollectorError as exc:
            raise Failed(exc.reason + (f" ({exc.fix})" if exc.fix else "")) from None
    try:
        _run(item, session, out)
    finally:
        if session is not None:
            session.close()


def _run(item: Any, session: Any, out: Out) -> None:
    from collectors.registry import CollectorError, Context, Notes, Skip

    ctx = Context(profile="standard", session=session, samples=2, interval=1.0,
                  deadline=time.monotonic() + item.timeout, notes=Notes())
    found: List[Any] = []
    failure: List[BaseException] = []

    def work() -> None:
        try:
            found.extend(item.func(ctx))
        except BaseException as exc:  # noqa: BLE001 - reported below, never raised in a thread
            failure.append(exc)

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(item.timeout + 2)
    if worker.is_alive():
        if session is not None:
            session.interrupt()
        raise Failed(f"{item.name} did not finish within {item.timeout:g}s and was stopped")
    for artifact in found:
        show_artifact(out, artifact.path, artifact.encode())
    for note in ctx.notes.items:
        out(f"note: {note}\n")
    if failure:
        exc = failure[0]
        if isinstance(exc, (Skip, CollectorError)):
            raise Failed(f"{item.name}: {exc.reason}" + (f" ({exc.fix})" if exc.fix else ""))
        raise Failed(f"{item.name}: {type(exc).__name__}: {exc}")


def collect_bundle(spec: Any, folder: Path, profile: str, out: Out) -> None:
    """A whole collection into a bundle in `folder`, each collector's outcome shown."""
    from agent.collect.runner import Options, collect

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    out(f"collecting ({profile} profile)…\n")
    result = collect(spec, Options(profile=profile, output_dir=folder, samples=3, max_time=60))
    for entry in result.manifest.collectors:
        out(f"  {entry.name:<24} {entry.status:<8} {entry.duration:6.2f}s"
            + (f"  {entry.error}" if entry.error else "") + "\n")
    if result.bundle is None:
        raise Failed("no bundle written: nothing could be collected")
    out(f"bundle on the customer's host: {result.bundle} (they upload it with `mydiag upload`)\n")
