"""The capture worker: one collection at a time, from a queue of jobs, into the spool.

A job is a scheduled snapshot or a fired trigger. At most one job of each kind (each
trigger by name) waits in the queue; another one is dropped with a log line. Before a
capture the spool is asked for room; without it, collecting pauses (and says why once)
until there is room again. A full disk during a capture pauses collecting too, and keeps
the bundles already spooled. One failed capture never stops the agent.
"""

from __future__ import annotations

import errno
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

from agent.daemon.config import Config
from agent.daemon.shipping import Uploader
from agent.daemon.spool import Spool
from agent.daemon.triggers import Fire
from collectors.mysql.session import ConnectSpec

Log = Callable[[str], None]


@dataclass
class Job:
    kind: str  # "schedule" | "trigger"
    profile: str
    fire: Optional[Fire] = None


class Captures:
    def __init__(self, config: Config, spec: ConnectSpec, spool: Spool, uploader: Optional[Uploader],
                 stop: threading.Event, log: Log, error: Log, changed: Callable[[], None],
                 captured: Callable[[], None]) -> None:
        """`changed`: what the status shows changed; `captured`: a bundle is in the spool."""
        self.config = config
        self.spec = spec
        self.spool = spool
        self.uploader = uploader
        self.stop = stop
        self.log = log
        self.error = error
        self.changed = changed
        self.captured = captured
        self.paused = ""
        self.capturing: Optional[str] = None
        self.captures = 0
        self._jobs: queue.Queue[Optional[Job]] = queue.Queue()
        self._queued: Dict[str, bool] = {}
        self._worker: Optional[threading.Thread] = None

    def start(self) -> None:
        self._worker = threading.Thread(target=self._work, name="mydiag-capture", daemon=True)
        self._worker.start()

    def enqueue(self, job: Job) -> None:
        key = job.fire.name if job.fire else job.kind
        if self._queued.get(key):
            self.log(f"a {key} capture is already waiting; not queueing another")
            return
        self._queued[key] = True
        self._jobs.put(job)

    def join(self) -> None:
        """Wait until every queued job is done."""
        self._jobs.join()

    def close(self, wait: float) -> None:
        self._jobs.put(None)
        if self._worker is not None:
            self._worker.join(wait)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                self._jobs.task_done()
                return
            self._queued[job.fire.name if job.fire else job.kind] = False
            try:
                if not self.stop.is_set():
                    self.capture(job)
            except Exception as exc:  # noqa: BLE001 - one failed capture never stops the agent
                self.error(f"capture failed: {type(exc).__name__}: {exc}")
            finally:
                self.capturing = None
                self._jobs.task_done()

    def capture(self, job: Job) -> None:
        from agent.collect.runner import Options, collect

        what = f"{job.kind} {job.fire.name}" if job.fire else job.kind
        why = self.spool.room(job.profile)
        if why:
            if why != self.paused:
                self.error(f"not collecting ({what} capture skipped): {why}")
            self.paused = why
            self.changed()
            return
        if self.paused:
            self.log("collecting again: the spool has room")
            self.paused = ""
        seq, folder = self.spool.begin()
        self.capturing = what
        options = Options(
            profile=job.profile, output_dir=folder, samples=self.config.agent.samples,
            interval=self.config.agent.interval, max_time=self.config.agent.max_time,
            recipients=self.uploader.recipients() if self.uploader is not None else None,
            signing_key=_host_key(self.log),
        )
        if job.fire is not None:
            options.trigger = job.fire.tag()
        try:
            result = collect(self.spec, options)
            if result.bundle is None:
                self.spool.abandon(seq)
                reason = result.connect_error.reason if result.connect_error else "nothing was collected"
                findings = getattr(result, "findings", None)
                if findings:
                    shown = ", ".join(f"{f.path}:{f.line} ({f.what})" for f in findings[:5])
                    reason = (f"{len(findings)} place(s) still looked like a secret after redaction "
                              f"({shown}), so nothing was written")
                self.error(f"{what} capture wrote no bundle: {reason}")
                return
            entry = self.spool.commit(seq, result.bundle, job.kind, job.profile,
                                      job.fire.name if job.fire else None)
        except BaseException as exc:
            self.spool.abandon(seq)
            if not isinstance(exc, OSError):
                raise
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                usage = self.spool.usage()
                self.paused = (f"stopped collecting: no space left on the device holding the spool "
                               f"({self.spool.dir}); the {usage.bundles} bundle(s) already there are kept")
                self.error(self.paused)
            else:
                self.error(f"{what} capture could not be written: {exc.strerror or exc}")
            return
        self.captures += 1
        failed = [c.name for c in result.manifest.collectors if c.status == "failed"]
        self.log(f"captured {entry.file} ({what}, profile {job.profile}, {entry.bytes} bytes"
                 + (f"; failed: {', '.join(failed)}" if failed else "") + ")")
        self.changed()
        self.captured()


def _host_key(log: Log) -> Any:
    from agent.home import host_key_path
    from bundle.sign import SignError, load_host_key

    path = host_key_path()
    if not path.exists():
        return None
    try:
        return load_host_key(path)
    except SignError as exc:
        log(f"bundles are not signed: {exc}")
        return None
