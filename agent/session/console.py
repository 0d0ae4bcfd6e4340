"""The diag console: what an engineer gets in a `diag` session, instead of a shell.

Read-only actions only: SQL statements that pass `agent.session.sqlcheck` and run in a
read-only, time-limited, row-capped session (`agent.session.diagsql`) as an account that can only
look (`agent.session.diagaccount`: the console refuses to start with more, unless the customer
granted the session with --allow-privileged-account); one collector or a whole
collection; the tail of the server's logs; the OS state. It starts no program and has no
escape to a shell: a line is one of its commands or it is refused. Output passes through
the redaction rules before it is shown, like everything that goes into a bundle.

Run by the session channel as `python -m agent.session.console`, in its own process (so
a cut kills it whole), with the MySQL connection settings on an inherited pipe
(`--spec-fd`), never on the command line or in the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from agent.session import sqlcheck
from agent.session.diagaccount import ALLOW_PRIVILEGED
from agent.session.sqlcheck import MAX_ROWS

STATEMENT_TIMEOUT = 10.0
#: The console's exit status when it refuses to start (the account has too much).
EXIT_REFUSED = 3
MAX_CELL = 200
MAX_ARTIFACT = 256 << 10
LOGS = {"error": "log_error", "slow": "slow_query_log_file", "general": "general_log_file"}

HELP = """\
diag commands (read-only; no shell, no programs):
  sql STATEMENT         run one read-only statement (SELECT, SHOW, EXPLAIN,
                        DESCRIBE, WITH … SELECT); end with \\G for rows as lists
  sql                   a SQL prompt; `exit` leaves it
  collectors            the collectors this host has
  collect NAME [NAME…]  run these collectors, show what they return (redacted)
  collect [--profile quick|standard|full]
                        a whole collection into a bundle on the customer's host
  tail error|slow|general [LINES]
                        the last lines of a server log (default 50)
  os                    load, memory, disks and the busiest processes
  help, exit"""


class Refused(Exception):
    """A line the console will not run; the message says why."""


class Console:
    def __init__(self, spec: Any, out: Callable[[str], None], workdir: Path, *,
                 allow_privileged: bool = False, budget: Optional[float] = None) -> None:
        from agent.session.diagsql import BUDGET, Ledger

        self.spec = spec
        self.out = out
        self.workdir = workdir
        self.allow_privileged = allow_privileged
        self.ledger = Ledger(workdir, BUDGET if budget is None else budget)
        self._session: Any = None

    # -- dispatch -----------------------------------------------------------------------

    def run_line(self, line: str) -> int:
        """Run one console line; 0 when it worked, 1 when refused or failed."""
        line = line.strip()
        if not line:
            return 0
        word, _, rest = line.partition(" ")
        handler = {"help": self.help, "?": self.help, "sql": self.sql, "collectors": self.collectors,
                   "collect": self.collect, "tail": self.tail, "os": self.os_state}.get(word.lower())
        try:
            if handler is None:
                raise Refused(f"`{word}` is not a diag command: this is a read-only diagnostics session "
                              "with no shell (type `help`; a shell needs a grant with --mode shell)")
            handler(rest.strip())
            return 0
        except Refused as exc:
            self.out(f"refused: {exc}\n")
            return 1
        except Failed as exc:
            self.out(f"error: {exc}\n")
            return 1
        except Exception as exc:  # noqa: BLE001 - the console says what broke and goes on
            self.out(f"error: {type(exc).__name__}: {exc}\n")
            return 1

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def help(self, _rest: str) -> None:
        self.out(HELP + "\n")

    def admit(self) -> Optional[str]:
        """Why this console must not start (the account has too much), or None.

        A server that cannot be reached now does not stop the console (logs and OS state
        still work); the account is checked again at each connection."""
        if self.spec is None:
            return None
        try:
            self.session()
        except Privileged as exc:
            return str(exc)
        except Failed:
            return None
        return None

    # -- SQL ------------------------------------------------------------------------------

    def session(self) -> Any:
        from agent.session.diagsql import DiagSession
        from collectors.registry import CollectorError

        if self.spec is None:
            raise Failed("no MySQL connection was configured for this session")
        if self._session is None:
            session = DiagSession(self.spec, statement_timeout=STATEMENT_TIMEOUT)
            try:
                session.connect()
            except CollectorError as exc:
                session.close()
                raise Failed(exc.reason + (f" ({exc.fix})" if exc.fix else "")) from None
            if session.excess and not self.allow_privileged:
                session.close()
                raise Privileged(
                    f"diag mode refused to start: the account {session.account} has {session.excess}, more "
                    "than diagnostics need; connect as the account `mydiag grants --purpose diag` prints "
                    "(or grant the session with --allow-privileged-account)")
            if session.excess:
                self.out(f"warning: the account {session.account} has {session.excess}; the customer "
                         "allowed it (--allow-privileged-account), so only the console's checks hold\n")
            self._session = session
        return self._session

    def sql(self, statement: str) -> None:
        from agent.session.diagsql import Spent
        from collectors.registry import CollectorError

        if not statement:
            raise Refused("give the statement (`sql SELECT …`), or use the interactive prompt")
        session = self.session()
        try:
            checked = sqlcheck.check(statement, session.mode)
        except sqlcheck.NotReadOnly as exc:
            raise Refused(str(exc)) from None
        try:
            with self.ledger.statement():
                result = self.session().stream(checked.text)
        except Spent as exc:
            raise Refused(str(exc)) from None
        except CollectorError as exc:
            raise Failed(exc.reason) from None
        self.out(_redacted(render_result(result, checked.vertical)))

    def query(self, text: str) -> List[Dict[str, Any]]:
        """One of the console's own statements (never typed text)."""
        from collectors.mysql.sql import Statement
        from collectors.registry import CollectorError

        try:
            return self.session().query(Statement("console", text))
        except CollectorError as exc:
            raise Failed(exc.reason) from None

    # -- collectors -----------------------------------------------------------------------

    def collectors(self, _rest: str) -> None:
        from collectors.catalog import all_collectors

        for item in all_collectors():
            self.out(f"  {item.name:<24} {','.join(item.profiles):<20} {item.doc}\n")

    def collect(self, rest: str) -> None:
        from collectors.catalog import all_collectors
        from collectors.registry import PROFILES

        words = shlex.split(rest)
        profile = "quick"
        if words[:1] == ["--profile"]:
            if len(words) != 2 or words[1] not in PROFILES:
                raise Refused(f"--profile takes one of {', '.join(PROFILES)}")
            profile = words[1]
            words = []
        if not words:
            self._collection(profile)
            return
        known = {c.name: c for c in all_collectors()}
        unknown = [w for w in words if w not in known]
        if unknown:
            raise Refused(f"no collector {', '.join(unknown)} (see `collectors`)")
        for name in words:
            self._one(known[name])

    def _one(self, item: Any) -> None:
        from collectors.mysql.session import Session
        from collectors.registry import CollectorError, Need

        session = None
        if Need.MYSQL in item.needs:
            self.session()  # the account is checked before any collector uses it
            # Collectors read whole tables: their own session, without the console's row cap.
            session = Session(self.spec, statement_timeout=STATEMENT_TIMEOUT)
            try:
                session.connect()
            except CollectorError as exc:
                raise Failed(exc.reason + (f" ({exc.fix})" if exc.fix else "")) from None
        try:
            self._run_collector(item, session)
        finally:
            if session is not None:
                session.close()

    def _run_collector(self, item: Any, session: Any) -> None:
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
            data = _redact_member(artifact.path, artifact.encode())
            cut = len(data) > MAX_ARTIFACT
            self.out(f"== {artifact.path}\n")
            self.out(data[:MAX_ARTIFACT].decode("utf-8", "replace").rstrip("\n") + "\n")
            if cut:
                self.out(f"… {len(data) - MAX_ARTIFACT} more bytes not shown\n")
        for note in ctx.notes.items:
            self.out(f"note: {note}\n")
        if failure:
            exc = failure[0]
            if isinstance(exc, (Skip, CollectorError)):
                raise Failed(f"{item.name}: {exc.reason}" + (f" ({exc.fix})" if exc.fix else ""))
            raise Failed(f"{item.name}: {type(exc).__name__}: {exc}")

    def _collection(self, profile: str) -> None:
        from agent.collect.runner import Options, collect

        if self.spec is None:
            raise Failed("no MySQL connection was configured for this session")
        self.session()  # the account is checked before the collection uses it
        folder = self.workdir / "bundles"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.out(f"collecting ({profile} profile)…\n")
        result = collect(self.spec, Options(profile=profile, output_dir=folder, samples=3, max_time=60))
        for entry in result.manifest.collectors:
            self.out(f"  {entry.name:<24} {entry.status:<8} {entry.duration:6.2f}s"
                     + (f"  {entry.error}" if entry.error else "") + "\n")
        if result.bundle is None:
            raise Failed("no bundle written: nothing could be collected")
        self.out(f"bundle on the customer's host: {result.bundle} (they upload it with `mydiag upload`)\n")

    # -- logs and OS ----------------------------------------------------------------------

    def tail(self, rest: str) -> None:
        words = rest.split()
        if (not words or words[0] not in LOGS or len(words) > 2
                or (len(words) == 2 and not words[1].isdigit())):
            raise Refused("tail error|slow|general [LINES]")
        lines = min(int(words[1]) if len(words) == 2 else 50, 5000)
        variable = LOGS[words[0]]
        row = self.query(f"SELECT @@{variable} AS path, @@datadir AS datadir")
        path = str((row[0] if row else {}).get("path") or "")
        if not path or path in ("stderr", "/dev/stderr"):
            raise Failed(f"the server writes its {words[0]} log to {path or 'nowhere'}: nothing to read")
        if not os.path.isabs(path):
            path = os.path.join(str(row[0].get("datadir") or ""), path)
        try:
            text = last_lines(path, lines)
        except OSError as exc:
            raise Failed(f"cannot read {path}: {exc.strerror or exc}") from None
        self.out(f"== {path} (last {lines} lines)\n")
        self.out(_redacted(text if text.endswith("\n") or not text else text + "\n"))

    def os_state(self, _rest: str) -> None:
        self.out(os_report())


class Failed(Exception):
    """An allowed action that did not work (no connection, timeout, missing privilege)."""


class Privileged(Refused):
    """The account the console connects as holds more than diagnostics need."""


def _redacted(text: str) -> str:
    from privacy.redact import Redactor

    return Redactor().text(text, "console.txt")


def _redact_member(path: str, data: bytes) -> bytes:
    from privacy.redact import Redactor

    return Redactor().apply(path, data)


def render_result(result: Any, vertical: bool) -> str:
    """A streamed result (agent.diagsql.Result): at most MAX_ROWS rows, and whether there were more."""
    text = render(result.names, result.rows[:MAX_ROWS], vertical, result.more)
    return text + "".join(f"warning: {w}\n" for w in result.warnings)


def render(names: List[str], rows: List[tuple], vertical: bool, more: bool = False) -> str:
    if not names:
        return "(no result set)\n"
    if not rows:
        return "(no rows)\n"
    shown = rows[:MAX_ROWS]
    cells = [[_cell(value) for value in row] for row in shown]
    out: List[str] = []
    if vertical:
        width = max(len(n) for n in names)
        for number, row in enumerate(cells, 1):
            out.append(f"*************************** {number}. row ***************************")
            out += [f"{name:>{width}}: {value}" for name, value in zip(names, row)]
    else:
        widths = [max([len(name)] + [len(r[i]) for r in cells]) for i, name in enumerate(names)]
        rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
        out.append(rule)
        out.append("| " + " | ".join(n.ljust(w) for n, w in zip(names, widths)) + " |")
        out.append(rule)
        out += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
        out.append(rule)
    if more:
        out.append(f"{len(shown)} rows shown; the server has more (the console shows at most {MAX_ROWS}: "
                   "narrow the query or page with LIMIT … OFFSET …)")
    else:
        out.append(f"{len(shown)} row{'s' if len(shown) != 1 else ''}")
    return "\n".join(out) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8", "replace")
    text = str(value).replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return text if len(text) <= MAX_CELL else text[:MAX_CELL] + "…"


def last_lines(path: str, count: int, block: int = 65536) -> str:
    """The last `count` lines of `path`, read backwards from the end in blocks."""
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= count and len(data) < (8 << 20):
            step = min(block, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.splitlines(keepends=True)
    return b"".join(lines[-count:]).decode("utf-8", "replace")


def os_report() -> str:
    """Uptime, load, memory, file systems and the busiest processes, from /proc."""
    out: List[str] = []
    uptime = float(_read("/proc/uptime").split()[0] or 0)
    load = " ".join(_read("/proc/loadavg").split()[:3])
    out.append(f"up {uptime / 86400:.1f} days; load {load}; {os.cpu_count()} CPUs")
    mem = {}
    for line in _read("/proc/meminfo").splitlines():
        name, _, value = line.partition(":")
        if value.split():
            mem[name] = int(value.split()[0]) * 1024
    if mem:
        out.append(f"memory: {_gib(mem.get('MemTotal', 0))} total, {_gib(mem.get('MemAvailable', 0))} "
                   f"available; swap {_gib(mem.get('SwapTotal', 0) - mem.get('SwapFree', 0))} used of "
                   f"{_gib(mem.get('SwapTotal', 0))}")
    out.append("file systems:")
    seen = set()
    for line in _read("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) < 3 or not parts[0].startswith("/dev/") or parts[1] in seen:
            continue
        seen.add(parts[1])
        try:
            stats = os.statvfs(parts[1])
        except OSError:
            continue
        total = stats.f_blocks * stats.f_frsize
        free = stats.f_bavail * stats.f_frsize
        used = 100.0 * (total - free) / total if total else 0.0
        out.append(f"  {parts[1]:<30} {parts[2]:<8} {_gib(total):>10} {used:5.1f}% used")
    before = _processes()
    time.sleep(0.5)
    after = _processes()
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = []
    for pid, (name, cpu, rss) in after.items():
        used_cpu = (cpu - before.get(pid, (name, cpu, rss))[1]) / ticks / 0.5 * 100
        busy.append((used_cpu, rss, pid, name))
    busy.sort(reverse=True)
    out.append("busiest processes (CPU over 0.5 s):")
    out.append(f"  {'pid':>7} {'cpu%':>6} {'rss':>10}  command")
    for used_cpu, rss, pid, name in busy[:10]:
        out.append(f"  {pid:>7} {used_cpu:6.1f} {_gib(rss):>10}  {name}")
    return "\n".join(out) + "\n"


def _processes() -> Dict[int, tuple]:
    found: Dict[int, tuple] = {}
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        text = _read(f"/proc/{entry}/stat")
        if ")" not in text:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        if len(fields) < 22:
            continue
        found[int(entry)] = (name, int(fields[11]) + int(fields[12]), int(fields[21]) * page)
    return found


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _gib(count: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(count) >= size:
            return f"{count / size:.1f} {unit}"
    return f"{int(count)} B"


# -- the program ----------------------------------------------------------------------


def _spec_from_fd(fd: Optional[int]) -> tuple:
    """(the MySQL connection settings, whether a privileged account was allowed)."""
    if fd is None:
        return None, False
    with os.fdopen(fd, "rb") as handle:
        data = json.loads(handle.read() or b"null")
    if not isinstance(data, dict):
        return None, False
    from collectors.mysql.session import ConnectSpec

    known = {k: v for k, v in data.items() if k in ConnectSpec.__dataclass_fields__}
    return ConnectSpec(**known), data.get(ALLOW_PRIVILEGED) is True


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mydiag-console")
    parser.add_argument("--session", default="")
    parser.add_argument("--engineer", default="")
    parser.add_argument("--purpose", default="")
    parser.add_argument("--spec-fd", type=int)
    parser.add_argument("--command")
    parser.add_argument("--budget", type=float, help="statement seconds for the whole remote session")
    args = parser.parse_args(argv)
    # The console is the only process of its session: job control would stop it for good.
    for name in ("SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGQUIT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    spec, allow_privileged = _spec_from_fd(args.spec_fd)

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    console = Console(spec, out, Path.cwd(), allow_privileged=allow_privileged, budget=args.budget)
    try:
        refusal = console.admit()
        if refusal is not None:
            out(f"mydiag: {refusal}\n")
            return EXIT_REFUSED
        if args.command is not None:
            return console.run_line(args.command)
        return _interactive(console, args, out)
    finally:
        console.close()


def _interactive(console: Console, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    out(f"mydiag diag session {args.session} for {args.engineer}: {args.purpose}\n"
        "read-only diagnostics; type `help` for the commands, `exit` to leave\n")
    sql_mode = False
    pending = ""
    while True:
        prompt = ("    -> " if pending else "sql> ") if sql_mode else "mydiag> "
        try:
            line = _read_line(prompt, out)
        except KeyboardInterrupt:
            out("^C\n")
            pending = ""
            continue
        if line is None:
            out("\n")
            return 0
        stripped = line.strip()
        if sql_mode:
            if not pending and stripped.lower() in ("exit", "quit", "\\q", "exit;", "quit;"):
                sql_mode = False
                continue
            if not pending and sqlcheck.is_client_command(stripped):
                # Like the mysql client, a backslash or client command acts at once (here: refused).
                console.run_line(f"sql {stripped}")
                continue
            pending = f"{pending}\n{line}" if pending else line
            if not (pending.rstrip().endswith(";") or pending.rstrip().endswith("\\G")
                    or pending.rstrip().endswith("\\g")):
                continue
            statement, pending = pending, ""
            try:
                console.run_line(f"sql {statement}")
            except KeyboardInterrupt:
                out("^C (statement interrupted)\n")
                console._session = None
            continue
        if stripped.lower() in ("exit", "quit", "logout"):
            return 0
        if stripped.lower() == "sql":
            sql_mode = True
            out("SQL prompt: read-only statements ending with ; or \\G; `exit` goes back\n")
            continue
        try:
            console.run_line(stripped)
        except KeyboardInterrupt:
            out("^C (interrupted)\n")
            console._session = None


def _read_line(prompt: str, out: Callable[[str], None]) -> Optional[str]:
    out(prompt)
    line = sys.stdin.readline()
    if not line:
        return None
    return line.rstrip("\r\n")


if __name__ == "__main__":
    sys.exit(main())
