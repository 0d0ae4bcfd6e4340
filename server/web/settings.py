"""The web pages' settings, from the environment of `mydiag-server run`.

- `MYDIAG_WEB_IDLE_HOURS`: a web session unused this long ends (default 12).
- `MYDIAG_PUBLIC_URL`: the address engineers open (e.g. `https://support.example.com`);
  when it is https, cookies are marked Secure even if TLS ends at a proxy in front. It is
  also the origin of the customers' sign-in links (without it: the request's own origin).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

#: Failed sign-ins allowed per account and per address within the window; one more is 429.
SIGNIN_FAILURES = 10
SIGNIN_WINDOW_SECONDS = 15 * 60
#: A session ends this long after sign-in, however busy (the idle limit ends it sooner).
SESSION_MAX_SECONDS = 7 * 86400


@dataclass(frozen=True)
class WebSettings:
    idle_seconds: float = 12 * 3600.0
    public_https: bool = False
    public_url: str = ""

    @classmethod
    def from_environment(cls) -> WebSettings:
        hours = os.environ.get("MYDIAG_WEB_IDLE_HOURS", "")
        try:
            idle = float(hours) * 3600.0 if hours else cls.idle_seconds
        except ValueError:
            idle = cls.idle_seconds
        if not 60.0 <= idle <= SESSION_MAX_SECONDS:
            idle = cls.idle_seconds
        public = os.environ.get("MYDIAG_PUBLIC_URL", "").strip().lower()
        return cls(idle_seconds=idle, public_https=public.startswith("https://"),
                   public_url=os.environ.get("MYDIAG_PUBLIC_URL", "").strip().rstrip("/"))
