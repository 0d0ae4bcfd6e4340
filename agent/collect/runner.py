"""Runs collectors under deadlines and writes what they return into one bundle.

The sampling window opens first: `mysql.status` takes sample 0 (with the OS samplers
already running) before any other collector sends a statement, so the first reading
shows the server as mydiag found it, not after a schema scan has filled its caches.
Then the other samplers start, side by side in threads, while the snapshot collectors run
one at a time; they share the main connection (plus a reserve used only to stop a runaway
statement), the status samples have one of their own. Each collector runs in a worker
thread under its own deadline and the overall budget. A failing or hanging collector is
recorded and never stops the others. Each file's `captured_at` is when its collector
produced it.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.home import home
from bundle.manifest import CollectorEntry, FileEntry, Manifest, iso, stamp, utc_now
from bundle.paths import bundle_name
from bundle.writer import BadMemberPath, BundleWriter
from collectors.catalog import all_collectors
from collectors.mysql import window
from collectors.mysql.session import AccessDenied, ConnectSpec, ServerDown, Session
from collectors.registry import Artifact, Collector, CollectorError, Context, Need, Notes, Skip
from privacy.lint import Finding, SecretFindings
from privacy.pseudonym import Pseudonymizer, PseudonymStore
from privacy.redact import Redactor

#: How long a collector gets after its deadline to notice the interrupt and stop.
GRACE = 1.0

#: `--review`: shown the staged members (and where they wait), answers whether to finish.
Review = Callable[[List[FileEntry], Path], bool]


def pseudonym_store() -> PseudonymStore:
    """The pseudonym key and map: in the agent's state directory, never in a bundle."""
    return PseudonymStore(home() / "pseudonyms")


@dataclass
class Options:
    profile: str = "standard"
    output_dir: Path = Path(".")
    samples: int = 5
    interval: float = 1.0
    max_time: float = 60.0
    statement_timeout: float = 3.0
    table_guard: int = 10_000
    only: Optional[List[str]] = None
    #: Bytes of each log's tail (--log-bytes) and extra files to copy (--config-file).
    log_bytes: int = 2 << 20
    config_files: List[str] = field(default_factory=list)
    #: Seal the bundle as it is written (age recipients, `age1…`): no plaintext bundle on disk.
    recipients: Optional[List[str]] = None
    #: Sign the manifest with this host key (see bundle.sign and `mydiag keys init`).
    signing_key: Optional[Ed25519PrivateKey] = None
    #: A trigger's capture (the agent): its name and the values that fired it, for the manifest.
    trigger: Optional[Dict[str, Any]] = None
    #: `--pseudonymize`: which names become consistent tokens (hosts, ips, users, schemas).
    pseudonymize: List[str] = field(default_factory=list)
    #: `--allow-findings`: finish even when the final lint finds something secret-looking.
    allow_findings: bool = False
    #: `--review`: asked before the bundle is written; a no leaves nothing behind.
    review: Optional[Review] = None
    #: Asked for by name (`--stacks`, `--for-share`): opt-in collectors (the others never
    #: run), collectors outside the profile, consents (`ctx.asked`).
    opt_in: Tuple[str, ...] = ()


@dataclass
class Result:
    manifest: Manifest
    bundle: Optional[Path] = None
    connect_error: Optional[CollectorError] = None
    statements: int = 0
    entries: List[CollectorEntry] = field(default_factory=list)
    #: What the final lint found (file, line, kind; never the value).
    findings: List[Finding] = field(default_factory=list)
    #: The answer at --review was no: nothing was written.
    declined: bool = False

    @property
    def all_ok(self) -> bool:
        return all(e.status in ("ok", "skipped") for e in self.manifest.collectors)


#: (what, None) when something starts, (name, entry) when a collector is done; during the
#: window `what` is its state ("sampling 3/5 · mysql.schema").
Progress = Callable[[str, Optional[CollectorEntry]], None]

#: How often the progress line's window state is refreshed.
TICK = 0.25


def _nothing(_name: str, _entry: Optional[CollectorEntry]) -> None:
    return None


def collect(spec: ConnectSpec, options: Options, progress: Progress = _nothing) -> Result:
    started = utc_now()
    budget_end = time.monotonic() + options.max_time
    chosen = [
        c for c in all_collectors()
        if (options.only is None or c.name in options.only) and _wanted(c, options)
    ]
    session = Session(spec, statement_timeout=options.statement_timeout)
    connect_error: Optional[CollectorError] = None
    try:
        session.connect()
    except (AccessDenied, ServerDown) as exc:
        connect_error = exc

    host = str(session.identity.get("hostname") or spec.host or socket.gethostname())
    if host in ("127.0.0.1", "localhost", "::1"):
        host = socket.gethostname()
    manifest = Manifest(host=host, profile=options.profile, started=iso(started),
                        trigger=options.trigger)
    manifest.options = {
        "samples": options.samples, "interval": options.interval,
        "max_time": options.max_time, "statement_timeout": options.statement_timeout,
        "table_guard": options.table_guard, "log_bytes": options.log_bytes,
    }
    if connect_error is None:
        manifest.mysql = {
            "flavor": session.flavor.name,
            "version": ".".join(map(str, session.flavor.version)),
            "version_string": session.flavor.raw,
            "version_comment": session.identity.get("version_comment"),
            "label": session.flavor.label,
            "connection": spec.describe(),
            # Server-local times in the bundle (trx_started, first_seen) are in this zone;
            # each sits beside its UTC form.
            "time_zone": session.identity.get("time_zone"),
            "system_time_zone": session.identity.get("system_time_zone"),
        }

    shared: dict = {}
    store = pseudonym_store() if options.pseudonymize else None
    pseudonymizer = Pseudonymizer(store.key(), options.pseudonymize) if store else None
    if pseudonymizer is not None:
        manifest.options["pseudonymize"] = list(options.pseudonymize)
        for name in (host, socket.gethostname(), socket.getfqdn(), spec.host):
            pseudonymizer.learn("hosts", name)
        pseudonymizer.learn("users", spec.user)
    writer = BundleWriter(
        options.output_dir, Redactor(pseudonymizer), allow_findings=options.allow_findings
    )
    # The status samples, the window's clock, get a connection of their own: a slow or
    # interrupted statement elsewhere never shifts or costs them a reading. Everything else
    # shares the main one (its lock takes one statement at a time), so a least-privilege
    # account's MAX_USER_CONNECTIONS (`mydiag grants`) still leaves room for the reserve.
    clock = _companion(session, connect_error)
    sessions = [session, clock]
    try:
        entries: Dict[str, CollectorEntry] = {}
        samplers = [c for c in chosen if c.sampled]
        snapshots = [c for c in chosen if not c.sampled]
        shared[window.OPENED] = threading.Event()
        shared[window.OWN_CONNECTIONS] = lambda: {s.connection_id for s in sessions} - {None}
        line = _ProgressLine(progress, options, shared, bool(samplers))

        def run(item: Collector, on: Session) -> None:
            entries[item.name] = _run_one(
                item, on, options, shared, connect_error, budget_end, writer
            )
            progress(item.name, entries[item.name])

        opener = [c for c in samplers if c.name == window.OPENER]
        first = opener + [c for c in samplers if Need.MYSQL not in c.needs]
        later = [c for c in samplers if c not in first]
        futures: List[Future] = []
        with line, ThreadPoolExecutor(max(len(samplers), 1), thread_name_prefix="sampler") as pool:
            for item in first:
                futures.append(pool.submit(run, item, clock if item in opener else session))
            if opener:
                # Nothing else reaches the server until sample 0 is taken (or cannot be).
                while not shared[window.OPENED].wait(0.05) and not futures[0].done():
                    pass
            futures += [pool.submit(run, item, session) for item in later]
            for item in snapshots:
                line.doing(item.name)
                run(item, session)
            line.doing(None)
            for future in futures:
                future.result()
        manifest.collectors = [entries[c.name] for c in chosen]
        statements = _close(sessions)
        manifest.mysql["statements"] = statements
        manifest.finished = iso(utc_now())
        result = Result(manifest, connect_error=connect_error, statements=statements)
        if not writer.paths:
            writer.discard()
            return result
        try:
            staged = writer.prepare(manifest)
        except SecretFindings as exc:
            writer.discard()
            result.findings = exc.findings
            return result
        result.findings = list(writer.findings)
        if options.review is not None and not options.review(staged, writer.stage):
            writer.discard()
            result.declined = True
            return result
        if store is not None and pseudonymizer is not None:
            store.save(pseudonymizer.mapping)
        result.bundle = writer.finish(
            manifest, bundle_name(manifest.host, started), signing_key=options.signing_key,
            recipients=options.recipients,
        )
        return result
    except BaseException:
        writer.discard()
        _close(sessions)
        raise


def _wanted(item: Collector, options: Options) -> bool:
    """In the profile (an opt-in one only when asked for), or asked for by name."""
    if item.requested and item.requested in options.opt_in:
        return True
    return options.profile in item.profiles and (not item.opt_in or item.opt_in in options.opt_in)


def _companion(session: Session, connect_error: Optional[CollectorError]) -> Session:
    """Another connection like `session` (opened at its first statement), or `session`
    itself when the server was not reached (every MySQL collector fails then anyway)."""
    if connect_error is not None:
        return session
    other = Session(session.spec, statement_timeout=session.statement_timeout)
    other.flavor, other.identity = session.flavor, session.identity
    return other


def _close(sessions: List[Session]) -> int:
    """Close each distinct session; the statements they sent, all told."""
    distinct = list({id(s): s for s in sessions}.values())
    for each in distinct:
        each.close()
    return sum(each.statements for each in distinct)


def window_samples(options: Options) -> int:
    """Readings across the window: one in the quick profile, except in a trigger's capture,
    which is there for the incident over time (the processlist, locks and counters as it
    unfolds), whatever its profile."""
    if options.profile == "quick" and options.trigger is None:
        return 1
    return max(1, options.samples)


class _ProgressLine:
    """Keeps the progress line saying what the run is doing while the window is open:
    "sampling 3/5", and the snapshot collector that runs meanwhile."""

    def __init__(self, progress: Progress, options: Options, shared: dict, window_open: bool) -> None:
        self.progress = progress
        self.count = window_samples(options)
        self.interval = options.interval
        self.shared = shared
        self.current: Optional[str] = None
        self.active = window_open and progress is not _nothing
        self.started = time.monotonic()
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def text(self) -> str:
        # The MySQL window's start once status has opened it; else the samplers' (the OS's).
        start = self.shared.get(window.START, self.started)
        due = int((time.monotonic() - start) / self.interval) + 1 if self.interval > 0 else self.count
        window_state = f"sampling {min(max(due, 1), self.count)}/{self.count}"
        if due > self.count and self.current:
            return self.current  # the window is over; a snapshot collector still runs
        return f"{window_state} · {self.current}" if self.current else window_state

    def doing(self, name: Optional[str]) -> None:
        self.current = name
        if name is not None:
            self.progress(self.text() if self.active else name, None)

    def _tick(self) -> None:
        while not self._done.wait(TICK):
            self.progress(self.text(), None)

    def __enter__(self) -> _ProgressLine:
        if self.active:
            self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()


def _run_one(
    item: Collector,
    session: Session,
    options: Options,
    shared: dict,
    connect_error: Optional[CollectorError],
    budget_end: float,
    writer: BundleWriter,
) -> CollectorEntry:
    entry = CollectorEntry(name=item.name, status="ok", duration=0.0)
    if Need.MYSQL in item.needs and connect_error is not None:
        entry.status, entry.error, entry.fix = "failed", connect_error.reason, connect_error.fix
        return entry
    remaining = budget_end - time.monotonic()
    if remaining <= 0:
        entry.status, entry.error = "skipped", "the --max-time budget was used up"
        entry.fix = "raise --max-time"
        return entry
    samples = window_samples(options)
    limit = item.timeout + ((samples - 1) * options.interval if item.sampled else 0)
    limit = min(limit, remaining)
    ctx = Context(
        profile=options.profile, session=session, samples=samples,
        interval=options.interval, table_guard=options.table_guard,
        log_bytes=options.log_bytes, config_files=list(options.config_files),
        deadline=time.monotonic() + limit, notes=Notes(), shared=shared,
        asked=tuple(options.opt_in),
    )
    artifacts: List[Tuple[Artifact, str]] = []
    failure: List[BaseException] = []

    def work() -> None:
        try:
            for artifact in item.func(ctx):
                artifacts.append((artifact, stamp()))
        except BaseException as exc:  # noqa: BLE001 - recorded, never re-raised in a thread
            failure.append(exc)

    begun = time.monotonic()
    worker = threading.Thread(target=work, name=f"collector-{item.name}", daemon=True)
    worker.start()
    worker.join(limit)
    timed_out = worker.is_alive()
    if timed_out:
        session.interrupt()
        worker.join(GRACE)
    entry.duration = round(time.monotonic() - begun, 3)
    kept = list(artifacts)
    refused = 0
    for artifact, captured in kept:
        try:
            added = writer.add(artifact.path, artifact.encode())
        except BadMemberPath:
            refused += 1
            continue
        added.captured_at = captured
        entry.files.append(added.path)
    if refused:
        ctx.notes.add(f"{refused} file(s) left out: their names break the bundle format's "
                      "path rule", partial=True)
    entry.notes = list(ctx.notes.items)
    if timed_out:
        entry.status = "partial" if kept else "failed"
        entry.error = f"did not finish within {limit:.1f}s and was stopped"
        entry.fix = "see the collector's notes; raise --max-time if the server is just slow"
    elif failure:
        exc = failure[0]
        if isinstance(exc, Skip):
            entry.status, entry.error, entry.fix = "skipped", exc.reason, exc.fix or None
        elif isinstance(exc, CollectorError):
            entry.status = "partial" if kept else "failed"
            entry.error, entry.fix = exc.reason, exc.fix or None
        else:
            entry.status = "partial" if kept else "failed"
            entry.error = f"internal error: {type(exc).__name__}: {exc}"
    elif ctx.notes.partial:
        entry.status = "partial"
    if entry.fix == "":
        entry.fix = None
    return entry
