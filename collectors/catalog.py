# isort: skip_file
"""Every collector module, imported once so their declarations register.

The import order is the run order (and the order of the manifest and summary):
who the server is first, then what it is doing, then the heavier overviews.
"""

from collectors.mysql import identity  # noqa: F401
from collectors.mysql import variables  # noqa: F401
from collectors.mysql import processlist  # noqa: F401
from collectors.mysql import innodb  # noqa: F401
from collectors.mysql import replication  # noqa: F401
from collectors.mysql import schema  # noqa: F401
from collectors.mysql import accounts  # noqa: F401
from collectors.mysql import plugins  # noqa: F401
from collectors.mysql import perfschema  # noqa: F401
from collectors.mysql import cluster  # noqa: F401
from collectors.mysql import status  # noqa: F401
from collectors.os import host  # noqa: F401
from collectors.os import cpu  # noqa: F401
from collectors.os import memory  # noqa: F401
from collectors.os import sysctl  # noqa: F401
from collectors.os import thp  # noqa: F401
from collectors.os import numa  # noqa: F401
from collectors.os import disks  # noqa: F401
from collectors.os import tcp  # noqa: F401
from collectors.os import mysqld_process  # noqa: F401
from collectors.os import oom  # noqa: F401
from collectors.os import cpu_usage  # noqa: F401
from collectors.os import disk_io  # noqa: F401
from collectors.os import network  # noqa: F401
from collectors.config import option_files  # noqa: F401
from collectors.config import persisted  # noqa: F401
from collectors.config import systemd  # noqa: F401
from collectors.config import extra  # noqa: F401
from collectors.config import effective  # noqa: F401
from collectors.logs import error_log  # noqa: F401
from collectors.logs import slow_log  # noqa: F401
