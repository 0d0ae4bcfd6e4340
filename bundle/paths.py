"""Bundle file names: `mydiag-<host>-<UTC yyyymmddThhmmssZ>.tar.zst`."""

from __future__ import annotations

import datetime as _dt
import re
from typing import Optional

SUFFIX = ".tar.zst"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def bundle_name(host: str, moment: _dt.datetime) -> str:
    stamp = moment.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = _UNSAFE.sub("_", host).strip("._") or "host"
    return f"mydiag-{safe}-{stamp}{SUFFIX}"


#: The longest member path, in UTF-8 bytes (readers may be given a lower bound).
MAX_MEMBER_PATH = 255


def member_problem(path: str, max_bytes: int = MAX_MEMBER_PATH) -> Optional[str]:
    """Why `path` may not name a bundle member (docs/bundle-format.md), or None when it may.

    Relative, `/`-separated, no empty, `.` or `..` component, no backslash, no control
    or invisible character (bidi overrides, line separators), valid UTF-8 (a name read
    with surrogateescape carries lone surrogates), at most `max_bytes`: extracting it
    anywhere cannot leave the target folder, and printing it cannot drive a terminal.
    """
    if not path:
        return "an empty path"
    if any("\ud800" <= c <= "\udfff" for c in path):
        return "a path that is not UTF-8"
    if len(path.encode()) > max_bytes:
        return f"a path longer than {max_bytes} bytes"
    if path.startswith("/"):
        return "an absolute path"
    if "\\" in path:
        return "a backslash in the path"
    if not path.replace(" ", "").isprintable():
        return "a control or invisible character in the path"
    parts = path.split("/")
    if "" in parts:
        return "an empty path component (`//` or a trailing `/`)"
    if "." in parts or ".." in parts:
        return "a `.` or `..` path component"
    return None


def member_ok(path: str) -> bool:
    """A member path is relative, normalized and free of `..`: safe to extract."""
    return member_problem(path) is None
