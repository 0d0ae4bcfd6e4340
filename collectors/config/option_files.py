"""Every option file the server reads, in its search order, copied as text.

Includes are followed (`!include`, `!includedir`, with loop protection) by the same
parser the connection options use; each file is copied as it was parsed. Secrets in
them are the redaction pipeline's job, which every artifact passes through.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, Dict, Iterator, List

from bundle.paths import member_problem
from collectors.config.search import read_server_files
from collectors.os.mysqld import find
from collectors.registry import PROFILES, Artifact, Context, collector

COPY_ROOT = "config/files"


def copy_path(root: str, path: str) -> str:
    """Bundle path of a copied file: its absolute path under `root` (ls finds it by name).

    A path that cannot name a member (longer than a member path may be, a control
    character, not UTF-8) is copied as `root/by-hash/<digest>-<its name's safe letters>`;
    the collector's listing still gives the original path next to it.
    """
    plain = f"{root}/{os.path.abspath(path).lstrip('/')}"
    if member_problem(plain) is None:
        return plain
    digest = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
    name = _UNSAFE.sub("_", os.path.basename(path))[:64].strip("._") or "file"
    return f"{root}/by-hash/{digest}-{name}"


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def add_parser_notes(ctx: Context, notes: List[str]) -> None:
    """Parser notes into the manifest; an unreadable file makes the collector partial."""
    for note in notes:
        denied = "Permission denied" in note
        ctx.notes.add(note + ("; run as root to include it" if denied else ""), partial=denied)


@collector("config.option_files", profiles=PROFILES, timeout=10)
def option_files(ctx: Context) -> Iterator[Artifact]:
    """The server's option files (search order, includes) and where each was found."""
    search = find(ctx)
    order, parsed, notes = read_server_files(search.found)
    if search.found is None and search.reason:
        ctx.notes.add(search.reason)
    for note in notes:
        ctx.notes.add(note)
    add_parser_notes(ctx, parsed.notes)
    read = {os.path.realpath(p) for p in parsed.files}
    candidates: List[Dict[str, Any]] = []
    for candidate in order:
        candidates.append({"path": candidate.path, "role": candidate.role,
                           "status": _status(candidate.path, read)})
    copies = {}
    for path, text in parsed.texts.items():
        copies[path] = copy_path(COPY_ROOT, path)
        yield Artifact.text(copies[path], text)
    yield Artifact.json("config/option_files.json", {
        "server_pid": search.found.pid if search.found else None,
        "search_order": candidates,
        "files_read": parsed.files,
        "copied_as": copies,
    })


def _status(path: str, read: set) -> str:
    try:
        os.stat(path)
    except FileNotFoundError:
        return "absent"
    except PermissionError:
        return "unreadable"
    except OSError as exc:
        return f"error: {exc.strerror}"
    if os.path.realpath(path) in read:
        return "read"
    return "unreadable" if not os.access(path, os.R_OK) else "skipped (see notes)"
