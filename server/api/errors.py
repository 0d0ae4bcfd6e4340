"""The API's one error type: a status, a sentence for the caller, and headers to send.

Every route module raises it; the app answers it as JSON `{"error": "..."}` (HEAD:
headers only). It lives below the routes so that they need not import the app.
"""

from __future__ import annotations

from typing import Dict, Optional


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
