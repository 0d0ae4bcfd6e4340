"""Rules: connections and threads (CONN): the thread cache against the connection churn,
failed and aborted connections, the connection limit, threads running against the CPUs,
connection rates without pooling, idle connections kept open by a long wait_timeout."""

from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional

from report.facts import CPUINFO, setting
from report.facts import cores as cpu_count
from report.finding import Evidence, Hit, Insufficient, NotApplicable
from report.model import Bundle, to_number
from report.registry import rule
from report.window import guarded_ratio

STATUS = "mysql/global_status.jsonl"
VARIABLES = "mysql/global_variables.json"
PROCESSLIST = "mysql/processlist.json"


def _pooled(b: Bundle) -> bool:
    """True when the server runs a thread pool (threads are not one per connection)."""
    return "pool" in (b.variable("thread_handling") or "").lower()


@rule("CONN-01", "The thread cache is too small for the connection churn",
      group="connections", severity="warning", window=True, needs=(STATUS, VARIABLES),
      advice="Raise thread_cache_size to at least the peak of new connections per second × 10 "
             "(SET GLOBAL thread_cache_size=N, then persist it in the option file); MariaDB and "
             "MySQL size it automatically (8 + max_connections / 100) unless it was set lower.",
      risk="A cached thread keeps its stack (thread_stack, about 300 KiB) while idle: small.",
      verify="Threads_created per second over a new window falls to near zero while Connections "
             "keeps its rate; roll back with SET GLOBAL thread_cache_size=<old>.")
def thread_cache_churn(b: Bundle) -> Optional[Hit]:
    """Checks how many new threads the server creates per second during the window, and
    which share of the new connections found no cached thread to reuse.

    **Why it matters**: without a cached thread every connection costs a thread creation
    (a clone(), a stack allocation, the per-thread structures). At tens of connections per
    second this is measurable CPU and latency on every connect.

    **Example**: `thread_cache_size=0` and an application that connects per request: 40
    connections per second, 40 threads created per second, a miss ratio of 100%.

    **Fix**: raise `thread_cache_size` (it is dynamic). Not applicable under a thread pool
    (`thread_handling=pool-of-threads`), where threads are not one per connection.
    """
    if _pooled(b):
        raise NotApplicable("thread_handling is a thread pool")
    w = b.window
    created = w.rate("Threads_created")
    miss = guarded_ratio(w.delta("Threads_created"), w.delta("Connections"), 50, "new connections")
    if created < 1 or miss < 0.1:
        return None
    return Hit(
        f"{created:.1f} new threads per second ({miss:.0%} of the new connections) with "
        f"thread_cache_size={setting(b, 'thread_cache_size')}",
        evidence=[Evidence(STATUS, {"Threads_created_per_s": round(created, 2),
                                    "Connections_per_s": round(w.rate("Connections"), 2),
                                    "miss_ratio": round(miss, 3),
                                    "thread_cache_size": setting(b, "thread_cache_size")},
                           samples=w.evidence_samples("Threads_created"))])


@rule("CONN-02", "Connection attempts fail during the window",
      group="connections", severity="warning", window=True, needs=(STATUS,),
      advice="Find the clients in the error log (log_warnings=2 on MariaDB, log_error_verbosity=3 "
             "on MySQL log each aborted connect with its user and host). Access denied: fix the "
             "client's credentials or the account's grants. Other failures (handshake timeouts, "
             "bad packets): check connect_timeout, the network and port scanners; a host that "
             "keeps failing reaches max_connect_errors and gets blocked.",
      risk="None in reading the log; raising max_connect_errors hides a broken client rather than "
           "fixing it.",
      verify="Aborted_connects and Access_denied_errors stop growing in a new window.")
def aborted_connects(b: Bundle) -> Optional[Hit]:
    """Checks the rate of connection attempts that failed (Aborted_connects) during the
    window, their share of all attempts (Connections counts failed ones too) and how many
    of them were denied access (Access_denied_errors).

    **Why it matters**: a failing client retries, often in a tight loop, and each failed
    attempt costs a thread, an authentication round trip and a log line. Access denied in
    bulk is a wrong password after a rotation — or someone guessing passwords. A host with
    `max_connect_errors` consecutive failures is blocked until `FLUSH HOSTS`.

    **Example**: 3 failed connects per second, 30% of all attempts, all of them access
    denied: an application server still uses the old password.

    **Fix**: the error log names the user and the host; fix the client, or the account.
    """
    w = b.window
    rate = w.rate("Aborted_connects")
    failed = w.delta("Aborted_connects")
    share = guarded_ratio(failed, w.delta("Connections"), 20, "connection attempts")
    if failed < 10 or (rate < 0.1 and share < 0.05):
        return None
    denied = w.delta("Access_denied_errors") if w.has("Access_denied_errors") else None
    values: Dict[str, Any] = {"Aborted_connects_per_s": round(rate, 3), "Aborted_connects": failed,
                              "share_of_attempts": round(share, 3)}
    cause = ""
    if denied is not None:
        values["Access_denied_errors"] = denied
        if denied >= failed * 0.5:
            cause = ", most of them access denied"
    return Hit(f"{failed:.0f} connection attempts failed during the window ({rate:.2f} per second, "
               f"{share:.0%} of all attempts){cause}",
               severity="error" if share >= 0.5 else None,
               evidence=[Evidence(STATUS, values, samples=w.evidence_samples("Aborted_connects"))])


@rule("CONN-03", "Clients disconnect without closing their connection",
      group="connections", severity="notice", window=True, needs=(STATUS, VARIABLES),
      advice="Close connections in the application (or return them to its pool) instead of letting "
             "them die; a pool's idle connections must be recycled before wait_timeout (the pool's "
             "max lifetime below wait_timeout). Look for 'Aborted connection ... (Got timeout "
             "reading communication packets)' versus '(Got an error reading ...)' in the error "
             "log: the first is wait_timeout, the second a client killed or a network cut.",
      risk="None: the change is in the clients.",
      verify="Aborted_clients grows by near zero over a new window.")
def aborted_clients(b: Bundle) -> Optional[Hit]:
    """Checks the rate of connections that ended without a proper close (Aborted_clients)
    during the window: clients killed or crashed, connections cut by the network, or idle
    connections dropped by the server after `wait_timeout`.

    **Why it matters**: an aborted connection can leave a transaction rolled back that the
    application thought committed, and a steady rate of them points at a pool that keeps
    stale connections (and meets "MySQL server has gone away" on its next use) or at a
    network that drops connections.

    **Example**: 0.5 aborted clients per second with `wait_timeout=60` and a pool whose
    idle connections live ten minutes.

    **Fix**: close connections properly; keep a pool's connection lifetime below
    `wait_timeout`; check the network if the log says "error reading".
    """
    w = b.window
    rate = w.rate("Aborted_clients")
    aborted = w.delta("Aborted_clients")
    if aborted < 10 or rate < 0.05:
        return None
    values: Dict[str, Any] = {"Aborted_clients_per_s": round(rate, 3), "Aborted_clients": aborted,
                              "wait_timeout": setting(b, "wait_timeout")}
    with contextlib.suppress(Insufficient):
        values["Connections_per_s"] = round(w.rate("Connections"), 3)
    return Hit(f"{aborted:.0f} connections ended without a close during the window ({rate:.2f} per "
               f"second; wait_timeout={setting(b, 'wait_timeout')})",
               evidence=[Evidence(STATUS, values, samples=w.evidence_samples("Aborted_clients"))])


@rule("CONN-04", "The connections have come close to max_connections",
      group="connections", severity="warning", needs=(STATUS, VARIABLES),
      advice="Find who holds the connections (processlist by user and host): idle pools sized "
             "too large, a leak, or queries piling up behind a lock. Cap the application pools "
             "first; raise max_connections only when the memory allows it (each connection can "
             "allocate its per-session buffers: see the memory findings).",
      risk="Raising max_connections raises the worst-case memory (per-connection buffers × "
           "max_connections) and lets a pile-up grow further before it is refused.",
      verify="Max_used_connections stays below 80% of max_connections (it resets at restart; "
             "FLUSH STATUS resets it too).")
def max_used_connections(b: Bundle) -> Optional[Hit]:
    """Checks the peak of simultaneous connections since start-up (Max_used_connections)
    against `max_connections`.

    **Why it matters**: at `max_connections` new clients get "Too many connections" (only
    one more, for a SUPER / CONNECTION_ADMIN account, is kept in reserve). A peak at 85% or
    more means the next burst is refused.

    **Example**: `max_connections=151`, `Max_used_connections=148`.

    **Fix**: find what holds the connections, cap the pools; raise `max_connections` only
    with the memory to back it.
    """
    peak = b.window.last("Max_used_connections")
    limit = b.number("max_connections")
    # The one extra connection kept for an administrator can take the peak to limit + 1.
    capped = min(peak, limit) if peak is not None and limit is not None else peak
    share = guarded_ratio(capped, limit, 1, "max_connections")
    if share < 0.85:
        return None
    return Hit(f"Max_used_connections={peak:.0f} is {share:.0%} of max_connections={limit:.0f}",
               severity="error" if share >= 1 else None,
               evidence=[Evidence(STATUS, {"Max_used_connections": peak, "max_connections": limit,
                                           "share": round(share, 3)})])


@rule("CONN-05", "Connections were refused at max_connections during the window",
      group="connections", severity="error", window=True, needs=(STATUS,),
      advice="Clients are being refused now. Find what holds the connections (the processlist "
             "by user, host and command: Sleep means idle pools, a long Query list behind one "
             "lock means a pile-up). Cap or fix the pools; kill the blocker of a pile-up; raise "
             "max_connections only when the memory allows it.",
      risk="Raising max_connections during a pile-up lets it grow: more memory, more contention.",
      verify="Connection_errors_max_connections stops growing in a new window.")
def refused_at_max_connections(b: Bundle) -> Optional[Hit]:
    """Checks whether clients were refused with "Too many connections" during the window.
    The server counts them in two places: Connection_errors_max_connections counts only
    the attempts refused before authentication, when even the one connection kept for an
    administrator is taken; an ordinary account refused at `max_connections` is refused
    after it authenticates, and that counts only in Aborted_connects (measured on MariaDB
    10.11: nine `app` connections held at `max_connections=10`, five more refused, the
    counter stayed at 0 and Aborted_connects grew by 5). So the rule also counts the
    attempts that failed after authentication (Aborted_connects less the access denials
    and the attempts that failed before it) when the server reached `max_connections`
    (Max_used_connections), with a medium confidence for that part.

    **Why it matters**: every refused connection is an application error (a failed page,
    a failed job), now, not a risk for later.

    **Example**: Connection_errors_max_connections grows by 120 over a 60-second window,
    Threads_connected at 151 of `max_connections=151`.

    **Fix**: see what holds the connections and cap or fix it.
    """
    w = b.window
    counted = w.delta("Connection_errors_max_connections")
    values: Dict[str, Any] = {"Connection_errors_max_connections": counted}
    inferred = 0.0
    limit, peak = b.number("max_connections"), w.last("Max_used_connections")
    if limit is not None and peak is not None and peak >= limit and w.has("Aborted_connects"):
        others = sum(w.delta(name) for name in ("Access_denied_errors", "Aborted_connects_preauth")
                     if w.has(name))
        inferred = max(0.0, w.delta("Aborted_connects") - others - counted)
        if inferred:
            values.update({"after_authentication": inferred, "Max_used_connections": peak})
    refused = counted + inferred
    if refused < 1:
        return None
    values.update({"refused": refused, "per_s": round(refused / w.seconds, 3) if w.seconds else None,
                   "max_connections": setting(b, "max_connections")})
    with contextlib.suppress(Insufficient):
        values["Threads_connected_max"] = w.gauge("Threads_connected").max
    how = "" if not inferred else (f" ({counted:.0f} counted by the server, {inferred:.0f} ordinary "
                                   "accounts refused after authentication)")
    return Hit(f"{refused:.0f} connections refused with 'Too many connections' during the window"
               f"{how} (max_connections={setting(b, 'max_connections')})",
               confidence="medium" if inferred > counted else None,
               evidence=[Evidence(STATUS, values, samples=w.evidence_samples(
                   "Aborted_connects" if inferred > counted else "Connection_errors_max_connections"))])


@rule("CONN-06", "More threads are running than the CPUs can serve, most of the window",
      group="connections", severity="warning", window=True, needs=(STATUS, CPUINFO),
      advice="Find what the running threads wait for (the processlist's states, the lock and "
             "wait findings): a lock pile-up or a few slow statements make threads pile up; CPU "
             "saturation needs the top digests by total time tuned. Limit concurrency at the "
             "source (smaller application pools) or with a thread pool (MariaDB "
             "thread_handling=pool-of-threads) rather than more connections.",
      risk="Lowering the pools queues requests in the application instead: watch its latency.",
      verify="Threads_running stays below twice the CPUs over a new window.")
def threads_running_high(b: Bundle) -> Optional[Hit]:
    """Checks the share of the window's samples in which Threads_running (statements
    executing at that moment) exceeds twice the CPUs mysqld may use (os/cpuinfo.json's
    affinity count, lowered by a cgroup CPU quota).

    **Why it matters**: a thread beyond the CPUs waits — for a CPU, a lock, or I/O. A
    brief spike is normal; running above twice the CPUs in most samples is either CPU
    saturation or a pile-up behind a lock, and latency grows with the queue.

    **Example**: 2 CPUs and Threads_running between 9 and 30 in 8 of 10 samples.

    **Fix**: find and remove the cause of the queue (the blocker, the slow digests); cap
    concurrency in the pools or with a thread pool.
    """
    cpus = cpu_count(b)
    if cpus is None:
        raise Insufficient("os/cpuinfo.json gives no CPU count")
    w = b.window
    threshold = cpus * 2
    share = w.above("Threads_running", threshold)
    if share < 0.5:
        return None
    running = w.gauge("Threads_running")
    return Hit(f"Threads_running above {threshold:g} (2 × {cpus:g} CPUs) in {share:.0%} of the samples "
               f"(max {running.max:.0f}, average {running.avg:.1f})",
               severity="error" if running.avg > cpus * 4 else None,
               evidence=[Evidence(STATUS, {"cpus": cpus, "threshold": threshold, "share_of_samples":
                                           round(share, 3), "max": running.max, "avg": round(running.avg, 1)},
                                  samples=w.evidence_samples("Threads_running"))])


@rule("CONN-07", "Clients connect at a high rate without a connection pool",
      group="connections", severity="notice", window=True, needs=(STATUS, VARIABLES),
      advice="Use a connection pool in the application (or a proxy such as ProxySQL or MaxScale "
             "that multiplexes connections) so that a request reuses a connection instead of "
             "paying a TCP and authentication handshake each time.",
      risk="A pool keeps idle connections open: size it to the real concurrency and keep its "
           "connection lifetime below wait_timeout.",
      verify="Connections per second falls over a new window while Questions keeps its rate.")
def connection_rate_high(b: Bundle) -> Optional[Hit]:
    """Checks the rate of new connections (Connections) during the window when the
    connections are short-lived: many connects per second for few concurrent connections.

    **Why it matters**: each new connection is a TCP handshake, often TLS, an
    authentication (a password hash check, caching_sha2 or ed25519 work), a thread from
    the cache or a new one, and the session's setup statements — milliseconds of work
    repeated for every request of an application that does not pool.

    **Example**: 200 connections per second, Threads_connected around 12: each connection
    lives about 60 ms.

    **Fix**: pool connections in the application or a proxy.
    """
    w = b.window
    rate = w.rate("Connections")
    if rate < 20:
        return None
    connected = w.gauge("Threads_connected").avg if w.has("Threads_connected") else None
    lifetime = connected / rate if connected is not None else None
    if lifetime is not None and lifetime > 60:
        return None
    values: Dict[str, Any] = {"Connections_per_s": round(rate, 1), "thread_handling":
                              setting(b, "thread_handling")}
    if lifetime is not None:
        values["Threads_connected_avg"] = round(connected, 1)
        values["average_lifetime_s"] = round(lifetime, 3)
    life = f", each living about {lifetime:.2g} s" if lifetime is not None else ""
    return Hit(f"{rate:.0f} new connections per second{life}",
               evidence=[Evidence(STATUS, values, samples=w.evidence_samples("Connections"))])


def _idle_threads(b: Bundle) -> List[Dict[str, Any]]:
    """The processlist's Sleep threads that are not mydiag's own."""
    rows = b.json(PROCESSLIST, [])
    if not isinstance(rows, list):
        raise Insufficient("mysql/processlist.json is not a list of threads")
    idle = []
    for row in rows:
        if not isinstance(row, dict) or row.get("mydiag") is True:
            continue
        if str(row.get("command") or "") == "Sleep":
            idle.append(row)
    return idle


@rule("CONN-08", "A long wait_timeout keeps many idle connections open",
      group="connections", severity="notice", needs=(PROCESSLIST, VARIABLES),
      advice="Lower wait_timeout (e.g. to 600 s; SET GLOBAL wait_timeout=600 and in the option "
             "file) so that abandoned connections are closed, and fix the clients that leak "
             "them; keep a pool's connection lifetime below the new wait_timeout. "
             "interactive_timeout applies to interactive clients (mysql CLI) only.",
      risk="A client that keeps a connection idle longer than the new wait_timeout gets 'server "
           "has gone away' on its next statement: check the pools' idle lifetime first.",
      verify="The processlist shows fewer long Sleep threads; Aborted_clients may grow briefly as "
             "the stale ones are closed. Roll back with SET GLOBAL wait_timeout=<old>.")
def idle_connections(b: Bundle) -> Optional[Hit]:
    """Checks the processlist for connections idle (Sleep) for more than ten minutes when
    `wait_timeout` is an hour or more.

    **Why it matters**: an idle connection holds a slot of `max_connections`, a thread and
    its session memory; with the default `wait_timeout=28800` (8 hours) connections leaked
    by a client stay open all day, and the server reaches "Too many connections" with
    most of its connections asleep.

    **Example**: 120 of 151 connections in Sleep, idle for up to 7 hours, `wait_timeout=28800`.

    **Fix**: lower `wait_timeout` and fix the leaking clients.
    """
    timeout = b.number("wait_timeout")
    if timeout is None:
        raise Insufficient("wait_timeout is not a number")
    if timeout < 3600:
        return None
    idle = _idle_threads(b)
    long_idle = [r for r in idle if (to_number(r.get("time")) or 0) >= 600]
    limit = b.number("max_connections") or 0
    if len(long_idle) < 20 or len(long_idle) < 0.2 * limit:
        return None
    by_user: Dict[str, int] = {}
    for row in long_idle:
        key = f"{str(row.get('user') or '')[:64]}@{str(row.get('host') or '').split(':')[0][:64]}"
        by_user[key] = by_user.get(key, 0) + 1
    top = dict(sorted(by_user.items(), key=lambda kv: -kv[1])[:10])
    longest = max((to_number(r.get("time")) or 0) for r in long_idle)
    return Hit(f"{len(long_idle)} connections idle for more than 10 minutes (the longest "
               f"{longest / 3600:.1f} h) with wait_timeout={timeout:.0f}",
               evidence=[Evidence(PROCESSLIST, {"idle_over_600s": len(long_idle), "sleeping": len(idle),
                                                "wait_timeout": timeout, "max_connections": limit,
                                                "longest_idle_s": longest, "by_account": top})])
