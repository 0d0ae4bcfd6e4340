"""The API's one error type: a status, a sentence for the caller, and headers to send.

Every route module raises it; the app answers it as JSON `{"error": "..."}` (HEAD:
headers only), with `extra` fields next to `error` when a route has more to say (a refused
promise's `earliest_feasible_at` and `must_move`). It lives below the routes so that they
need not import the app.
"""

from __future__ import annotations

from typing import Any, Dict, Optional


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None,
                 extra: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.extra = {k: v for k, v in (extra or {}).items() if k != "error"}
