"""What every route module shares: the prefix, the documented error answers, and a transaction off the loop.

A route's work on the database is one function of a transaction: `read` and `write` run
it in a worker thread (the event loop never waits on the database) inside one
transaction, read-only or not, and hand back what it returned or raised.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from server.storage.state import State

API = "/api/v1"


class ErrorOut(BaseModel):
    error: str


#: The error answers every route documents: `{"error": "..."}` under each status it may send.
ERRORS: Dict[int, Dict[str, Any]] = {
    code: {"model": ErrorOut}
    for code in (400, 401, 403, 404, 409, 410, 412, 413, 415, 422, 423, 429, 431, 460)
}


async def read(state: State, work: Callable[..., Any], *args: Any) -> Any:
    """`work(tx, *args)` in a read-only transaction, in a worker thread."""
    return await run_in_threadpool(_in_tx, state, False, work, args)


async def write(state: State, work: Callable[..., Any], *args: Any) -> Any:
    """`work(tx, *args)` in a read-write transaction, in a worker thread."""
    return await run_in_threadpool(_in_tx, state, True, work, args)


def _in_tx(state: State, writes: bool, work: Callable[..., Any], args: tuple) -> Any:
    with state.db.tx(write=writes) as tx:
        return work(tx, *args)
