"""The agent: scheduled snapshots, trigger checks, captures into the spool, uploads.

Three threads. The main one checks the triggers on their intervals over one monitoring
connection and decides when to capture; a capture worker runs one collection at a time
into the spool; the shipper uploads the backlog in order. What the agent is doing is
written to `<spool>/state.json` (atomically) for `mydiag agent status`; the firing
history of the triggers and the time of the last snapshot are kept there too, so a
restart neither repeats a capture nor forgets a cooldown or a daily cap.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from agent.collect import lowprio
from agent.daemon.config import Config, ConfigError, TriggerConfig
from agent.daemon.monitor import Probe
from agent.daemon.shipping import Shipper, Uploader
from agent.daemon.spool import Spool, write_atomic
from agent.daemon.triggers import Fire, TriggerState, observe
from agent.session.queue import SessionQueue
from collectors.mysql.session import ConnectSpec

STATE = "state.json"
LOCK = "agent.lock"
#: How often the volatile part of the status (streaks, last values) reaches the disk.
STATE_EVERY = 5.0
KEEP_ERRORS = 20

Log = Callable[[str], None]


def stamp(epoch: Optional[float] = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if epoch is None else epoch))


def stderr_log(message: str) -> None:
    print(f"{stamp()} mydiag agent: {message}", file=sys.stderr, flush=True)


class AlreadyRunning(Exception):
    pass


@dataclass
class Job:
    kind: str  # "schedule" | "trigger"
    profile: str
    fire: Optional[Fire] = None


class _Trigger:
    def __init__(self, config: TriggerConfig, state: TriggerState) -> None:
        self.config = config
        self.state = state
        self.next_check = 0.0
        self.checks = 0
        self.disabled = ""


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
        self.triggers: List[_Trigger] = []
        self.errors: List[Dict[str, str]] = []
        self.paused = ""
        self.captures = 0
        self.capturing: Optional[str] = None
        self.schedule_last: Optional[float] = None
        self.started = time.time()
        self._jobs: queue.Queue[Optional[Job]] = queue.Queue()
        self._queued: Dict[str, bool] = {}
        self._lock_fd: Optional[int] = None
        self._worker: Optional[threading.Thread] = None
        self.shipper: Optional[Shipper] = None
        self._state_written = 0.0
        self._validated = False
        self._state_lock = threading.Lock()
        self.sessions: Optional[SessionQueue] = None

    # -- start and stop ---------------------------------------------------

    def start(self, background_uploads: bool = True) -> None:
        for problem in lowprio.apply(self.config.agent.nice, self.config.agent.ionice):
            self.log(problem)
        self.config.spool.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._take_lock()
        self.spool.open()
        for line in self.spool.recovered:
            self.log(f"spool: {line}")
        saved = self._load_state()
        self.schedule_last = (saved.get("schedule") or {}).get("last_epoch")
        history = {t.get("name"): t for t in saved.get("triggers", []) if isinstance(t, dict)}
        self.triggers = [_Trigger(t, TriggerState.from_dict(history.get(t.name, {})))
                         for t in self.config.triggers]
        self._validate(at_start=True)
        self._worker = threading.Thread(target=self._work, name="mydiag-capture", daemon=True)
        self._worker.start()
        if self.uploader is not None:
            self.shipper = Shipper(self.spool, self.uploader, self.config.server.backoff_max
                                   if self.config.server else 300.0, self.stop, self.log)
            if background_uploads:
                self.shipper.start()
        self.write_state(durable=True)

    def _take_lock(self) -> None:
        path = self.config.spool.dir / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise AlreadyRunning(f"another agent is running with the spool {self.config.spool.dir} "
                                 f"(pid {running_pid(self.config.spool.dir) or '?'})") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def close(self, wait: float = 10.0) -> None:
        self.stop.set()
        if self.sessions is not None:
            self.sessions.close()
        self._jobs.put(None)
        if self._worker is not None:
            self._worker.join(wait)
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
            self._enqueue(Job("schedule", self.config.schedule.profile))
            self.schedule_last = time.time()
        for trigger in self.triggers:
            trigger.next_check = 0.0
        while any(t.checks < self._checks_needed(t) for t in self.triggers if not t.disabled):
            pause = self._check_triggers(time.monotonic())
            if self.stop.wait(pause):
                break
        self._jobs.join()
        if self.shipper is not None:
            self.shipper.pass_once(wait=False)
        self.write_state(durable=True)

    def _checks_needed(self, trigger: _Trigger) -> int:
        return trigger.config.for_checks + (1 if trigger.config.when.rate_names else 0)

    def tick(self) -> float:
        """Do what is due; return how long to sleep."""
        now = time.monotonic()
        pause = self._check_triggers(now) if self.triggers else 60.0
        schedule = self.config.schedule
        if schedule is not None:
            wall = time.time()
            due = self.schedule_last is None or wall - self.schedule_last >= schedule.every
            if due:
                self.schedule_last = wall
                self._enqueue(Job("schedule", schedule.profile))
                self.write_state(durable=True)
            pause = min(pause, max(0.05, self.schedule_last + schedule.every - time.time()))
        if time.monotonic() - self._state_written >= STATE_EVERY:
            self.write_state(durable=False)
        return min(pause, STATE_EVERY)

    def _check_triggers(self, now: float) -> float:
        due = [t for t in self.triggers if not t.disabled and t.next_check <= now]
        if due:
            need_status = set().union(*(t.config.when.status_names for t in due))
            reading = self.probe.read(
                need_status, set().union(*(t.config.when.rate_names for t in due)),
                set().union(*(t.config.when.host_names for t in due)),
                set().union(*(t.config.when.disk_paths for t in due)),
                any(t.config.when.needs_processlist for t in due),
            )
            if not self._validated and self.probe.session is not None:
                self._validate(at_start=False)
            wall = time.time()
            for trigger in due:
                if trigger.disabled:
                    continue
                trigger.checks += 1
                cfg = trigger.config
                held = trigger.state.held_back
                fire = observe(cfg.name, cfg.when, cfg.for_checks, cfg.cooldown, cfg.max_per_day,
                               trigger.state, reading, wall)
                if trigger.state.held_back != held and fire is None:
                    self.write_state(durable=False)
                trigger.next_check = max(trigger.next_check + cfg.check_every, now + cfg.check_every / 2)
                if fire is not None:
                    shown = ", ".join(f"{k}={v}" for k, v in fire.values.items())
                    self.log(f"trigger {cfg.name} fired: {cfg.when.text} held for {fire.checks} "
                             f"check(s) ({shown}); capturing profile {cfg.capture}")
                    self._enqueue(Job("trigger", cfg.capture, fire))
                    self.write_state(durable=True)
        active = [t.next_check for t in self.triggers if not t.disabled]
        return max(0.0, min(active) - time.monotonic()) if active else 60.0

    def _validate(self, at_start: bool) -> None:
        """Every status variable a trigger names must exist on this server."""
        names = set().union(*(t.config.when.status_names for t in self.triggers)) if self.triggers else set()
        if not names:
            self._validated = True
            return
        values = self.probe.status(names, time.monotonic())
        if values is None:
            if at_start:
                self.log(f"MySQL not reachable yet ({self.probe.error}); trigger checks wait for it")
            return
        self._validated = True
        for trigger in self.triggers:
            missing = sorted(n for n in trigger.config.when.status_names if n.lower() not in values)
            if not missing:
                continue
            flavor = self.probe.session.flavor.label if self.probe.session else "this server"
            problem = (f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not a numeric "
                       f"status variable on {flavor}")
            if at_start:
                raise ConfigError(f"{self.config.path}: trigger {trigger.config.name!r}.when: {problem}")
            trigger.disabled = problem
            self.error(f"trigger {trigger.config.name} disabled: {problem}")

    # -- captures ---------------------------------------------------------

    def _enqueue(self, job: Job) -> None:
        key = job.fire.name if job.fire else job.kind
        if self._queued.get(key):
            self.log(f"a {key} capture is already waiting; not queueing another")
            return
        self._queued[key] = True
        self._jobs.put(job)

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
            self.write_state(durable=False)
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
        self.write_state(durable=False)
        if self.shipper is not None:
            self.shipper.wake()

    # -- status -----------------------------------------------------------

    def error(self, message: str) -> None:
        self.log(message)
        with self._state_lock:
            self.errors.append({"at": stamp(), "what": message})
            del self.errors[:-KEEP_ERRORS]

    def _load_state(self) -> Dict[str, Any]:
        try:
            data = json.loads((self.config.spool.dir / STATE).read_text())
        except (OSError, ValueError):
            return {}
        if isinstance(data, dict):
            self.errors = [e for e in data.get("errors", []) if isinstance(e, dict)][-KEEP_ERRORS:]
            return data
        return {}

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
            "triggers": [{
                "name": t.config.name, "when": t.config.when.text, "for": t.config.for_checks,
                "check_every": t.config.check_every, "cooldown": t.config.cooldown,
                "max_per_day": t.config.max_per_day, "capture": t.config.capture,
                "disabled": t.disabled or None, **t.state.to_dict(),
            } for t in self.triggers],
            "collecting": {"paused": self.paused or None, "current": self.capturing,
                           "captures": self.captures},
            "mysql": {"connected": self.probe.session is not None, "error": self.probe.error or None,
                      "statements": self.probe.statements},
            "uploads": None if shipper is None else {
                "server": self.config.server.url if self.config.server else None,
                "ticket": self.config.server.ticket if self.config.server else None,
                "last_ok": shipper.last_ok, "last_error": shipper.last_error or None,
                "next_attempt": stamp(shipper.next_attempt) if shipper.next_attempt else None,
                "uploaded": shipper.uploaded,
            },
            "errors": list(self.errors),
        }

    def write_state(self, durable: bool, running: bool = True) -> None:
        with self._state_lock:
            body = json.dumps(self.state(running), indent=1, default=str).encode() + b"\n"
            try:
                write_atomic(self.config.spool.dir / STATE, body, durable=durable)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
            self._state_written = time.monotonic()

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


def _host_key(log: Log):
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


def running_pid(spool_dir: Path) -> Optional[int]:
    """The pid of the agent holding the spool's lock, or None when none runs."""
    path = Path(spool_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = Path(path).read_text().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
