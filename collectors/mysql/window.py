"""The MySQL sampling window: one schedule for every MySQL sampler, opened by mysql.status.

`mysql.status` takes sample 0 before any other collector sends a statement that could
open a table or fill a cache (the runner waits for `OPENED`), and its start is the anchor
the other MySQL samplers keep to: sample N of every MySQL file is due at the same moment
(`ts` says when it was taken). Start-and-end readings (InnoDB status, performance_schema)
are taken at sample 0 and at the last sample.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from bundle.manifest import stamp
from collectors.mysql.session import MissingPrivilege, NotAvailable, StatementTimeout
from collectors.mysql.sql import Statement
from collectors.registry import Context

#: The collector whose first sample opens the window.
OPENER = "mysql.status"
#: ctx.shared keys: a threading.Event the runner waits on, and the window's monotonic start.
OPENED = "mysql.window.opened"
START = "mysql.window.start"
#: ctx.shared key: a callable giving the connection ids mydiag itself holds (set by the runner).
OWN_CONNECTIONS = "mysql.own_connections"


def ticks(ctx: Context) -> Iterator[Tuple[int, str]]:
    """(index, UTC timestamp) at each sample of the window, anchored at its start.

    A sampler that starts late takes the samples already due at once, then keeps the
    schedule (not the gaps) so rates use the real spacing.
    """
    start = ctx.shared.setdefault(START, time.monotonic())
    for index in range(ctx.readings):
        time.sleep(max(0.0, start + index * ctx.interval - time.monotonic()))
        yield index, stamp()


def opened(ctx: Context) -> None:
    """Tell the runner that sample 0 is taken: the other collectors may start."""
    event = ctx.shared.get(OPENED)
    if event is not None:
        event.set()


def start_and_end(ctx: Context) -> Iterator[Tuple[str, str]]:
    """("start", timestamp) at once, then ("end", timestamp) at the window's last sample;
    only the start when the window has one sample (the quick profile)."""
    count = ctx.readings
    start = ctx.shared.setdefault(START, time.monotonic())
    yield "start", stamp()
    if count > 1:
        time.sleep(max(0.0, start + (count - 1) * ctx.interval - time.monotonic()))
        yield "end", stamp()


def own_connections(ctx: Context) -> set:
    """The connection ids of mydiag's own sessions (never the customer's threads)."""
    own = ctx.shared.get(OWN_CONNECTIONS)
    ids = set(own()) if callable(own) else set()
    if ctx.session is not None and ctx.session.connection_id is not None:
        ids.add(ctx.session.connection_id)
    return ids


def read(ctx: Context, stmt: Statement, index: int, readable: Set[str]) -> Optional[List[Dict[str, Any]]]:
    """One sample's rows of `stmt`, or None with a note. A statement stopped by its time
    limit (or by the runner's interrupt of a shared connection) costs this sample only; a
    missing privilege or table takes `stmt` out of `readable` for the rest of the window.
    A lost server is not caught: the sampler stops."""
    try:
        return ctx.session.query(stmt)
    except StatementTimeout as exc:
        ctx.notes.add(f"sample {index}: {exc.reason}", partial=True)
    except MissingPrivilege as exc:
        readable.discard(stmt.name)
        ctx.notes.add(exc.reason + (f"; to enable: {exc.fix}" if exc.fix else ""), partial=True)
    except NotAvailable as exc:
        readable.discard(stmt.name)
        ctx.notes.add(exc.reason)
    return None
