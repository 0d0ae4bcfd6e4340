"""Options whose configured value differs from the value the server runs with.

Configured means the server's option files (its groups only: [mysqld], [server],
[mariadb], … and their version and suffix variants), then mysqld's command line,
later settings winning as they do in the server. A difference means a SET GLOBAL
since start-up, a file edited after it, or a value the server adjusted.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterator, List, Optional, Tuple

from collectors.config.search import read_server_files, server_groups
from collectors.config.values import same, variable_name
from collectors.os.mysqld import find, running_variables
from collectors.registry import PROFILES, Artifact, CollectorError, Context, Need, collector

#: Options about where options come from, not settings of the server.
_META = {"defaults-file", "defaults-extra-file", "no-defaults", "defaults-group-suffix",
         "print-defaults"}
#: Secret-bearing options are not compared: the server masks or hides their values anyway.
_SECRET = re.compile(r"password|passwd|secret|token|credential|_auth$", re.I)


@collector("config.effective", profiles=PROFILES, needs=[Need.MYSQL], timeout=10)
def effective(ctx: Context) -> Iterator[Artifact]:
    """Configured (files, command line) versus running values (SHOW GLOBAL VARIABLES)."""
    running = running_variables(ctx)
    if running is None:
        raise CollectorError("SHOW GLOBAL VARIABLES could not be read: nothing to compare with")
    server = find(ctx).found
    order, parsed, notes = read_server_files(server)
    for note in notes + parsed.notes:
        ctx.notes.add(note)
    groups = server_groups(server, ctx.session.flavor.version)
    settings = configured_settings(parsed, groups, server.cmdline if server else [])
    final: Dict[str, Tuple[str, Optional[str], str]] = {}
    not_variables: List[Dict[str, str]] = []
    not_compared: List[Dict[str, str]] = []
    for option, value, where in settings:
        name, implied = variable_name(option, running)
        if name is None:
            not_variables.append({"option": option, "set_in": where})
        elif _SECRET.search(name):
            not_compared.append({"option": option, "set_in": where, "reason": "holds a secret"})
        else:
            final[name] = (option, implied if implied is not None else value, where)
    differences: List[Dict[str, Any]] = []
    for name, (option, value, where) in sorted(final.items()):
        if not same(value, running[name]):
            differences.append({"variable": name, "option": option, "set_in": where,
                                "configured": value, "running": running[name]})
    yield Artifact.json("config/effective_diff.json", {
        "files": parsed.files,
        "groups": groups,
        "command_line": bool(server),
        "compared": len(final),
        "same": len(final) - len(differences),
        "differences": differences,
        "not_variables": not_variables,
        "not_compared": not_compared,
    })


def configured_settings(parsed: Any, groups: List[str], cmdline: List[str]
                        ) -> List[Tuple[str, Optional[str], str]]:
    """(option, value, where) in the order the server applies them: files, then its command line."""
    wanted = {g.lower() for g in groups}
    settings = [(o.key, o.value, f"{o.file}:{o.line}") for o in parsed.options
                if o.section.lower() in wanted]
    for arg in cmdline[1:]:
        if not arg.startswith("--"):
            continue
        key, sep, value = arg[2:].partition("=")
        if key.replace("_", "-").lower() not in _META:
            settings.append((key, value if sep else None, "command line"))
    return settings
