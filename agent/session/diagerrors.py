"""How the diag console says no: a line it will not run, an action that did not work.

Below every console module, so the commands, the collector runs and the program all raise
and catch the same three types; the console turns them into one `refused:` or `error:` line.
"""


class Refused(Exception):
    """A line the console will not run; the message says why."""


class Failed(Exception):
    """An allowed action that did not work (no connection, timeout, missing privilege)."""


class Privileged(Refused):
    """The account the console connects as holds more than diagnostics need."""
