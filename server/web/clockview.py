"""Times on screen in the viewer's time zone, and a deadline as "time left" or "overdue".

The zone is an IANA name the viewer chose (the `mydiag_tz` cookie, set by POST /timezone);
anything that is not a zone this machine knows counts as UTC. Times stay UTC everywhere
else (database, API); only the text on a page is local.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Dict, Optional

try:
    import zoneinfo
except ImportError:  # pragma: no cover - Python 3.8; the server runs on 3.9+
    zoneinfo = None  # type: ignore[assignment]

TZ_COOKIE = "mydiag_tz"
DEFAULT_ZONE = "UTC"
_ZONE_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def zone_name(value: Optional[str]) -> str:
    """`value` if it names a time zone this machine knows, else UTC."""
    if not value or len(value) > 64 or not _ZONE_SHAPE.fullmatch(value):
        return DEFAULT_ZONE
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return DEFAULT_ZONE
    return value


def viewer_zone(request: Any) -> str:
    """The zone of the viewer of this request (its `mydiag_tz` cookie), else UTC."""
    return zone_name(request.cookies.get(TZ_COOKIE))


def moment(value: Any) -> Optional[datetime.datetime]:
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)
    if isinstance(value, str) and _ISO.fullmatch(value):
        try:
            parsed = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
            return parsed.replace(tzinfo=datetime.timezone.utc)
        except ValueError:
            return None
    return None


def local(value: Any, zone: str) -> str:
    """An epoch or ISO UTC text as `YYYY-MM-DD HH:MM ZONE` in `zone` (other text as is)."""
    found = moment(value)
    if found is None:
        return "–" if value in (None, "") else str(value)
    shown = found.astimezone(zoneinfo.ZoneInfo(zone_name(zone)))
    return f"{shown:%Y-%m-%d %H:%M} {shown.tzname() or zone}"


def span(seconds: float) -> str:
    """A duration as text: `2 d 3 h`, `3 h 20 min`, `45 min`, `under a minute`."""
    minutes = int(abs(seconds) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min" if mins else "under a minute"


def deadline(due_epoch: Optional[float], now: float, zone: str) -> Optional[Dict[str, Any]]:
    """`{"due": local text, "left": "… left" or "overdue by …", "overdue": bool}` or None."""
    if due_epoch is None:
        return None
    overdue = now >= due_epoch
    left = f"overdue by {span(now - due_epoch)}" if overdue else f"{span(due_epoch - now)} left"
    return {"due": local(due_epoch, zone), "left": left, "overdue": overdue}
