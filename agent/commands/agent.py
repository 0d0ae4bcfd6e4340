"""`mydiag agent run|once|status|install-service`: the scheduled agent and its triggers."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import errno
import json
import os
import signal
from pathlib import Path
from typing import Any, Dict, Optional

from agent import exitcodes
from agent.collect.connection import OptionError, resolve
from agent.commands.say import fail, usage
from agent.daemon.config import Config, ConfigError, load
from agent.daemon.lock import AlreadyRunning, running_pid
from agent.daemon.loop import Agent
from agent.daemon.service import DEFAULT_CONFIG, DEFAULT_UNIT_DIR, UNIT_NAME, default_exec, render
from agent.daemon.spool import JOURNAL
from agent.daemon.status import STATE

EXIT_CODES = ("Exit codes: 0 done (run: stopped by SIGTERM or Ctrl-C), 2 a bad configuration or "
              "another agent already runs with this spool, 6 the spool cannot be written.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "agent", help="run the agent: scheduled snapshots, triggers, spool, uploads",
        description="Take light snapshots on a schedule and full captures when a trigger fires "
        "(like pt-stalk, with real conditions), keep them in a bounded spool that survives "
        "crashes, and upload them to the ticket in order. Configured by a TOML file: see "
        "docs/agent.md and docs/agent.example.toml. " + EXIT_CODES,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    for name, text in (("run", "run in the foreground until stopped (what the systemd unit does)"),
                       ("once", "one cycle for cron: a snapshot, each trigger checked, uploads"),
                       ("status", "show the schedule, triggers, spool, upload backlog and last errors")):
        sub = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ". "
                                 + EXIT_CODES)
        sub.add_argument("--config", "-c", default=DEFAULT_CONFIG, metavar="FILE",
                         help=f"the agent's TOML configuration (default {DEFAULT_CONFIG})")
        if name == "status":
            sub.add_argument("--json", action="store_true", help="print the status as JSON")
        sub.set_defaults(run=globals()[f"run_{name}"])
    install = actions.add_parser(
        "install-service", help="write the systemd unit and say how to enable it",
        description="Write the systemd unit for `mydiag agent run` (packaging/mydiag-agent.service "
        "is the same unit with the default paths).")
    install.add_argument("--config", "-c", default=DEFAULT_CONFIG, metavar="FILE",
                         help=f"the configuration the service runs with (default {DEFAULT_CONFIG})")
    install.add_argument("--unit-dir", default=DEFAULT_UNIT_DIR, metavar="DIR",
                         help=f"where to write {UNIT_NAME} (default {DEFAULT_UNIT_DIR})")
    install.add_argument("--exec", dest="exec_start", default=None, metavar="COMMAND",
                         help="how the service starts mydiag (default: this installation)")
    install.add_argument("--stdout", action="store_true", help="print the unit instead of writing it")
    install.set_defaults(run=run_install_service)
    parser.set_defaults(run=lambda args: usage(parser, exitcodes.USAGE))


def _setup(args: argparse.Namespace) -> tuple:
    config = load(Path(args.config))
    mysql = config.mysql
    try:
        spec = resolve(defaults_file=mysql.defaults_file, host=mysql.host, port=mysql.port,
                       socket=mysql.socket, user=mysql.user)
    except OptionError as exc:
        raise ConfigError(f"{config.path}: mysql: {exc}") from None
    return config, spec


def _uploader(config: Config):
    if config.server is None:
        return None
    from agent.daemon.shipping import TicketUploader

    return TicketUploader(config.server)


def _agent(args: argparse.Namespace) -> Agent:
    config, spec = _setup(args)
    return Agent(config, spec, _uploader(config))


def _start(agent: Agent, background_uploads: bool = True) -> Optional[int]:
    try:
        agent.start(background_uploads)
    except AlreadyRunning as exc:
        return fail(str(exc), exitcodes.USAGE)
    except ConfigError as exc:
        agent.close()
        return fail(str(exc), exitcodes.USAGE)
    except OSError as exc:
        agent.close()
        return fail(f"cannot use the spool {agent.config.spool.dir}: {_os_text(exc)}",
                     exitcodes.OUTPUT_ERROR)
    return None


def run_run(args: argparse.Namespace) -> int:
    try:
        agent = _agent(args)
    except ConfigError as exc:
        return fail(str(exc), exitcodes.USAGE)
    failed = _start(agent)
    if failed is not None:
        return failed

    def stop(signum: int, _frame: Any) -> None:
        agent.log(f"stopping ({signal.Signals(signum).name})")
        agent.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        agent.run()
    finally:
        agent.close()
    agent.log("stopped")
    return exitcodes.OK


def run_once(args: argparse.Namespace) -> int:
    try:
        agent = _agent(args)
    except ConfigError as exc:
        return fail(str(exc), exitcodes.USAGE)
    failed = _start(agent, background_uploads=False)
    if failed is not None:
        return failed
    try:
        agent.once()
    finally:
        agent.close(wait=agent.config.agent.max_time + 30)
    return exitcodes.OK


def run_status(args: argparse.Namespace) -> int:
    try:
        config = load(Path(args.config))
    except ConfigError as exc:
        return fail(str(exc), exitcodes.USAGE)
    report = status_report(config)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_status_text(report))
    return exitcodes.OK


def status_report(config: Config) -> Dict[str, Any]:
    """What `status` shows, read from the spool without changing it (the agent may be running)."""
    folder = config.spool.dir
    state: Dict[str, Any] = {}
    journal: Dict[str, Any] = {}
    for name, into in ((STATE, state), (JOURNAL, journal)):
        with contextlib.suppress(OSError, ValueError):
            into.update(json.loads((folder / name).read_text()))
    entries = journal.get("entries", [])
    pending = [e for e in entries if not e.get("uploaded") and not e.get("rejected")]
    try:
        stats = os.statvfs(folder)
        free = round(100.0 * stats.f_bavail / stats.f_blocks, 1) if stats.f_blocks else None
    except OSError:
        free = None
    pid = running_pid(folder)
    schedule = state.get("schedule")
    if schedule is None and config.schedule is not None:
        schedule = {"every": config.schedule.every, "profile": config.schedule.profile,
                    "last": None, "next": "when the agent starts"}
    return {
        "config": str(config.path), "running": pid is not None, "pid": pid,
        "last_update": state.get("updated"), "schedule": schedule,
        "triggers": state.get("triggers") or [
            {"name": t.name, "when": t.when.text, "for": t.for_checks, "check_every": t.check_every,
             "cooldown": t.cooldown, "max_per_day": t.max_per_day, "capture": t.capture}
            for t in config.triggers],
        "spool": {"dir": str(folder), "bytes": sum(e.get("bytes", 0) for e in entries),
                  "bundles": len(entries), "max_bytes": config.spool.max_bytes,
                  "min_free_pct": config.spool.min_free_pct, "disk_free_pct": free,
                  "collecting": (state.get("collecting") or {}).get("paused") is None,
                  "paused": (state.get("collecting") or {}).get("paused"),
                  "lost": journal.get("lost", [])},
        "backlog": {"bundles": len(pending), "bytes": sum(e.get("bytes", 0) for e in pending),
                    "oldest": pending[0]["created"] if pending else None,
                    "files": [e["file"] for e in pending],
                    # Refused for good by the server (over its size limit): kept, not retried.
                    "set_aside": [{"file": e["file"], "reason": e["rejected"]}
                                  for e in entries if e.get("rejected") and not e.get("uploaded")]},
        "uploads": state.get("uploads") if config.server else None,
        "mysql": state.get("mysql"),
        "errors": state.get("errors", [])[-10:],
    }


def _local(stamp: Optional[str]) -> str:
    if not stamp or not stamp.endswith("Z"):
        return stamp or "never"
    moment = _dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{value / size:g}{unit}"
    return f"{value:g}s"


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB"


def _status_text(report: Dict[str, Any]) -> str:
    lines = [f"agent: {'running, pid ' + str(report['pid']) if report['running'] else 'not running'}"
             f" (status of {_local(report['last_update'])}; config {report['config']})"]
    schedule = report["schedule"]
    if schedule:
        nxt = schedule.get("next")
        lines.append(f"schedule: a {schedule['profile']} snapshot every {_seconds(schedule['every'])}; "
                     f"last {_local(schedule.get('last'))}; next {_local(nxt) if nxt != 'now' else 'now'}")
    else:
        lines.append("schedule: none (only triggers)")
    lines.append("triggers:" if report["triggers"] else "triggers: none")
    for t in report["triggers"]:
        lines.append(f"  {t['name']}: {t['when']}  (for {t['for']} check(s) every "
                     f"{_seconds(t['check_every'])}, cooldown {_seconds(t['cooldown'])}, "
                     f"at most {t['max_per_day'] or 'unlimited'}/day, captures {t['capture']})")
        if t.get("disabled"):
            lines.append(f"    DISABLED: {t['disabled']}")
        if "last_check" in t:
            values = ", ".join(f"{k}={v}" for k, v in (t.get("last_values") or {}).items())
            result = {True: "true", False: "false", None: "unknown"}[t.get("last_result")]
            lines.append(f"    last check: {result} ({values or 'no values'}); "
                         f"fired {t.get('fired_today', 0)} today, last {_local(_epoch(t.get('last_fired')))}"
                         + (f"; {t['held_back']}" if t.get("held_back") else ""))
    spool = report["spool"]
    lines.append(f"spool: {spool['dir']}: {_mib(spool['bytes'])} of {_mib(spool['max_bytes'])} in "
                 f"{spool['bundles']} bundle(s); disk free {spool['disk_free_pct']}% "
                 f"(min {spool['min_free_pct']:g}%)")
    if spool["paused"]:
        lines.append(f"collecting: PAUSED: {spool['paused']}")
    for lost in spool["lost"]:
        lines.append(f"  lost: {lost}")
    backlog = report["backlog"]
    lines.append(f"upload backlog: {backlog['bundles']} bundle(s), {_mib(backlog['bytes'])}"
                 + (f", oldest {_local(backlog['oldest'])}" if backlog["oldest"] else ""))
    for aside in backlog.get("set_aside", []):
        lines.append(f"  set aside: {aside['file']}: {aside['reason']}")
    uploads = report["uploads"]
    if uploads:
        lines.append(f"uploads: to {uploads.get('server')} ticket {uploads.get('ticket')}; "
                     f"last ok {_local(uploads.get('last_ok'))}"
                     + (f"; last error: {uploads['last_error']}" if uploads.get("last_error") else "")
                     + (f"; next attempt {_local(uploads['next_attempt'])}" if uploads.get("next_attempt")
                        else ""))
    elif report["uploads"] is None:
        lines.append("uploads: no [server] configured; bundles stay in the spool")
    mysql = report.get("mysql") or {}
    if mysql.get("error"):
        lines.append(f"mysql: {mysql['error']}")
    if report["errors"]:
        lines.append("last errors:")
        lines += [f"  {_local(e.get('at'))}  {e.get('what')}" for e in report["errors"]]
    return "\n".join(lines)


def _epoch(value: Optional[float]) -> Optional[str]:
    if value is None:
        return None
    return _dt.datetime.fromtimestamp(value, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_install_service(args: argparse.Namespace) -> int:
    config = os.path.abspath(args.config)
    unit = render(config=config, exec_start=args.exec_start or default_exec())
    if args.stdout:
        print(unit, end="")
        return exitcodes.OK
    target = Path(args.unit_dir) / UNIT_NAME
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{UNIT_NAME}.tmp")
        tmp.write_text(unit)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        return fail(f"cannot write {target}: {_os_text(exc)} (run as root, or use --unit-dir or "
                     "--stdout)", exitcodes.OUTPUT_ERROR)
    print(f"wrote {target}")
    if not os.path.exists(config):
        print(f"note: {config} does not exist yet: start from docs/agent.example.toml")
    print("enable and start it with:\n  systemctl daemon-reload\n  systemctl enable --now mydiag-agent\n"
          "then watch it with:\n  journalctl -u mydiag-agent -f\n"
          f"  mydiag agent status --config {config}")
    return exitcodes.OK


def _os_text(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or str(exc)
