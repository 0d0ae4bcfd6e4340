# isort: skip_file
"""Every collector module, imported once so their declarations register; the full list.

The import order is the run order (and the order of the manifest and summary):
who the server is first, then what it is doing, then the heavier overviews. Whoever
needs every collector (the runner, the summary, the diag console) asks this module;
the registry itself imports no collector.
"""

from typing import List

from collectors.mysql import identity  # noqa: F401
from collectors.mysql import variables  # noqa: F401
from collectors.mysql import processlist  # noqa: F401
from collectors.mysql import innodb  # noqa: F401
from collectors.mysql import metadata_locks  # noqa: F401
from collectors.mysql import replication  # noqa: F401
from collectors.mysql import schema  # noqa: F401
from collectors.mysql import table_facts  # noqa: F401
from collectors.mysql import accounts  # noqa: F401
from collectors.mysql import stored_objects  # noqa: F401
from collectors.mysql import plugins  # noqa: F401
from collectors.mysql import perfschema  # noqa: F401
from collectors.mysql import cluster  # noqa: F401
from collectors.mysql import replicas  # noqa: F401
from collectors.mysql import thread_memory  # noqa: F401
from collectors.mysql import status  # noqa: F401
from collectors.mysql import share  # noqa: F401
from collectors.os import host  # noqa: F401
from collectors.os import cpu  # noqa: F401
from collectors.os import memory  # noqa: F401
from collectors.os import sysctl  # noqa: F401
from collectors.os import thp  # noqa: F401
from collectors.os import numa  # noqa: F401
from collectors.os import disks  # noqa: F401
from collectors.os import tcp  # noqa: F401
from collectors.os import mysqld_process  # noqa: F401
from collectors.os import mysqld_memory  # noqa: F401
from collectors.os import stacks  # noqa: F401
from collectors.os import oom  # noqa: F401
from collectors.os import kernel_log  # noqa: F401
from collectors.os import cpu_usage  # noqa: F401
from collectors.os import disk_io  # noqa: F401
from collectors.os import network  # noqa: F401
from collectors.os import vmstat  # noqa: F401
from collectors.os import processes  # noqa: F401
from collectors.config import option_files  # noqa: F401
from collectors.config import persisted  # noqa: F401
from collectors.config import systemd  # noqa: F401
from collectors.config import extra  # noqa: F401
from collectors.config import effective  # noqa: F401
from collectors.logs import error_log  # noqa: F401
from collectors.logs import journal  # noqa: F401
from collectors.logs import slow_log  # noqa: F401
from collectors.registry import Collector, registered


def all_collectors() -> List[Collector]:
    """Every collector, in run order."""
    return registered()


def collectors_for(profile: str) -> List[Collector]:
    """The collectors of `profile`, in run order."""
    return [c for c in registered() if profile in c.profiles]
