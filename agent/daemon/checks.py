"""The trigger checks: each trigger on its own interval, over the one monitoring connection.

Every check reads what the due triggers name in one probe (agent.daemon.monitor), then
lets each trigger observe it (agent.daemon.triggers); a trigger that fires hands its
capture profile to `on_fire`. Every status variable a trigger names must exist on the
server: at start that is a configuration error, later (the server was not reachable at
start) the trigger is disabled with an error the status shows.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List

from agent.daemon.config import Config, ConfigError, TriggerConfig
from agent.daemon.monitor import Probe
from agent.daemon.triggers import Fire, TriggerState, observe

Log = Callable[[str], None]


class Watched:
    """One configured trigger while the agent runs: its state and when it is next checked."""

    def __init__(self, config: TriggerConfig, state: TriggerState) -> None:
        self.config = config
        self.state = state
        self.next_check = 0.0
        self.checks = 0
        self.disabled = ""

    def status(self) -> Dict[str, Any]:
        """Its part of the agent's status file, firing history included."""
        cfg = self.config
        return {
            "name": cfg.name, "when": cfg.when.text, "for": cfg.for_checks,
            "check_every": cfg.check_every, "cooldown": cfg.cooldown,
            "max_per_day": cfg.max_per_day, "capture": cfg.capture,
            "disabled": self.disabled or None, **self.state.to_dict(),
        }


class TriggerChecks:
    def __init__(self, config: Config, probe: Probe, log: Log, error: Log,
                 on_fire: Callable[[str, Fire], None], save: Callable[[bool], None]) -> None:
        """`save(durable)` writes the agent's status."""
        self.config = config
        self.probe = probe
        self.log = log
        self.error = error
        self.on_fire = on_fire
        self.save = save
        self.validated = False
        self.triggers: List[Watched] = []

    def load(self, saved: List[Any]) -> None:
        """The configured triggers, each with its history from the last status file (`saved`)."""
        history = {t.get("name"): t for t in saved if isinstance(t, dict)}
        self.triggers = [Watched(t, TriggerState.from_dict(history.get(t.name, {})))
                         for t in self.config.triggers]

    def rewind(self) -> None:
        """Every trigger due now (`agent once`)."""
        for trigger in self.triggers:
            trigger.next_check = 0.0

    def unfinished(self) -> bool:
        """Whether a trigger still needs checks to decide (`agent once`: `for` times, plus one for rates)."""
        return any(t.checks < t.config.for_checks + (1 if t.config.when.rate_names else 0)
                   for t in self.triggers if not t.disabled)

    def check(self, now: float) -> float:
        """Check the triggers that are due; return how long until the next one is."""
        due = [t for t in self.triggers if not t.disabled and t.next_check <= now]
        if due:
            need_status = set().union(*(t.config.when.status_names for t in due))
            reading = self.probe.read(
                need_status, set().union(*(t.config.when.rate_names for t in due)),
                set().union(*(t.config.when.host_names for t in due)),
                set().union(*(t.config.when.disk_paths for t in due)),
                any(t.config.when.needs_processlist for t in due),
            )
            if not self.validated and self.probe.session is not None:
                self.validate(at_start=False)
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
                    self.save(False)
                trigger.next_check = max(trigger.next_check + cfg.check_every, now + cfg.check_every / 2)
                if fire is not None:
                    shown = ", ".join(f"{k}={v}" for k, v in fire.values.items())
                    self.log(f"trigger {cfg.name} fired: {cfg.when.text} held for {fire.checks} "
                             f"check(s) ({shown}); capturing profile {cfg.capture}")
                    self.on_fire(cfg.capture, fire)
        active = [t.next_check for t in self.triggers if not t.disabled]
        return max(0.0, min(active) - time.monotonic()) if active else 60.0

    def validate(self, at_start: bool) -> None:
        """Every status variable a trigger names must exist on this server."""
        names = set().union(*(t.config.when.status_names for t in self.triggers)) if self.triggers else set()
        if not names:
            self.validated = True
            return
        values = self.probe.status(names, time.monotonic())
        if values is None:
            if at_start:
                self.log(f"MySQL not reachable yet ({self.probe.error}); trigger checks wait for it")
            return
        self.validated = True
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
