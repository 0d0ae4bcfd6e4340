"""A grant's terms as the customer types them: how long, who, why, and the gateway's address.

Each check raises ValueError with the sentence to show (`mydiag session grant` exits 2).
"""

from __future__ import annotations

import re
from typing import Optional

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 24 * 3600


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ValueError(f"--for {text!r}: give a duration such as 90s, 30m or 2h")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= MAX_SECONDS:
        raise ValueError(f"--for {text!r}: a session lasts from 1 second to 24 hours")
    return seconds


def clean(text: str, what: str, limit: int) -> str:
    """`text` without surrounding blanks: at most `limit` printable characters."""
    text = text.strip()
    if len(text) > limit or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"{what} must be at most {limit} printable characters")
    return text


def gateway_address(value: Optional[str]) -> Optional[tuple]:
    """--gateway HOST:PORT as (host, port), or None when not given."""
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--gateway must be HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def span(seconds: float) -> str:
    """A duration the way it is typed: 90s, 30m, 2h."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
