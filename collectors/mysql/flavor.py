"""The server's flavor and version: one value object that collectors consult."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Tuple

MYSQL = "mysql"
MARIADB = "mariadb"
PERCONA = "percona"

_VERSION_RE = re.compile(r"(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True)
class Flavor:
    """What kind of server this is, parsed once from `@@version` and `@@version_comment`."""

    name: str
    version: Tuple[int, int, int]
    raw: str = ""

    @classmethod
    def parse(cls, version: str, comment: str = "") -> Flavor:
        text = f"{version} {comment}".lower()
        # MariaDB 10.x used to report "5.5.5-10.x.y-MariaDB" over the wire; @@version is clean.
        match = _VERSION_RE.search(version.split("-", 1)[1] if version.startswith("5.5.5-") else version)
        numbers = tuple(int(n) for n in match.groups()) if match else (0, 0, 0)
        if "mariadb" in text:
            name = MARIADB
        elif "percona" in text:
            name = PERCONA
        else:
            name = MYSQL
        return cls(name, numbers, version)  # type: ignore[arg-type]

    @property
    def is_mariadb(self) -> bool:
        return self.name == MARIADB

    @property
    def is_mysql_family(self) -> bool:
        """Oracle MySQL or Percona Server: the same SQL dialect and tables."""
        return self.name in (MYSQL, PERCONA)

    def at_least(self, *version: int) -> bool:
        return self.version >= tuple(version)

    @property
    def label(self) -> str:
        names = {MYSQL: "MySQL", MARIADB: "MariaDB", PERCONA: "Percona Server"}
        return f"{names[self.name]} {'.'.join(map(str, self.version))}"

    # The switch points below are the single source for syntax that changed names.

    @property
    def replica_status_statement(self) -> str:
        if self.is_mariadb:
            if self.at_least(10, 5, 1):
                return "SHOW ALL REPLICAS STATUS"
            return "SHOW ALL SLAVES STATUS"
        return "SHOW REPLICA STATUS" if self.at_least(8, 0, 22) else "SHOW SLAVE STATUS"

    @property
    def binlog_status_statement(self) -> str:
        if self.is_mariadb:
            return "SHOW BINLOG STATUS" if self.at_least(10, 5, 2) else "SHOW MASTER STATUS"
        return "SHOW BINARY LOG STATUS" if self.at_least(8, 2, 0) else "SHOW MASTER STATUS"

    @property
    def has_data_locks(self) -> bool:
        """MySQL 8.0 moved lock waits to performance_schema.data_lock_waits."""
        return self.is_mysql_family and self.at_least(8, 0, 0)

    @property
    def time_limit_variable(self) -> str:
        """The session variable that bounds a statement's run time on the server."""
        return "max_statement_time" if self.is_mariadb else "max_execution_time"

    def time_limit_value(self, seconds: float) -> str:
        # MariaDB counts seconds (fractions allowed), MySQL counts milliseconds.
        if self.is_mariadb:
            return f"{seconds:g}"
        return str(int(seconds * 1000))
