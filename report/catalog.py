# isort: skip_file
"""Every rule module, imported once so their declarations register.

Whoever needs every rule (the engine, `--explain`, the docs generator) imports this module;
the registry itself imports no rule.
"""

from typing import List

from report import registry
from report.rules import memory  # noqa: F401
from report.rules import innodb  # noqa: F401
from report.rules import redo  # noqa: F401
from report.rules import connections  # noqa: F401
from report.rules import workload  # noqa: F401
from report.rules import caches  # noqa: F401
from report.rules import binlog  # noqa: F401
from report.rules import replication  # noqa: F401
from report.rules import errorlog  # noqa: F401
from report.rules import security  # noqa: F401
from report.rules import schema  # noqa: F401
from report.rules import perfschema  # noqa: F401
from report.rules import host  # noqa: F401


def rules() -> List[registry.Rule]:
    return registry.all_rules()
