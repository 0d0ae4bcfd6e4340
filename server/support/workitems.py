"""(issue 15: being written) workitems."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

from server.storage.db import Tx


def timeline_entries(tx: Tx, ticket_id: str, engineer: bool) -> List[Tuple[float, Dict[str, Any]]]:
    """(epoch, timeline entry) pairs for support/timeline.py (none yet)."""
    return []
