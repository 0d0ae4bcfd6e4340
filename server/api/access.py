"""Who may call what: the bearer token behind a request, and the engineer-only gate.

`who` answers 401 without a token or with one that is invalid or expired. Given a
ticket, it answers 404 for a ticket the caller may not see, exactly like one that does
not exist. What a route allows beyond that (enrolling, granting) the route says itself.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Optional

from server import auth
from server.api.errors import ApiError
from server.api.routing import read
from server.storage.db import Tx
from server.storage.state import State
from server.support import tickets

#: `await who(authorization, ticket_id=None)`: the principal, or an ApiError.
Who = Callable[..., Awaitable[auth.Principal]]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def who_for(state: State) -> Who:
    """The `who` of the routes that serve `state`."""

    async def who(authorization: Optional[str], ticket_id: Optional[str] = None) -> auth.Principal:
        token = auth.bearer(authorization)
        if token is None:
            raise ApiError(401, "an Authorization: Bearer token is required", dict(_CHALLENGE))

        def find(tx: Tx) -> Optional[auth.Principal]:
            principal = auth.resolve(tx, token)
            if principal is None or ticket_id is None:
                return principal
            if not principal.may_see(ticket_id):
                raise ApiError(404, "no such ticket")
            # An upload token's own ticket was read with the token (auth.resolve): it exists.
            if principal.kind != "upload" and tickets.get_ticket(tx, ticket_id) is None:
                raise ApiError(404, "no such ticket")
            return principal

        principal = await read(state, find)
        if principal is None:
            raise ApiError(401, "the token is invalid or expired", dict(_CHALLENGE))
        return principal

    return who


def engineer_only(principal: auth.Principal) -> None:
    if not principal.is_engineer:
        raise ApiError(403, "only support engineers may do this")
