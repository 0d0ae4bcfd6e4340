"""Bundle file names: `mydiag-<host>-<UTC yyyymmddThhmmssZ>.tar.zst`."""

from __future__ import annotations

import datetime as _dt
import re

SUFFIX = ".tar.zst"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def bundle_name(host: str, moment: _dt.datetime) -> str:
    stamp = moment.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = _UNSAFE.sub("_", host).strip("._") or "host"
    return f"mydiag-{safe}-{stamp}{SUFFIX}"


def member_ok(path: str) -> bool:
    """A member path is relative, normalized and free of `..`: safe to extract."""
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and all(p not in ("", ".", "..") for p in parts)
