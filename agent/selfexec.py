"""How this installation of mydiag starts a Python module of its own in a child process.

From a venv or a package, `python -m MODULE` finds the agent on the child's path. From the
single file (`python3 mydiag.pyz`) or its unzipped tree (/usr/lib/mydiag), it does not: the
bootstrap (packaging/pyz_main.py) sets `ENTRY` to the file or tree it runs from, and the
child runs that entry again with MYDIAG_PYZ_MODULE naming the module (the bootstrap runs
only the modules it allows). The interpreter's isolation flags (-I, -S) are passed on.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Dict, List, Optional, Tuple

#: The pyz file or tree this process was started from (set by its bootstrap), else None.
ENTRY: Optional[str] = None
#: The environment variable through which a child of the pyz is told which module to run.
MODULE_VARIABLE = "MYDIAG_PYZ_MODULE"


def _flags() -> List[str]:
    flags = []
    if sys.flags.isolated:
        flags.append("-I")
    elif sys.flags.no_user_site:
        flags.append("-s")
    if sys.flags.no_site:
        flags.append("-S")
    return flags


def module_command(module: str) -> Tuple[List[str], Dict[str, str]]:
    """The argv that runs `module` as __main__ in this installation, and what to add to its
    environment."""
    if ENTRY is None:
        return [sys.executable, *_flags(), "-m", module], {}
    extra = {MODULE_VARIABLE: module}
    if os.environ.get("MYDIAG_HOME"):
        extra["MYDIAG_HOME"] = os.environ["MYDIAG_HOME"]  # the same extracted copy, not another
    return [sys.executable, *_flags(), ENTRY], extra


def cli_command() -> str:
    """A shell command line that starts `mydiag` as this process was started (for a unit file)."""
    if ENTRY is None:
        argv, _ = module_command("agent.cli")
    else:
        argv = [sys.executable, *_flags(), ENTRY]  # the bootstrap runs agent.cli by default
    return " ".join(shlex.quote(a) for a in argv)
