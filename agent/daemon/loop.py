"""The agent: scheduled snapshots, trigger checks, captures into the spool, uploads.

Three threads. The main one checks the triggers on their intervals over one monitoring
connection (checks.py) and decides when to capture; a capture worker runs one collection
at a time into the spool (captures.py); the shipper uploads the backlog in order
(shipping.py). What the agent is doing is written to `<spool>/state.json` (status.py) for
`mydiag agent status`; the firing history of the triggers and the time of the last
snapshot are kept there too, so a restart neither repeats a capture nor forgets a
cooldown or a daily cap. One agent runs per spool (lock.py).

This module is the agent itself: start and stop, the main loop (`run`, `tick`), one cycle
for cron (`once`), and what its status says.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from agent.collect import lowprio
from agent.daemon import lock
from agent.daemon.captures import Captures, Job
from agent.daemon.checks import TriggerChecks, Watched
from agent.daemon.config import Config
from agent.daemon.monitor import Probe
from agent.daemon.shipping import Shipper, Uploader
from agent.daemon.spool import Spool
from agent.daemon.status import STATE_EVERY, StatusFile, stamp
from agent.daemon.triggers import Fire
from agent.session.queue import SessionQueue
from collectors.mysql.session import ConnectSpec

Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    # The line and its end in one write: print() writes them apart, so a SIGKILL between the
    # two left a line without its end, and the next run's first line was glued onto it.
    sys.stderr.write(f"{stamp()} mydiag agent: {message}\n")
    sys.stderr.flush()


class Agent:
    def __init__(self, config: Config, spec: ConnectSpec, uploader: Optional[Uploader] = None,
                 log: Log = stderr_log) -> None:
        self.config = config
        self.spec = spec
        self.uploader = uploader
        self.log = log
        self.spool = Spool(config.spool.dir, config.spool.max_bytes, config.spool.min_free_pct)
        self.stop = threading.Event()
        self.probe = Probe(spec)
        self.status = StatusFile(config.spool.dir)
        self.checks = TriggerChecks(config, self.probe, log, self.error, on_fire=self._fired,
                                    save=self.write_state)
        self.worker = Captures(config, spec, self.spool, uploader, self.stop, log, self.error,
                               changed=lambda: self.write_state(durable=False), captured=self._wake_shipper)
        self.schedule_last: Optional[float] = None
        self.started = time.time()
        self._lock_fd: Optional[int] = None
        self.shipper: Optional[Shipper] = None
        self.sessions: Optional[SessionQueue] = None

    @property
    def triggers(self) -> List[Watched]:
        return self.checks.triggers

    # -- start and stop ---------------------------------------------------

    def start(self, background_uploads: bool = True) -> None:
        for problem in lowprio.apply(self.config.agent.nice, self.config.agent.ionice):
            self.log(problem)
        self.config.spool.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = lock.take(self.config.spool.dir)
        self.spool.open()
        for line in self.spool.recovered:
            self.log(f"spool: {line}")
        saved = self.status.load()
        self.schedule_last = (saved.get("schedule") or {}).get("last_epoch")
        self.checks.load(saved.get("triggers", []))
        self.checks.validate(at_start=True)
        self.worker.start()
        if self.uploader is not None:
            self.shipper = Shipper(self.spool, self.uploader, self.config.server.backoff_max
                                   if self.config.server else 300.0, self.stop, self.log)
            if background_uploads:
                self.shipper.start()
        self.write_state(durable=True)

    def close(self, wait: float = 10.0) -> None:
        self.stop.set()
        if self.sessions is not None:
            self.sessions.close()
        self.worker.close(wait)
        if self.shipper is not None and self.shipper.is_alive():
            self.shipper.join(wait)
        self.probe.close()
        if self.uploader is not None:
            self.uploader.close()
        with contextlib.suppress(OSError):
            self.write_state(durable=True, running=False)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the main loop ----------------------------------------------------

    def run(self) -> None:
        """Check and capture until `stop` is set."""
        self.log(self._describe())
        # Remote sessions granted with `mydiag session grant --via-agent` (agent/session/queue.py);
        # only the long-running agent holds them (`once` would end them when it exits).
        self.sessions = SessionQueue(self.spec, self.log)
        self.sessions.start()
        while not self.stop.is_set():
            self.stop.wait(self.tick())

    def once(self) -> None:
        """One cycle: the scheduled snapshot, each trigger checked `for` times, then uploads."""
        if self.config.schedule is not None:
            self.worker.enqueue(Job("schedule", self.config.schedule.profile))
            self.schedule_last = time.time()
        self.checks.rewind()
        while self.checks.unfinished():
            pause = self.checks.check(time.monotonic())
            if self.stop.wait(pause):
                break
        self.worker.join()
        if self.shipper is not None:
            self.shipper.pass_once(wait=False)
        self.write_state(durable=True)

    def tick(self) -> float:
        """Do what is due; return how long to sleep."""
        now = time.monotonic()
        pause = self.checks.check(now) if self.triggers else 60.0
        schedule = self.config.schedule
        if schedule is not None:
            wall = time.time()
            due = self.schedule_last is None or wall - self.schedule_last >= schedule.every
            if due:
                self.schedule_last = wall
                self.worker.enqueue(Job("schedule", schedule.profile))
                self.write_state(durable=True)
            pause = min(pause, max(0.05, self.schedule_last + schedule.every - time.time()))
        if time.monotonic() - self.status.written >= STATE_EVERY:
            self.write_state(durable=False)
        return min(pause, STATE_EVERY)

    def _fired(self, profile: str, fire: Fire) -> None:
        self.worker.enqueue(Job("trigger", profile, fire))
        self.write_state(durable=True)

    def _wake_shipper(self) -> None:
        if self.shipper is not None:
            self.shipper.wake()

    # -- status -----------------------------------------------------------

    def error(self, message: str) -> None:
        self.log(message)
        self.status.error(message)

    def state(self, running: bool = True) -> Dict[str, Any]:
        schedule = self.config.schedule
        shipper = self.shipper
        return {
            "pid": os.getpid(), "running": running, "started": stamp(self.started), "updated": stamp(),
            "config": str(self.config.path),
            "schedule": None if schedule is None else {
                "every": schedule.every, "profile": schedule.profile,
                "last": stamp(self.schedule_last) if self.schedule_last else None,
                "last_epoch": self.schedule_last,
                "next": stamp(self.schedule_last + schedule.every) if self.schedule_last else "now",
            },
            "triggers": [t.status() for t in self.triggers],
            "collecting": {"paused": self.worker.paused or None, "current": self.worker.capturing,
                           "captures": self.worker.captures},
            "mysql": {"connected": self.probe.session is not None, "error": self.probe.error or None,
                      "statements": self.probe.statements},
            "uploads": None if shipper is None else {
                "server": self.config.server.url if self.config.server else None,
                "ticket": self.config.server.ticket if self.config.server else None,
                "last_ok": shipper.last_ok, "last_error": shipper.last_error or None,
                "next_attempt": stamp(shipper.next_attempt) if shipper.next_attempt else None,
                "uploaded": shipper.uploaded,
            },
            "errors": list(self.status.errors),
        }

    def write_state(self, durable: bool, running: bool = True) -> None:
        self.status.write(lambda: self.state(running), durable)

    def _describe(self) -> str:
        parts = []
        if self.config.schedule:
            parts.append(f"a {self.config.schedule.profile} snapshot every {self.config.schedule.every:g}s")
        parts += [f"trigger {t.config.name} ({t.config.when.text}, every {t.config.check_every:g}s)"
                  for t in self.triggers]
        upload = (f"uploads to {self.config.server.url} ticket {self.config.server.ticket}"
                  if self.config.server else "no server: bundles stay in the spool")
        return (f"started (pid {os.getpid()}): " + ("; ".join(parts) or "nothing scheduled")
                + f"; spool {self.spool.dir}; {upload}")
