"""Every collector module, imported once so their declarations register (in run order)."""

from collectors.mysql import (  # noqa: F401
    accounts,
    cluster,
    identity,
    innodb,
    perfschema,
    plugins,
    processlist,
    replication,
    schema,
    status,
    variables,
)
