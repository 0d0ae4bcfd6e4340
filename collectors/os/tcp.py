"""TCP connection states on the MySQL port, from /proc/net/tcp and /proc/net/tcp6.

Read directly rather than through psutil: psutil maps every socket to its process by
walking all of /proc, which costs seconds on a busy host and needs root anyway.
"""

from __future__ import annotations

import socket
import struct
import time
from collections import Counter
from typing import Any, Dict, Iterator, List, Tuple

from collectors.os.mysqld import connected, server_port
from collectors.registry import PROFILES, Artifact, CollectorError, Context, collector

STATES = {
    "01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
    "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
    "0B": "CLOSING", "0C": "NEW_SYN_RECV",
}
_TABLES = (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6))
_TOP_REMOTES = 20


@collector("os.tcp", profiles=PROFILES, timeout=10)
def tcp(ctx: Context) -> Iterator[Artifact]:
    """Listeners (accept queue) and connection states to and from the MySQL port."""
    port = server_port(ctx)
    if port is None:
        raise CollectorError("the MySQL port is unknown", "give --port")
    listeners: List[Dict[str, Any]] = []
    inbound: Counter = Counter()
    outbound: Counter = Counter()
    remotes: Counter = Counter()
    read_any = False
    for path, family in _TABLES:
        try:
            rows = _rows(path, ctx)
            for local, remote, state, rx_queue in rows:
                read_any = True
                name = STATES.get(state, state)
                if local[1] == port and name == "LISTEN":
                    # For a listener the kernel reports its accept queue in rx_queue.
                    listeners.append({"address": _address(local[0], family),
                                      "accept_queue": rx_queue})
                elif local[1] == port:
                    inbound[name] += 1
                    remotes[_address(remote[0], family)] += 1
                elif remote[1] == port:
                    outbound[name] += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            ctx.notes.add(f"{path}: cannot read ({exc.strerror})", partial=True)
    if not read_any and not listeners:
        ctx.notes.add("no TCP socket tables in /proc/net (no IPv4/IPv6 here?)")
    if not listeners and connected(ctx):
        ctx.notes.add(f"nothing listens on TCP port {port} in this network namespace "
                      "(server in another container, or socket only)")
    yield Artifact.json("os/net_tcp.json", {
        "port": port,
        "port_from": "server" if connected(ctx) else "connection options",
        "listening": listeners,
        "inbound": {"states": dict(inbound), "total": sum(inbound.values()),
                    "by_remote_address": dict(remotes.most_common(_TOP_REMOTES)),
                    "remote_addresses": len(remotes)},
        "outbound": {"states": dict(outbound), "total": sum(outbound.values())},
    })


def _rows(path: str, ctx: Context) -> Iterator[Tuple[Tuple[str, int], Tuple[str, int], str, int]]:
    with open(path) as handle:
        next(handle, None)
        for number, line in enumerate(handle):
            parts = line.split()
            if len(parts) < 5:
                continue
            if number % 10000 == 0 and ctx.deadline and time.monotonic() > ctx.deadline - 0.5:
                ctx.notes.add(f"{path}: stopped after {number} sockets at the deadline", partial=True)
                return
            rx_queue = parts[4].partition(":")[2]
            yield _endpoint(parts[1]), _endpoint(parts[2]), parts[3], int(rx_queue, 16)


def _endpoint(text: str) -> Tuple[str, int]:
    address, _, port = text.rpartition(":")
    return address, int(port, 16)


def _address(hexed: str, family: int) -> str:
    """The kernel prints addresses as native-endian 32-bit words in hex."""
    raw = bytes.fromhex(hexed)
    words = struct.unpack(f"<{len(raw) // 4}I", raw)
    return socket.inet_ntop(family, struct.pack(f">{len(words)}I", *words))
