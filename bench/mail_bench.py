"""Inbound mail throughput: N mails through the SMTP endpoint and N through IMAP (a private
Dovecot), each from a customer's person to a ticket's signed reply address, on SQLite and on
PostgreSQL. Reported per path: messages per second (first delivery to the last message on
the ticket) and the p50/p99/max time from a mail's delivery (the SMTP 250, or Dovecot's LMTP
250 into the mailbox) to its message on the ticket.

    .venv/bin/python bench/mail_bench.py [--mails 1000] [--backends sqlite,postgresql] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import smtplib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mail import conftest as mailkit  # noqa: E402
from tests.serverkit import _pg_admin, _pg_base  # noqa: E402


def _mail(sender: str, to: str, n: int, path: str) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: bench {path} {n}\r\n"
            f"Message-ID: <bench-{path}-{n}-{secrets.token_hex(4)}@customer.test>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"bench {path} {n}: the replica is {n} seconds behind.\r\n\r\n"
            "On Mon, 1 Jan 2024, Support wrote:\r\n> what is the lag?\r\n").encode()


def _wait_all(srv: mailkit.MailServer, ticket_id: str, count: int, timeout: float) -> List[Dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = srv.query("SELECT body, at FROM messages WHERE ticket_id = ?", (ticket_id,))
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _figures(path: str, delivered: Dict[int, float], rows: List[Dict[str, Any]], n: int) -> Dict[str, Any]:
    lat = []
    for row in rows:
        index = int(row["body"].split(":")[0].split()[-1])
        lat.append(max(0.0, float(row["at"]) - delivered[index]))
    lat.sort()
    first = min(delivered.values())
    last = max(float(r["at"]) for r in rows) if rows else first
    pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: float("nan"))
    return {"path": path, "mails": n, "on_ticket": len(rows),
            "per_second": round(len(rows) / max(last - first, 1e-6), 1),
            "p50_ms": round(pick(0.50), 1), "p99_ms": round(pick(0.99), 1),
            "max_ms": round(lat[-1] * 1000, 1) if lat else None}


def run_backend(kind: str, mails: int, base: Path) -> List[Dict[str, Any]]:
    database: Optional[str] = None
    pg_name = None
    if kind == "postgresql":
        pg_base = _pg_base()
        pg_name = f"mydiag_bench_{secrets.token_hex(4)}"
        with _pg_admin(pg_base) as admin:
            admin.execute(f"CREATE DATABASE {pg_name}")
        database = f"{pg_base}/{pg_name}"
    dove = mailkit.start_dovecot()
    password_file = base / "imap-password"
    password_file.write_text(dove.password)
    srv = mailkit.mail_server(base / kind, database, None,
                              ["--imap", dove.url(), "--imap-password-file", str(password_file)])
    results = []
    try:
        srv.start()
        ticket = srv.server.ticket("benchco")
        person = "ann@benchco.test"
        srv.add_person("benchco", person)
        to = srv.signer().reply_address(ticket["id"])
        delivered: Dict[int, float] = {}
        with smtplib.SMTP("127.0.0.1", srv.smtp_port, timeout=60) as smtp:
            for n in range(mails):
                smtp.sendmail(person, [to], _mail(person, to, n, "smtp"))
                delivered[n] = time.time()
        rows = _wait_all(srv, ticket["id"], mails, 600)
        results.append({"backend": kind, **_figures("smtp", delivered, rows, mails)})

        ticket2 = srv.server.ticket("benchco")
        to2 = srv.signer().reply_address(ticket2["id"])
        delivered = {}
        with smtplib.LMTP("127.0.0.1", dove.lmtp_port) as lmtp:
            for n in range(mails):
                lmtp.sendmail(person, ["support"], _mail(person, to2, n, "imap"))
                delivered[n] = time.time()
        rows = _wait_all(srv, ticket2["id"], mails, 600)
        results.append({"backend": kind, **_figures("imap", delivered, rows, mails)})
    finally:
        srv.server.stop()
        dove.stop()
        shutil.rmtree(dove.base, ignore_errors=True)
        if pg_name:
            with _pg_admin(_pg_base()) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")
    return results


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="mydiag-mail-bench-") as tmp:
        for kind in args.backends.split(","):
            results += run_backend(kind, args.mails, Path(tmp))
    print(f"{'backend':<11} {'path':<5} {'mails':>6} {'on ticket':>9} {'msg/s':>7} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'max ms':>8}")
    for r in results:
        print(f"{r['backend']:<11} {r['path']:<5} {r['mails']:>6} {r['on_ticket']:>9} {r['per_second']:>7} "
              f"{r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
