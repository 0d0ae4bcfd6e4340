"""The append-only audit log: every state-changing action, who did it, to what.

Rows are only ever inserted (database triggers refuse UPDATE and DELETE). The detail
never holds a token, a key's secret half or a bundle's content.
"""

from __future__ import annotations

import json
import time
from typing import Any, Dict, List, Optional

from server.storage.db import Tx


def record(tx: Tx, actor: str, action: str, ticket_id: Optional[str] = None,
           subject: Optional[str] = None, **detail: Any) -> None:
    tx.put(
        "INSERT INTO audit (at, actor, action, ticket_id, subject, detail) VALUES (?, ?, ?, ?, ?, ?)",
        (time.time(), actor, action, ticket_id, subject, json.dumps(detail, sort_keys=True)),
    )


def entries(tx: Tx, ticket_id: Optional[str] = None, limit: int = 1000) -> List[Dict[str, Any]]:
    where, params = ("WHERE ticket_id = ?", [ticket_id]) if ticket_id else ("", [])
    rows = tx.all(f"SELECT seq, at, actor, action, ticket_id, subject, detail FROM audit {where} "
                  "ORDER BY seq DESC LIMIT ?", [*params, limit])
    for row in rows:
        row["detail"] = json.loads(row["detail"] or "{}")
    return rows
