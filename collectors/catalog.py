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
