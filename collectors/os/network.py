"""Network counters from /proc/net/dev, /proc/net/snmp and /proc/net/netstat, sampled into
rates: bytes, packets, errors and drops per interface, TCP retransmits, and the TcpExt
counters that tell a full accept queue or a dropping backlog from a slow server."""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional

import psutil

from collectors.os.procfs import Reader
from collectors.os.sampling import rate, schedule
from collectors.registry import PROFILES, Artifact, Context, collector

_NIC = ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "errin", "errout",
        "dropin", "dropout")
_TCP = ("ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "CurrEstab", "InSegs",
        "OutSegs", "RetransSegs", "InErrs", "OutRsts")
#: /proc/net/netstat `TcpExt:` counters worth a rate: accept-queue overflows and drops,
#: timeouts and retransmits, backlog, memory-pressure and SYN-queue drops, aborts.
TCP_EXT = ("ListenOverflows", "ListenDrops", "TCPTimeouts", "TCPBacklogDrop", "TCPLostRetransmit",
           "TCPSynRetrans", "TCPFastRetrans", "TCPSlowStartRetrans", "TCPRetransFail",
           "TCPAbortOnTimeout", "TCPAbortOnMemory", "TCPAbortOnData", "TCPAbortOnClose",
           "TCPAbortOnLinger", "TCPAbortFailed", "TCPMemoryPressures", "PruneCalled",
           "RcvPruned", "OfoPruned", "TCPRcvQDrop", "TCPReqQFullDrop", "TCPReqQFullDoCookies",
           "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "TCPOFODrop",
           "TCPZeroWindowDrop", "TW",
           "TCPSpuriousRTOs", "TCPDSACKRecv", "EmbryonicRsts")


@collector("os.network", profiles=PROFILES, timeout=5, sampled=True)
def network(ctx: Context) -> Iterator[Artifact]:
    """Per-interface bytes, packets, errors and drops per second; TCP retransmits (JSON Lines)."""
    reader = Reader()
    rows: List[Dict[str, Any]] = []
    before: Optional[Dict[str, Any]] = None
    previous = 0.0
    for index, stamp, moment in schedule(ctx):
        now = {
            "interfaces": {name: counters._asdict() for name, counters in
                           psutil.net_io_counters(pernic=True).items()},
            "tcp": parse_snmp_tcp(reader.text("/proc/net/snmp") or ""),
            "tcp_ext": parse_netstat(reader.text("/proc/net/netstat") or ""),
        }
        if before is None:
            # The first window starts at boot: every counter then counts from zero.
            seconds = float((reader.line("/proc/uptime") or "0").split()[0])
            base: Dict[str, Any] = {"interfaces": {}, "tcp": {}, "tcp_ext": {}}
        else:
            seconds, base = moment - previous, before
        zero_nic = dict.fromkeys(_NIC, 0)
        rows.append({
            "ts": stamp, "sample": index,
            "window_seconds": round(seconds, 3) if before is not None else None,
            "interfaces": {
                name: {f"{f}_per_s": rate(c[f], base["interfaces"].get(name, zero_nic)[f], seconds)
                       for f in _NIC}
                for name, c in now["interfaces"].items()
            },
            "tcp": {f"{k}_per_s": rate(v, base["tcp"].get(k, 0), seconds)
                    for k, v in now["tcp"].items() if k != "CurrEstab"},
            "tcp_established": now["tcp"].get("CurrEstab"),
            # Keyed by the kernel's names as nstat shows them, per second over the window.
            "tcp_ext_per_s": {k: rate(v, base["tcp_ext"].get(k, 0), seconds)
                              for k, v in now["tcp_ext"].items()},
            "counters": now,
        })
        before, previous = now, moment
    yield Artifact.jsonl("os/net_dev.jsonl", rows)


def parse_snmp_tcp(text: str) -> Dict[str, int]:
    """The `Tcp:` header and value lines of /proc/net/snmp, as counters."""
    lines = [line.split()[1:] for line in text.splitlines() if line.startswith("Tcp:")]
    if len(lines) < 2:
        return {}
    return {k: int(v) for k, v in zip(lines[0], lines[1]) if k in _TCP}


def parse_netstat(text: str, section: str = "TcpExt:") -> Dict[str, int]:
    """The kept counters of one section of /proc/net/netstat (a header line, then values)."""
    lines = [line.split()[1:] for line in text.splitlines() if line.startswith(section)]
    if len(lines) < 2:
        return {}
    return {k: int(v) for k, v in zip(lines[0], lines[1]) if k in TCP_EXT and v.isdigit()}
