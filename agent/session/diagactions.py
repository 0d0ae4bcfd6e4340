"""The diag console's commands: one line in, one read-only action out, or a refusal.

`Console.run_line` dispatches a line to its command (SQL, collectors, log tails, OS state,
help) and turns what went wrong into one `refused:` or `error:` line. The console's one
MySQL session is opened here, and the account is checked each time it is: an account with
more than diagnostics need stops the console unless the customer allowed it.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from agent.session import sqlcheck
from agent.session.diagcollect import collect_bundle, show_collector
from agent.session.diagerrors import Failed, Privileged, Refused
from agent.session.diaghost import last_lines, os_report
from agent.session.diagoutput import redacted, render_result

STATEMENT_TIMEOUT = 10.0
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

    def abandon_session(self) -> None:
        """After an interrupted statement: the next one opens a new session."""
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
        self.out(redacted(render_result(result, checked.vertical)))

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
        from collectors.registry import PROFILES, Need

        words = shlex.split(rest)
        profile = "quick"
        if words[:1] == ["--profile"]:
            if len(words) != 2 or words[1] not in PROFILES:
                raise Refused(f"--profile takes one of {', '.join(PROFILES)}")
            profile = words[1]
            words = []
        if not words:
            if self.spec is None:
                raise Failed("no MySQL connection was configured for this session")
            self.session()  # the account is checked before the collection uses it
            collect_bundle(self.spec, self.workdir / "bundles", profile, self.out)
            return
        known = {c.name: c for c in all_collectors()}
        unknown = [w for w in words if w not in known]
        if unknown:
            raise Refused(f"no collector {', '.join(unknown)} (see `collectors`)")
        for name in words:
            if Need.MYSQL in known[name].needs:
                self.session()  # the account is checked before any collector uses it
            show_collector(known[name], self.spec, self.out, STATEMENT_TIMEOUT)

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
        self.out(redacted(text if text.endswith("\n") or not text else text + "\n"))

    def os_state(self, _rest: str) -> None:
        self.out(os_report())
