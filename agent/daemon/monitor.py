"""The agent's eyes between captures: one persistent connection and a few /proc reads.

A check asks the server only for the status variables the due triggers name (one
`SHOW GLOBAL STATUS WHERE Variable_name IN (…)`), and for the grouped processlist only
when a condition needs it. Host values are read from /proc only when named. A lost
server is retried with a growing pause; meanwhile its values are unknown.
"""

from __future__ import annotations

import os
import time
from typing import Dict, Iterable, Optional, Set, Tuple

from agent.daemon.triggers import Reading
from collectors.mysql.session import ConnectSpec, Session
from collectors.mysql.sql import MONITOR_PROCESSLIST, MONITOR_STATUS
from collectors.registry import CollectorError

#: Monitoring statements are tiny; a server that cannot answer in this long is in trouble.
STATEMENT_TIMEOUT = 2.0
RECONNECT_MAX = 30.0
#: Status switches (Slave_running, wsrep_ready, …) compare as numbers.
_SWITCHES = {"ON": 1.0, "OFF": 0.0, "YES": 1.0, "NO": 0.0}


class Probe:
    def __init__(self, spec: ConnectSpec) -> None:
        self.spec = spec
        self.session: Optional[Session] = None
        self.error = ""
        self.statements = 0
        self._retry_at = 0.0
        self._retry_pause = 1.0
        self._previous: Dict[str, Tuple[float, float]] = {}
        self._cpu: Optional[Tuple[float, ...]] = None

    # -- MySQL -----------------------------------------------------------

    def _session(self, now: float) -> Optional[Session]:
        if self.session is not None:
            return self.session
        if now < self._retry_at:
            return None
        session = Session(self.spec, statement_timeout=STATEMENT_TIMEOUT)
        try:
            session.connect()
        except CollectorError as exc:
            self._lost(session, exc, now)
            return None
        self.statements += session.statements
        self.session, self.error, self._retry_pause = session, "", 1.0
        return session

    def _lost(self, session: Session, exc: CollectorError, now: float) -> None:
        session.close()
        self.session = None
        self.error = exc.reason
        self._retry_at = now + self._retry_pause
        self._retry_pause = min(self._retry_pause * 2, RECONNECT_MAX)

    def _query(self, now: float, statement, params=None) -> Optional[list]:
        session = self._session(now)
        if session is None:
            return None
        before = session.statements
        try:
            rows = session.query(statement, params)
        except CollectorError as exc:
            self.statements += session.statements - before
            self._lost(session, exc, now)
            return None
        self.statements += session.statements - before
        return rows

    def status(self, names: Iterable[str], now: float) -> Optional[Dict[str, float]]:
        wanted = tuple(sorted({n.lower() for n in names}))
        if not wanted:
            return {}
        rows = self._query(now, MONITOR_STATUS, {"names": wanted})
        if rows is None:
            return None
        values: Dict[str, float] = {}
        for row in rows:
            raw = row["Value"]
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            number = _SWITCHES.get(text.upper())
            try:
                values[str(row["Variable_name"]).lower()] = float(text) if number is None else number
            except ValueError:
                continue
        return values

    def processlist(self, now: float) -> Tuple[Optional[Dict[Tuple[str, str], int]], Optional[float]]:
        rows = self._query(now, MONITOR_PROCESSLIST)
        if rows is None:
            return None, None
        counts: Dict[Tuple[str, str], int] = {}
        longest: Optional[float] = None
        for row in rows:
            connections = int(row["connections"] or 0)
            for name in ("state", "command", "user"):
                key = (name, str(row[name] or "").lower())
                counts[key] = counts.get(key, 0) + connections
            if row["longest"] is not None:
                longest = max(longest or 0.0, float(row["longest"]))
        return counts, longest

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    # -- one check -------------------------------------------------------

    def read(self, status: Set[str], rates: Set[str], host: Set[str], disks: Set[str],
             processlist: bool) -> Reading:
        now = time.monotonic()
        reading = Reading()
        values = self.status(status, now) if status else {}
        if values is not None:
            reading.status = values
            for name in rates:
                key = name.lower()
                if key not in values:
                    continue
                before = self._previous.get(key)
                self._previous[key] = (values[key], now)
                if before is not None and now > before[1] and values[key] >= before[0]:
                    reading.rates[key] = (values[key] - before[0]) / (now - before[1])
        else:
            self._previous.clear()
        if processlist:
            reading.processlist, reading.longest_query = self.processlist(now)
        if host:
            reading.host = self.host(host)
        for path in disks:
            free = disk_free_pct(path)
            if free is not None:
                reading.disk_free[path] = free
        return reading

    # -- the host --------------------------------------------------------

    def host(self, names: Set[str]) -> Dict[str, float]:
        found: Dict[str, float] = {}
        if names & {"load1", "load5", "load15"}:
            try:
                with open("/proc/loadavg") as handle:
                    parts = handle.read().split()
                found.update(load1=float(parts[0]), load5=float(parts[1]), load15=float(parts[2]))
            except (OSError, ValueError, IndexError):
                pass
        if names & {"iowait", "cpu_busy"}:
            found.update(self._cpu_shares())
        if names & {"mem_free_pct", "swap_used_pct"}:
            found.update(_memory())
        return {k: round(v, 3) for k, v in found.items() if k in names}

    def _cpu_shares(self) -> Dict[str, float]:
        try:
            with open("/proc/stat") as handle:
                fields = handle.readline().split()[1:]
            now = tuple(float(x) for x in fields[:8])
        except (OSError, ValueError):
            return {}
        before, self._cpu = self._cpu, now
        if before is None:
            return {}
        delta = [max(a - b, 0.0) for a, b in zip(now, before)]
        total = sum(delta)
        if total <= 0:
            return {}
        # user nice system idle iowait irq softirq steal
        return {"iowait": 100.0 * delta[4] / total,
                "cpu_busy": 100.0 * (total - delta[3] - delta[4]) / total}


def _memory() -> Dict[str, float]:
    info: Dict[str, float] = {}
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable", "SwapTotal", "SwapFree"):
                    info[key] = float(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    found: Dict[str, float] = {}
    if info.get("MemTotal"):
        found["mem_free_pct"] = 100.0 * info.get("MemAvailable", 0.0) / info["MemTotal"]
    if "SwapTotal" in info:
        total = info["SwapTotal"]
        found["swap_used_pct"] = 100.0 * (total - info.get("SwapFree", 0.0)) / total if total else 0.0
    return found


def disk_free_pct(path: str) -> Optional[float]:
    """The share of the filesystem holding `path` that an unprivileged user may still write."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    if not stats.f_blocks:
        return None
    return round(100.0 * stats.f_bavail / stats.f_blocks, 3)
