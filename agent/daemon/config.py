"""The agent's TOML configuration, checked whole at start.

A bad value is refused before anything runs, with the file, the key and what is wrong
(`agent.toml: trigger[0].cooldown: "10x" is not a duration like "30s", "10m", "2h"`).
The MySQL password never lives here: only in the option file named by
`mysql.defaults_file`. The upload token may (`server.token`), so a config holding one
must be readable by its owner alone.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the Python 3.9 test run
    import tomli as tomllib

from agent.daemon.trigger_language import ExpressionError, parse
from agent.daemon.triggers import Expression
from agent.home import home
from collectors.registry import PROFILES

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
IONICE_CLASSES = ("idle", "best-effort", "none")


class ConfigError(Exception):
    """One line naming the file, the key and what is wrong."""


@dataclass
class MysqlConfig:
    host: Optional[str] = None
    port: Optional[int] = None
    socket: Optional[str] = None
    user: Optional[str] = None
    defaults_file: Optional[str] = None


@dataclass
class ServerConfig:
    url: str
    ticket: str
    token: str = field(repr=False)
    #: The longest wait between two upload attempts while the server is away.
    backoff_max: float = 300.0


@dataclass
class SpoolConfig:
    dir: Path
    max_bytes: int = 2 << 30
    min_free_pct: float = 10.0


@dataclass
class ScheduleConfig:
    every: float
    profile: str = "quick"


@dataclass
class TriggerConfig:
    name: str
    when: Expression
    for_checks: int = 1
    check_every: float = 1.0
    cooldown: float = 600.0
    max_per_day: int = 24
    capture: str = "standard"


@dataclass
class AgentConfig:
    nice: int = 10
    ionice: str = "idle"
    #: Seconds per sample and samples in a capture (as `mydiag collect --samples/--interval`).
    samples: int = 5
    interval: float = 1.0
    max_time: float = 120.0


@dataclass
class Config:
    path: Path
    mysql: MysqlConfig
    spool: SpoolConfig
    agent: AgentConfig
    server: Optional[ServerConfig] = None
    schedule: Optional[ScheduleConfig] = None
    triggers: List[TriggerConfig] = field(default_factory=list)


class _Section:
    """Reads one table of the file, naming `file: section.key` in every complaint."""

    def __init__(self, path: Path, where: str, table: Any, known: tuple) -> None:
        self.path, self.where = path, where
        if not isinstance(table, dict):
            self.fail("", "must be a table (a [section])")
        self.table: Dict[str, Any] = table
        unknown = sorted(set(table) - set(known))
        if unknown:
            self.fail(unknown[0], f"unknown key (known: {', '.join(known)})")

    def fail(self, key: str, message: str) -> None:
        name = f"{self.where}.{key}" if key else self.where
        raise ConfigError(f"{self.path}: {name}: {message}")

    def _get(self, key: str, kind: type, what: str, default: Any) -> Any:
        if key not in self.table:
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            self.fail(key, f"{value!r} is not {what}")
        return value

    def text(self, key: str, default: Optional[str] = None, required: bool = False) -> Optional[str]:
        if required and key not in self.table:
            self.fail(key, "is required")
        value = self._get(key, str, "a string", default)
        if value is not None and not value.strip():
            self.fail(key, "is empty")
        return value

    def integer(self, key: str, default: Optional[int], low: int, high: int) -> Optional[int]:
        value = self._get(key, int, "a whole number", default)
        if value is not None and not low <= value <= high:
            self.fail(key, f"{value} is out of range ({low}..{high})")
        return value

    def number(self, key: str, default: float, low: float, high: float) -> float:
        value = self._get(key, float, "a number", default)
        if not low <= value <= high:
            self.fail(key, f"{value:g} is out of range ({low:g}..{high:g})")
        return value

    def duration(self, key: str, default: Optional[float], minimum: float = 0.0,
                 required: bool = False) -> Optional[float]:
        if required and key not in self.table:
            self.fail(key, 'is required (a duration like "30s", "15m", "1h")')
        if key not in self.table:
            return default
        raw = self.table[key]
        seconds = parse_duration(raw) if isinstance(raw, (str, int, float)) else None
        if seconds is None or isinstance(raw, bool):
            self.fail(key, f'{raw!r} is not a duration like "30s", "10m", "2h"')
        if seconds < minimum:
            self.fail(key, f"{raw!r} is shorter than the minimum of {minimum:g}s")
        return seconds

    def size(self, key: str, default: int) -> int:
        if key not in self.table:
            return default
        raw = self.table[key]
        value = parse_size(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
        if value is None or value <= 0:
            self.fail(key, f'{raw!r} is not a size like "500MiB", "2GiB"')
        return value

    def profile(self, key: str, default: str) -> str:
        value = self.text(key, default)
        if value not in PROFILES:
            self.fail(key, f"{value!r} is not a profile (one of {', '.join(PROFILES)})")
        return value


def parse_duration(raw: Any) -> Optional[float]:
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    found = _DURATION.match(str(raw))
    if not found:
        return None
    return float(found.group(1)) * _DURATION_UNITS[found.group(2)]


def parse_size(raw: Any) -> Optional[int]:
    if isinstance(raw, int):
        return raw
    found = _SIZE.match(str(raw))
    if not found:
        return None
    return int(float(found.group(1)) * _SIZE_UNITS[(found.group(2) or "b").lower()])


def load(path: Path) -> Config:
    """Read and check `path`; ConfigError says what is wrong, and where."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (see docs/agent.example.toml)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    top = _Section(path, "(top level)", data,
                   ("mysql", "server", "spool", "schedule", "trigger", "agent"))
    del top
    return Config(
        path=path,
        mysql=_mysql(path, data.get("mysql", {})),
        spool=_spool(path, data.get("spool", {})),
        agent=_agent(path, data.get("agent", {})),
        server=_server(path, data["server"]) if "server" in data else None,
        schedule=_schedule(path, data["schedule"]) if "schedule" in data else None,
        triggers=_triggers(path, data.get("trigger", [])),
    )


def _mysql(path: Path, table: Any) -> MysqlConfig:
    if isinstance(table, dict) and "password" in table:
        raise ConfigError(f"{path}: mysql.password: not allowed here: put the password in the "
                          "option file named by mysql.defaults_file (mode 0600)")
    section = _Section(path, "mysql", table, ("host", "port", "socket", "user", "defaults_file"))
    defaults_file = section.text("defaults_file")
    if defaults_file and not os.path.isfile(defaults_file):
        section.fail("defaults_file", f"{defaults_file}: no such file")
    return MysqlConfig(
        host=section.text("host"), port=section.integer("port", None, 1, 65535),
        socket=section.text("socket"), user=section.text("user"), defaults_file=defaults_file,
    )


def _server(path: Path, table: Any) -> ServerConfig:
    section = _Section(path, "server", table, ("url", "ticket", "token", "token_file", "backoff_max"))
    url = section.text("url", required=True) or ""
    if not re.match(r"^https?://[^/\s]+", url):
        section.fail("url", f"{url!r} is not an http:// or https:// URL")
    token = section.text("token")
    token_file = section.text("token_file")
    if token and token_file:
        section.fail("token", "give token or token_file, not both")
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as exc:
            section.fail("token_file", f"{token_file}: cannot read it ({exc.strerror})")
        if not token:
            section.fail("token_file", f"{token_file} is empty")
        _private(section, "token_file", Path(token_file))
    elif token:
        _private(section, "token", path)
    else:
        section.fail("token", "is required (the ticket's upload token), or token_file")
    return ServerConfig(
        url=url.rstrip("/"), ticket=section.text("ticket", required=True) or "", token=token or "",
        backoff_max=section.duration("backoff_max", 300.0, minimum=0.1) or 300.0,
    )


def _private(section: _Section, key: str, holder: Path) -> None:
    """A file holding the token must not be readable by group or others."""
    try:
        mode = holder.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        section.fail(key, f"{holder} holds the upload token but is readable by others "
                     f"(mode {stat.S_IMODE(mode):04o}): run `chmod 600 {holder}`")


def _spool(path: Path, table: Any) -> SpoolConfig:
    section = _Section(path, "spool", table, ("dir", "max_bytes", "min_free_pct"))
    folder = section.text("dir")
    return SpoolConfig(
        dir=Path(folder).expanduser() if folder else home() / "spool",
        max_bytes=section.size("max_bytes", 2 << 30),
        min_free_pct=section.number("min_free_pct", 10.0, 0.0, 99.0),
    )


def _schedule(path: Path, table: Any) -> ScheduleConfig:
    section = _Section(path, "schedule", table, ("every", "profile"))
    return ScheduleConfig(
        every=section.duration("every", None, minimum=1.0, required=True) or 0.0,
        profile=section.profile("profile", "quick"),
    )


def _agent(path: Path, table: Any) -> AgentConfig:
    section = _Section(path, "agent", table, ("nice", "ionice", "samples", "interval", "max_time"))
    ionice = section.text("ionice", "idle") or "idle"
    if ionice not in IONICE_CLASSES:
        section.fail("ionice", f"{ionice!r} is not one of {', '.join(IONICE_CLASSES)}")
    return AgentConfig(
        nice=section.integer("nice", 10, 0, 19) or 0,
        ionice=ionice,
        samples=section.integer("samples", 5, 1, 600) or 1,
        interval=section.duration("interval", 1.0, minimum=0.1) or 1.0,
        max_time=section.duration("max_time", 120.0, minimum=1.0) or 120.0,
    )


def _triggers(path: Path, tables: Any) -> List[TriggerConfig]:
    if not isinstance(tables, list):
        raise ConfigError(f"{path}: trigger: write each trigger as a [[trigger]] table")
    found: List[TriggerConfig] = []
    for index, table in enumerate(tables):
        section = _Section(path, f"trigger[{index}]", table,
                           ("name", "when", "for", "check_every", "cooldown", "max_per_day", "capture"))
        name = section.text("name", required=True) or ""
        if not _NAME.match(name):
            section.fail("name", f"{name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        if any(t.name == name for t in found):
            section.fail("name", f"{name!r} is used by two triggers")
        section.where = f"trigger {name!r}"
        when = section.text("when", required=True) or ""
        try:
            expression = parse(when)
        except ExpressionError as exc:
            section.fail("when", exc.explain())
        found.append(TriggerConfig(
            name=name, when=expression,
            for_checks=section.integer("for", 1, 1, 10_000) or 1,
            check_every=section.duration("check_every", 1.0, minimum=0.1) or 1.0,
            cooldown=section.duration("cooldown", 600.0) or 0.0,
            max_per_day=section.integer("max_per_day", 24, 0, 100_000) or 0,
            capture=section.profile("capture", "standard"),
        ))
    return found
