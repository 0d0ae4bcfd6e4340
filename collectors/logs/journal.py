"""The server's systemd unit in the journal: its recent lines (starts, stops, restarts,
kill signals, exit statuses), bounded in lines, bytes and time, and those events parsed.

The unit is the one whose cgroup holds the running server; when the server is down, an
installed server unit, but only when its journal cannot belong to another server: the
last start-up line it holds must not name another port, and must name the asked port
when the host's option files describe another server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

from collectors.config.settings import UnknownSettings, setting
from collectors.config.systemd import running_unit, server_services
from collectors.os.mysqld import SERVER_NAMES, connected, find, server_port
from collectors.os.procfs import epoch_stamp, utc_stamp
from collectors.registry import PROFILES, Artifact, Context, Skip, collector

JOURNALCTL = "journalctl"
LINES = 2000
MAX_BYTES = 1 << 20
SINCE_SECONDS = 7 * 86400
_TIMEOUT = 5.0
_JOURNAL_DIRS = ("/var/log/journal", "/run/log/journal")

#: The server's start-up line: `Version: '10.11.6-MariaDB'  socket: '/run/…'  port: 3306`.
START_LINE = re.compile(r"Version: '[^']*'\s+socket: '[^']*'\s+port: (\d+)")
#: `2026-12-02T01:02:03.123456+00:00 host ident[pid]: message` (-o short-iso-precise).
_LINE = re.compile(r"^(\S+T\S+) (\S+) ([^\s\[:]+)(?:\[(\d+)\])?: (.*)$")
_EVENTS = (
    ("starting", re.compile(r"^Starting (?P<what>.+?)\.\.\.$")),
    ("started", re.compile(r"^Started (?P<what>.+?)\.?$")),
    ("stopping", re.compile(r"^Stopping (?P<what>.+?)\.\.\.$")),
    ("stopped", re.compile(r"^Stopped (?P<what>.+?)\.?$")),
    ("exited", re.compile(r"Main process exited, code=(?P<code>\w+), "
                          r"status=(?P<status>\d+)(?:/(?P<name>\S+))?")),
    ("failed", re.compile(r"Failed with result '(?P<result>[^']+)'")),
    ("restart_scheduled", re.compile(r"Scheduled restart job, restart counter is at (?P<counter>\d+)")),
    ("killing", re.compile(r"Killing process (?P<pid>\d+) \((?P<process>[^)]*)\) with signal "
                           r"(?P<signal>SIG\w+)")),
    ("timed_out", re.compile(r"(?:State '(?P<state>[^']+)' timed out|(?P<operation>\w+) operation "
                             r"timed out)")),
    ("start_limit", re.compile(r"Start request repeated too quickly")),
    ("oom_killed", re.compile(r"killed by the OOM killer")),
    ("deactivated", re.compile(r"Deactivated successfully")),
)


class NoJournal(Exception):
    """No journal to read for the server; the message says why."""


@dataclass
class Journal:
    unit: str
    #: The lines as journalctl printed them (UTC), the most recent within the bounds.
    text: str
    since: str
    #: Dropped at the start to stay within MAX_BYTES.
    cut: bool
    how: str


def server_journal(ctx: Context, proof: bool = False) -> Journal:
    """The journal of the server's unit; raises NoJournal with the reason when there is none.

    With `proof`, an installed unit's journal is only taken when its last start-up line
    names the port mydiag was asked about.
    """
    search = find(ctx)
    port = server_port(ctx)
    if search.found is not None:
        unit = running_unit(ctx)
        if unit is None:
            raise NoJournal(f"mysqld (pid {search.found.pid}) is not run by a systemd unit "
                            "(its cgroup names none)")
        return _read(unit, f"the unit whose cgroup holds mysqld (pid {search.found.pid})")
    if connected(ctx):
        raise NoJournal(search.reason)  # the server runs, but not as a process found here
    units = server_services()
    if not units:
        raise NoJournal("no mysql/mariadb systemd unit is installed")
    refused: List[str] = []
    for unit in units:
        journal = _read(unit, "the installed server unit")
        named = last_port(journal.text)
        if port and named is not None and named != port:
            refused.append(f"{unit} last started a server on port {named}")
        elif port and proof and named is None:
            refused.append(f"{unit} has no start-up line naming port {port}")
        else:
            journal.how += (f" (its last start-up names port {named})" if named else "")
            return journal
    raise NoJournal("the journal of another server: " + "; ".join(refused))


def last_port(text: str) -> Optional[int]:
    found = START_LINE.findall(text)
    return int(found[-1]) if found else None


def _read(unit: str, how: str) -> Journal:
    binary = shutil.which(JOURNALCTL)
    if binary is None:
        raise NoJournal("journalctl is not installed (no systemd journal here)")
    since = time.time() - SINCE_SECONDS
    command = [binary, "-u", unit, "--since", f"@{int(since)}", "-o", "short-iso-precise",
               "--utc", "--no-pager", "-q", "-n", str(LINES)]
    text, cut = _run(command)
    if not text.strip():
        if not os.path.isdir("/run/systemd/system") and not _journal_files():
            raise NoJournal("no systemd journal on this host: systemd is not running "
                            "(no /run/systemd/system) and there are no journal files in "
                            + " or ".join(_JOURNAL_DIRS))
        raise NoJournal(f"the journal has no lines of {unit} in the last "
                        f"{SINCE_SECONDS // 86400} days (or they are not readable as this user: "
                        "root or the systemd-journal group can read them)")
    return Journal(unit, text, epoch_stamp(since), cut, how)


def _run(command: List[str]) -> Tuple[str, bool]:
    """journalctl's output, keeping only the last MAX_BYTES, killed after _TIMEOUT seconds."""
    try:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL, env={**os.environ, "SYSTEMD_PAGER": "",
                                                                "LC_ALL": "C"})
    except OSError as exc:
        raise NoJournal(f"journalctl could not run ({exc.strerror})") from None
    timer = threading.Timer(_TIMEOUT, child.kill)
    timer.start()
    kept, cut = b"", False
    try:
        assert child.stdout is not None
        for chunk in iter(lambda: child.stdout.read(65536), b""):
            kept += chunk
            if len(kept) > MAX_BYTES:
                kept, cut = kept[-MAX_BYTES:], True
        child.wait()
    finally:
        timer.cancel()
    if cut:
        kept = kept[kept.find(b"\n") + 1:]
    return kept.decode("utf-8", "replace"), cut


def _journal_files() -> bool:
    for folder in _JOURNAL_DIRS:
        for _root, _dirs, files in os.walk(folder):
            if any(name.endswith((".journal", ".journal~")) for name in files):
                return True
    return False


def server_lines(text: str) -> str:
    """The server's own messages in a journal text, without journalctl's prefix: its log."""
    out = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and match.group(3) in SERVER_NAMES + ("mysqld_safe",):
            out.append(match.group(5))
    return "\n".join(out) + ("\n" if out else "")


def parse_events(text: str) -> List[Dict[str, Any]]:
    """systemd's lines about the unit as events: starts, exits with code and status, kills."""
    events: List[Dict[str, Any]] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match or match.group(3) != "systemd":
            continue
        message = re.sub(r"^\S+\.service: ", "", match.group(5))
        for kind, pattern in _EVENTS:
            found = pattern.search(message)
            if found:
                event: Dict[str, Any] = {"time": match.group(1), "event": kind}
                event.update({k: (int(v) if v.isdigit() else v)
                              for k, v in found.groupdict().items() if v is not None})
                events.append(event)
                break
    return events


@collector("logs.journal", profiles=PROFILES, timeout=10)
def journal(ctx: Context) -> Iterator[Artifact]:
    """The server unit's recent journal (restarts, kill signals, exit statuses), bounded."""
    try:
        setting(ctx, "log_error")
        proof = False
    except UnknownSettings:
        proof = True  # the option files describe another server: its unit may be theirs
    try:
        found = server_journal(ctx, proof)
    except NoJournal as exc:
        raise Skip(str(exc)) from None
    lines = found.text.count("\n")
    ctx.notes.add(f"journal of {found.unit} ({found.how}) since {found.since}: {lines} lines"
                  + (f", cut to the last {MAX_BYTES >> 20} MiB" if found.cut else "")
                  + (f" (at most {LINES})" if lines >= LINES else ""))
    events = parse_events(found.text)
    kinds = Counter(e["event"] for e in events)
    yield Artifact.text("logs/journal.log", found.text)
    yield Artifact.json("logs/journal_events.json", {
        "ts": utc_stamp(), "unit": found.unit, "since": found.since, "lines": lines,
        "counts": dict(kinds),
        "restarts": kinds.get("restart_scheduled", 0),
        "exit_statuses": dict(Counter(f"{e.get('code')}={e.get('status')}/{e.get('name', '')}"
                                      .rstrip("/") for e in events if e["event"] == "exited")),
        "kill_signals": dict(Counter(e["signal"] for e in events if e["event"] == "killing")),
        "events": events[-200:],
    })
