"""A session's calls to the support server: ask it for the grant, tell it of a revocation.

Over the ticket's client (agent.remote.transport.Client). The grant comes back with the
gateway the engineer joins through (or the one --gateway names) and a tunnel key made
here for this one session; the key's private half never leaves the host.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from typing import Any, Callable, Optional

from agent.remote.transport import API, Transient
from agent.session.grant import Grant
from agent.session.tunnel import new_key, public_line


class Unreachable(Exception):
    """The support server could not be reached."""


class GrantRefused(Exception):
    """The support server answered, and did not grant the session."""


def ask_grant(client: Any, ticket: str, mode: str, engineer: str, seconds: float, purpose: str,
              gateway: Optional[tuple]) -> tuple:
    """(the Grant, its tunnel key) for the ticket, from the server."""
    key = new_key()
    body = {"engineer": engineer, "seconds": seconds, "purpose": purpose, "mode": mode,
            "tunnel_key": public_line(key), "host": socket.gethostname()}
    path = f"{API}/tickets/{urllib.parse.quote(ticket, safe='')}/sessions"
    try:
        reply = client.post_json(path, body)
    except Transient as exc:
        raise Unreachable(str(exc)) from None
    data = reply.json()
    if reply.status != 201 or not isinstance(data, dict):
        raise GrantRefused(f"the server refused the grant: {reply.error()}")
    offered = data.get("gateway") or {}
    host = gateway[0] if gateway else offered.get("host") or urllib.parse.urlsplit(client.server).hostname
    port = gateway[1] if gateway else int(offered.get("port") or 0)
    grant = Grant(id=str(data["id"]), engineer=str(data["engineer"]), mode=str(data["mode"]),
                  purpose=str(data["purpose"]), ticket=ticket, server=client.server,
                  host=str(data.get("host") or socket.gethostname()),
                  expires=time.time() + float(data.get("expires_in") or 0), gateway_host=str(host),
                  gateway_port=port, host_key=str(offered.get("host_key") or ""))
    return grant, key


def revoke_notifier(client: Any, grant: Grant) -> Callable[[str], bool]:
    """What the holder calls when the customer ends the session: whether the server heard it."""

    def notify(reason: str) -> bool:
        path = (f"{API}/tickets/{urllib.parse.quote(grant.ticket, safe='')}/sessions/"
                f"{urllib.parse.quote(grant.id, safe='')}/revoke")
        try:
            client.timeout = 3.0
            return client.post_json(path, {}).status == 200
        except Transient:
            return False

    return notify
