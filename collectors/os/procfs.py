"""Small, safe reads of /proc and /sys, remembering what only root could read."""

from __future__ import annotations

import datetime as _dt
from typing import Dict, List, Optional

from collectors.registry import Context

#: /proc and /sys files are small; a bound still keeps a surprise from costing memory.
_LIMIT = 1 << 20


def utc_stamp(moment: Optional[_dt.datetime] = None) -> str:
    """UTC, ISO 8601 with milliseconds and a Z: the timestamp of every sample row."""
    moment = moment or _dt.datetime.now(_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def epoch_stamp(seconds: float) -> str:
    return utc_stamp(_dt.datetime.fromtimestamp(seconds, _dt.timezone.utc))


class Reader:
    """Reads files, returning None when absent; unreadable paths are kept for one note."""

    def __init__(self) -> None:
        self.denied: List[str] = []

    def text(self, path: str, limit: int = _LIMIT) -> Optional[str]:
        try:
            with open(path, "rb") as handle:
                return handle.read(limit).decode("utf-8", "replace")
        except PermissionError:
            self.denied.append(path)
        except OSError:
            pass
        return None

    def line(self, path: str) -> Optional[str]:
        text = self.text(path)
        return text.strip() if text is not None else None

    def number(self, path: str) -> Optional[int]:
        value = self.line(path)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    def note_denied(self, ctx: Context, what_root_adds: str) -> None:
        """One manifest note naming what root (or the server's user) would add."""
        if self.denied:
            shown = ", ".join(self.denied[:4]) + (" …" if len(self.denied) > 4 else "")
            ctx.notes.add(f"not readable as this user: {shown}; run as root to add {what_root_adds}")


def key_values(text: Optional[str], sep: str = ":") -> Dict[str, str]:
    """`Key: value` lines (as in /proc/meminfo, /proc/PID/status) as a dict."""
    result: Dict[str, str] = {}
    for line in (text or "").splitlines():
        key, found, value = line.partition(sep)
        if found:
            result[key.strip()] = value.strip()
    return result


def selected(text: Optional[str]) -> Optional[str]:
    """The bracketed choice of a /sys setting such as `always [madvise] never`."""
    if not text:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else text.strip()
