"""The systemd units of the MySQL/MariaDB service and their drop-ins, copied as text.

Limits (LimitNOFILE, LimitMEMLOCK), OOMScoreAdjust, Environment= and ExecStart= live
here, and drop-ins under `<unit>.d/*.conf` override the unit, in systemd's own order.
"""

from __future__ import annotations

import fnmatch
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from collectors.config.option_files import copy_path
from collectors.mysql.optionfile import looks_binary
from collectors.os.mysqld import find
from collectors.os.procfs import Reader
from collectors.registry import PROFILES, Artifact, Context, Skip, collector

#: systemd's unit search path, highest priority first.
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")
UNIT_PATTERNS = ("mysql*.service", "mysqld*.service", "mariadb*.service", "mysql*.socket",
                 "mariadb*.socket", "percona*.service")
_LIMIT = 1 << 20
_MAX_FILES = 100


def find_units(dirs: Sequence[str] = UNIT_DIRS) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Units and drop-ins of the server, each once (merged /usr and /lib give one real file)."""
    found: List[Dict[str, Any]] = []
    notes: List[str] = []
    seen: set = set()
    for folder in dirs:
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        except OSError as exc:
            notes.append(f"{folder}: cannot list ({exc.strerror})")
            continue
        for name in names:
            path = os.path.join(folder, name)
            if name.endswith(".d") and _matches(name[:-2]) and os.path.isdir(path):
                for conf in _drop_ins(path, notes):
                    _add(found, seen, conf, "drop-in", name[:-2])
            elif _matches(name):
                _add(found, seen, path, "unit", name)
    return found[:_MAX_FILES], notes


def server_services(dirs: Sequence[str] = UNIT_DIRS) -> List[str]:
    """The installed server services (not aliases, masks or templates): `mariadb.service`."""
    units, _ = find_units(dirs)
    names = [u["unit"] for u in units if u["kind"] == "unit" and u["unit"].endswith(".service")
             and "@" not in u["unit"] and not u.get("masked") and "alias_of" not in u]
    return list(dict.fromkeys(names))


def _matches(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in UNIT_PATTERNS)


def _drop_ins(folder: str, notes: List[str]) -> List[str]:
    try:
        return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if n.endswith(".conf")]
    except OSError as exc:
        notes.append(f"{folder}: cannot list ({exc.strerror})")
        return []


def _add(found: List[Dict[str, Any]], seen: set, path: str, kind: str, unit: str) -> None:
    real = os.path.realpath(path)
    entry: Dict[str, Any] = {"path": path, "kind": kind, "unit": unit}
    if os.path.islink(path):
        target = os.readlink(path)
        entry["link_to"] = target
        if target == "/dev/null":
            entry["masked"] = True
        elif os.path.basename(target) != os.path.basename(path):
            entry["alias_of"] = os.path.basename(target)
    entry["copy"] = real not in seen and not entry.get("masked") and "alias_of" not in entry
    seen.add(real)
    found.append(entry)


@collector("config.systemd", profiles=PROFILES, timeout=5)
def systemd_units(ctx: Context) -> Iterator[Artifact]:
    """The mysqld/mariadb service units, aliases and drop-ins, and the running server's unit."""
    units, notes = find_units()
    for note in notes:
        ctx.notes.add(note)
    unit = running_unit(ctx)
    if not units:
        raise Skip("no mysql/mariadb systemd unit on this host (the server is not run by systemd)")
    for entry in units:
        if not entry.pop("copy"):
            continue
        text = _read(entry["path"], ctx)
        if text is not None:
            entry["copied_as"] = copy_path("config/systemd", entry["path"])
            yield Artifact.text(entry["copied_as"], text)
    yield Artifact.json("config/systemd_units.json", {"running_server_unit": unit,
                                                      "files": units})


def running_unit(ctx: Context) -> Optional[str]:
    """The unit whose cgroup holds the server process (`…/mariadb.service`), if any."""
    server = find(ctx).found
    if server is None:
        return None
    for line in (Reader().text(f"/proc/{server.pid}/cgroup") or "").splitlines():
        for part in reversed(line.rsplit(":", 1)[-1].split("/")):
            if part.endswith(".service"):
                return part
    return None


def _read(path: str, ctx: Context) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_LIMIT + 1)
    except OSError as exc:
        denied = isinstance(exc, PermissionError)
        ctx.notes.add(f"{path}: cannot read ({exc.strerror})" + ("; run as root to include it"
                                                                 if denied else ""), partial=denied)
        return None
    if looks_binary(raw):
        ctx.notes.add(f"{path}: binary content, not included")
        return None
    if len(raw) > _LIMIT:
        ctx.notes.add(f"{path}: larger than 1 MiB, only the first MiB included")
    return raw[:_LIMIT].decode("utf-8", "replace")
