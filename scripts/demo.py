"""`make demo`: the whole loop, from a MySQL host to an engineer reading the bundle.

Uses the MySQL server you name (MYDIAG_DEMO_DSN=mysql://user@host:port with the password
in MYDIAG_DEMO_DEFAULTS_FILE, or just MYDIAG_DEMO_DEFAULTS_FILE), otherwise starts a
throwaway MariaDB/MySQL from the local server binaries. Then: a support server with the
embedded defaults (temporary data directory, SQLite, a free port), a ticket, this host
enrolled, `mydiag collect --upload` (sealed to the ticket's recipient, uploaded with
tus), and on the support side the bundle listed and opened, its report rendered on arrival
(the headline findings), and the report page's address with an engineer to sign in as.
Then the conversation: the customer asks (a reply deadline), the engineer proposes the next
reply's time (admission control checks it against the engineers' calendars), the customer
accepts, the task is first in the engineer's queue; and a short simulated month compares
the queue policies.
On a terminal the support server then stays up until Ctrl-C.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import servers  # noqa: E402

MYDIAG = [str(ROOT / ".venv" / "bin" / "mydiag")]
SERVER = [str(ROOT / ".venv" / "bin" / "mydiag-server")]


def start_support(base: Path) -> tuple:
    """A support server on a free port; (process, url, data dir, admin token)."""
    data = base / "server"
    admin = json.loads(subprocess.run(SERVER + ["init", "--data", str(data), "--json"], check=True,
                                      capture_output=True, text=True).stdout)["admin_token"]
    url = f"http://127.0.0.1:{servers.free_port()}"
    log = open(base / "server.log", "wb")  # noqa: SIM115 - open as long as the server runs
    process = subprocess.Popen(SERVER + ["run", "--data", str(data), "--listen", url[7:],
                                         "--log-level", "warning"], stdout=log, stderr=log)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=1):
                return process, url, data, admin
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.1)
    raise RuntimeError(f"the support server did not start; see {base / 'server.log'}")


def main() -> int:
    out = ROOT / ".demo" / "bundles"
    out.mkdir(parents=True, exist_ok=True)
    dsn = os.environ.get("MYDIAG_DEMO_DSN")
    defaults = os.environ.get("MYDIAG_DEMO_DEFAULTS_FILE")
    instance = None
    connection: list = []
    if defaults:
        connection += ["--defaults-file", defaults]
    if dsn:
        url = urllib.parse.urlparse(dsn)
        connection += ["--host", url.hostname or "127.0.0.1", "--port", str(url.port or 3306)]
        if url.username:
            connection += ["--user", url.username]
    if not connection:
        base = Path(tempfile.mkdtemp(prefix="mydiag-demo-"))
        print(f"demo: starting a throwaway MariaDB in {base} ...")
        try:
            instance = servers.create(base, ["--log-bin=binlog", "--server-id=1"])
        except servers.ServerUnavailable as exc:
            print(f"demo: {exc}; or set MYDIAG_DEMO_DSN", file=sys.stderr)
            return 1
        instance.sql(
            "CREATE DATABASE IF NOT EXISTS shop",
            "CREATE TABLE IF NOT EXISTS shop.orders (id INT PRIMARY KEY AUTO_INCREMENT,"
            " customer VARCHAR(40), total DECIMAL(10,2))",
            "INSERT INTO shop.orders (customer, total) VALUES ('alice', 10.5), ('bob', 99)",
        )
        connection = ["--host", "127.0.0.1", "--port", str(instance.port), "--user", "root"]
    support = None
    try:
        base = Path(tempfile.mkdtemp(prefix="mydiag-demo-support-"))
        support, url, data, admin = start_support(base)
        print(f"demo: support server at {url}/api/v1 (data in {data})")
        ticket = json.loads(subprocess.run(
            SERVER + ["ticket", "create", "--data", str(data), "--customer", "demo",
                      "--title", "demo: is this server healthy?", "--json"],
            check=True, capture_output=True, text=True).stdout)
        token_file = base / "upload-token"
        token_file.write_text(ticket["upload_token"])
        token_file.chmod(0o600)
        print(f"demo: ticket {ticket['id']}, sealed to {ticket['recipients'][0]}")
        # The agent's own state (host key, pinned recipients) stays in the demo folder.
        env = {**os.environ, "MYDIAG_HOME": str(base / "agent")}
        remote = ["--server", url, "--ticket", ticket["id"], "--token-file", str(token_file)]
        subprocess.run(MYDIAG + ["enroll", *remote, "--hostname", "demo-host"], env=env, check=True)
        done = subprocess.run(
            MYDIAG + ["collect", *connection, "--output", str(out), "--samples", "3",
                      "--upload", *remote], env=env,
        )
        if done.returncode not in (0, 3):
            return done.returncode
        print("\ndemo: on the support side")
        subprocess.run(SERVER + ["bundle", "list", "--data", str(data), "--ticket", ticket["id"]],
                       check=True)
        listed = json.loads(subprocess.run(
            SERVER + ["bundle", "list", "--data", str(data), "--ticket", ticket["id"], "--json"],
            check=True, capture_output=True, text=True).stdout)
        opened = ROOT / ".demo" / "opened"
        subprocess.run(SERVER + ["bundle", "open", "--data", str(data), listed[-1]["id"],
                                 "--output", str(opened)], check=True)
        print(f"\nlook around: ls {opened}  (or .venv/bin/mydiag inspect {opened}/*.tar.zst)")
        engineer = show_report(url, data, admin, ticket["id"], listed[-1]["id"], base)
        show_promise(url, ticket["id"], ticket["upload_token"], engineer)
        print("\ndemo: a simulated week of 200 tickets through the same planning code:")
        subprocess.run(SERVER + ["simulate", "--tickets", "200", "--days", "7"], check=True)
        if sys.stdin.isatty():
            print("\ndemo: the support server stays up for you; press Ctrl-C to stop it")
            try:
                support.wait()
            except KeyboardInterrupt:
                print()
        else:
            print("  (the demo's support server stops now; run `make demo` in a terminal to keep it up)")
        return 0
    finally:
        if support is not None:
            support.terminate()
            support.wait(10)
        if instance is not None:
            instance.stop()


def api(url: str, token: str, method: str, path: str, body: object = None) -> tuple:
    """(status, JSON answer or None) of one API call."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/api/v1{path}", data=data, method=method, headers={
        "Authorization": f"Bearer {token}", **({"Content-Type": "application/json"} if data else {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()
            return answer.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def show_promise(url: str, ticket: str, customer: str, engineer: str) -> None:
    """A customer question, the engineer's proposed reply time, the customer's acceptance, the queue."""
    _, asked = api(url, customer, "POST", f"/tickets/{ticket}/messages",
                   {"kind": "needs_reply", "body": "Is the redo log large enough for our write load?"})
    print(f"\ndemo: the customer asks; the policy's reply deadline is {asked['due_at']}")
    wanted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2 * 86400))
    status, promise = api(url, engineer, "POST", f"/tickets/{ticket}/promises",
                          {"due_at": wanted, "reason": "we want to read a full day of redo samples",
                           "estimate_seconds": 5400})
    if status == 409:
        print(f"  admission control refused {wanted}: {promise['error']}")
        status, promise = api(url, engineer, "POST", f"/tickets/{ticket}/promises",
                              {"due_at": promise["earliest_feasible_at"],
                               "reason": "the earliest our calendars can carry", "estimate_seconds": 5400})
    print(f"  the engineer proposes the next reply by {promise['due_at']} ({promise['reason']})")
    _, accepted = api(url, customer, "POST", f"/tickets/{ticket}/promises/{promise['id']}/accept")
    print(f"  the customer accepts: version {accepted['version']} is {accepted['state']}, "
          f"the reply is now due {accepted['due_at']}")
    status, task = api(url, engineer, "GET", "/queue/next")
    if status == 200 and task:
        print(f"  the engineer's next task: {task['task_id']} on {task['ticket_id']}, due {task['due_at']} "
              f"({task['why']})")
    print(f"  the ticket page: {url}/tickets/{ticket}  (and the queue: {url}/queue)")


def show_report(url: str, data: Path, admin: str, ticket: str, bundle: str, base: Path) -> str:
    """The report the server rendered on arrival: its headline, and its page with a sign-in;
    the demo engineer's API token."""
    """The report the server rendered on arrival: its headline, and its page with a sign-in."""
    request = urllib.request.Request(f"{url}/api/v1/tickets/{ticket}/bundles",
                                     headers={"Authorization": f"Bearer {admin}"})
    row: dict = {}
    for _ in range(100):  # the background verifier renders it just after accepting the bundle
        with urllib.request.urlopen(request, timeout=5) as answer:
            row = next((b for b in json.load(answer) if b["id"] == bundle), {})
        if row.get("report"):
            break
        time.sleep(0.2)
    print(f"\ndemo: the report, rendered on arrival ({row.get('report') or 'not yet'}):")
    for finding in row.get("headline") or []:
        print(f"  [{finding['severity']}] {finding['rule']} {finding['summary']}")
    if not row.get("headline"):
        print("  no finding of warning or worse")
    password = secrets.token_urlsafe(12)
    engineer = json.loads(subprocess.run(SERVER + ["engineer", "add", "--data", str(data), "demo", "--json"],
                                         check=True, capture_output=True, text=True).stdout)["token"]
    subprocess.run(SERVER + ["engineer", "password", "--data", str(data), "demo", "--stdin"],
                   input=password + "\n", text=True, check=True, stdout=subprocess.DEVNULL)
    secret = base / "engineer-password"
    secret.write_text(password + "\n")
    secret.chmod(0o600)
    print(f"\nthe report page: {url}/tickets/{ticket}/bundles/{bundle}/report")
    print(f"  sign in as 'demo' with the password in {secret}")
    return engineer


if __name__ == "__main__":
    sys.exit(main())
