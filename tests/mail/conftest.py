"""Real mail servers for the mail tests.

- `dovecot`: a private Dovecot (IMAP and LMTP on free loopback ports) from a standalone
  configuration in a temporary directory, run in the foreground as a child process
  (`dovecot -F -c FILE`); its one mail user `support` runs as uid 65534 (Dovecot refuses
  uid 0), so the mail folder is chowned to it.
- `smarthost`: a real aiosmtpd SMTP server on loopback that collects what it is given:
  STARTTLS with a certificate made at test time, AUTH with a generated password, and a
  switch that makes it refuse (421/451, or 550) to test retries.
- `mailserver`: an initialized mydiag-server data directory with the `mail` section set,
  running `mydiag-server run --smtp-listen … --imap …` against the two servers above.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from server.config import DataDir
from tests.serverkit import ROOT, Server, make_server, wait_ready
from tests.servers import free_port

DOMAIN = "support.test"
MAIL_UID = 65534


# --- Dovecot ---------------------------------------------------------------------------------


@dataclass
class Dovecot:
    base: Path
    imap_port: int
    lmtp_port: int
    user: str
    password: str
    process: Optional[subprocess.Popen] = None

    @property
    def config(self) -> Path:
        return self.base / "dovecot.conf"

    def start(self) -> None:
        with open(self.base / "dovecot.stderr", "ab") as stderr:
            self.process = subprocess.Popen(
                ["dovecot", "-F", "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"dovecot exited: {(self.base / 'dovecot.stderr').read_text()}{self.log()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.imap_port), timeout=0.5).close()
                socket.create_connection(("127.0.0.1", self.lmtp_port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("dovecot did not open its ports")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.base / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def deliver(self, raw: bytes, to: Optional[str] = None) -> None:
        """Put one message in the user's INBOX through Dovecot's own LMTP."""
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            lmtp.sendmail("sender@example.test", [to or self.user], raw)

    def client(self):
        from imapclient import IMAPClient

        client = IMAPClient("127.0.0.1", port=self.imap_port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def url(self) -> str:
        return f"imap://{self.user}@127.0.0.1:{self.imap_port}/INBOX"


def _dovecot_config(base: Path, imap_port: int, lmtp_port: int) -> str:
    return f"""
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{base}/mail/%u
first_valid_uid = {MAIL_UID}
default_internal_user = nobody
default_login_user = nobody
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = {base}/passwd
  default_fields = uid={MAIL_UID} gid={MAIL_UID} home={base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
}}
protocol lmtp {{
  postmaster_address = postmaster@{DOMAIN}
}}
"""


def start_dovecot() -> Dovecot:
    """A new private Dovecot, started; `stop()` it and remove `base` when done."""
    if shutil.which("dovecot") is None:
        pytest.fail("dovecot is not installed (apt-get install -y dovecot-imapd dovecot-lmtpd)")
    # Not under pytest's temp folder: that is 0700 root, and Dovecot's auth process (nobody)
    # must reach the passwd file, the mail user (65534) its mail folder.
    base = Path(tempfile.mkdtemp(prefix="mydiag-dovecot-"))
    os.chmod(base, 0o755)
    password = secrets.token_urlsafe(16)
    server = Dovecot(base, free_port(), free_port(), "support", password)
    (base / "mail").mkdir()
    (base / "passwd").write_text(f"support:{{PLAIN}}{password}:{MAIL_UID}:{MAIL_UID}::{base}/mail/support\n")
    server.config.write_text(_dovecot_config(base, server.imap_port, server.lmtp_port))
    os.chmod(base / "passwd", 0o644)
    os.chown(base / "mail", MAIL_UID, MAIL_UID)
    server.start()
    return server


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    server = start_dovecot()
    yield server
    server.stop()
    shutil.rmtree(server.base, ignore_errors=True)


# --- the smart host --------------------------------------------------------------------------


@dataclass
class Collected:
    mail_from: str
    rcpt_tos: List[str]
    raw: bytes
    tls: bool
    authenticated: Optional[str]


class Collector:
    def __init__(self) -> None:
        self.mails: List[Collected] = []
        self.refuse: Optional[str] = None  # e.g. "451 4.3.0 try later" or "550 5.1.1 no such user"
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse
        with self.lock:
            self.mails.append(
                Collected(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.original_content or envelope.content,
                    session.ssl is not None,
                    "yes" if session.authenticated else None,
                )
            )
        return "250 OK collected"

    def wait(self, count: int, timeout: float = 30.0) -> List[Collected]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.mails) >= count:
                    return list(self.mails)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.mails)} mails reached the smart host, not {count}")


@dataclass
class SmartHost:
    port: int
    collector: Collector
    ca_file: Path
    auth_file: Path
    controller: Any = None


def make_certificate(folder: Path) -> tuple:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smarthost.crt", folder / "smarthost.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def smarthost(tmp_path_factory) -> Iterator[SmartHost]:
    import ssl

    folder = tmp_path_factory.mktemp("smarthost")
    cert, key = make_certificate(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    user, password = "relay", secrets.token_urlsafe(12)
    auth_file = folder / "auth"
    auth_file.write_text(f"{user}\n{password}\n")
    os.chmod(auth_file, 0o600)

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    collector = Collector()
    port = free_port()
    controller = Controller(
        collector,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    )
    controller.start()
    host = SmartHost(port, collector, cert, auth_file, controller)
    yield host
    controller.stop()


# --- the mydiag server -----------------------------------------------------------------------


@dataclass
class MailServer:
    server: Server
    smtp_port: int
    extra: List[str] = field(default_factory=list)
    reader: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)

    def start(self) -> subprocess.Popen:
        srv = self.server
        srv.port = srv.port or free_port()
        args = [
            sys.executable,
            "-m",
            "server.cli",
            "run",
            "--data",
            str(srv.data),
            "--listen",
            f"127.0.0.1:{srv.port}",
            "--log-level",
            "warning",
            "--smtp-listen",
            f"127.0.0.1:{self.smtp_port}",
            *self.extra,
        ]
        if srv.database:
            args += ["--database", srv.database]
        with open(srv.data / f"server-{srv.port}-{len(srv.processes)}.log", "wb") as log:
            process = subprocess.Popen(
                args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        srv.processes.append(process)
        wait_ready(srv.url, process)
        return process

    def send(self, raw: bytes, mail_from: str = "ann@acme.test", to: Optional[List[str]] = None) -> Dict:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as smtp:
            return smtp.sendmail(mail_from, to or [f"support@{DOMAIN}"], raw)

    def state(self):
        from server.storage.state import State

        return State.open(self.server.data, self.server.database)

    def query(self, sql: str, params: tuple = ()) -> List[Dict]:
        """A read on a connection kept open (opening one runs the schema's CREATE … IF NOT
        EXISTS, whose table locks can deadlock with the running server's writes)."""
        from server.storage.db import open_database

        if self.reader is None:
            data = DataDir(self.server.data)
            self.reader = open_database(data.database_url(data.load(), self.server.database))
        with self.reader.tx(write=False) as tx:
            return tx.all(sql, params)

    def inbox_settled(self, count: int, timeout: float = 30.0) -> List[Dict]:
        """The inbox rows once `count` of them are done (or failed)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query("SELECT * FROM mail_inbox ORDER BY received, id")
            if sum(r["state"] in ("done", "failed") for r in rows) >= count:
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"inbox not settled: {rows}\n{self.server.logs()[-3000:]}")
            time.sleep(0.05)

    def messages(self, ticket_id: str) -> List[Dict]:
        return json.loads(self.server.api("GET", f"/api/v1/tickets/{ticket_id}/messages"))

    def add_person(self, customer: str, address: str) -> None:
        """Through the support package on the kept connection: a CLI process would open the
        database anew, and its schema statements can deadlock with the running server's
        writes on PostgreSQL (reported; `mydiag-server customer add-person` is CORE's to test)."""
        from server.support import people

        self.query("SELECT 1")
        with self.reader.tx() as tx:
            people.add_person(tx, customer, address, None, "test")

    def signer(self):
        from server.mail.tokens import Signer, load_key

        return Signer(load_key(self.server.data / "mail.key"), DOMAIN)


def write_mail_settings(data: Path, **settings: Any) -> None:
    path = data / "config.json"
    config = json.loads(path.read_text())
    config["mail"] = {**config.get("mail", {}), "domain": DOMAIN, **settings}
    path.write_text(json.dumps(config))


def mail_server(
    base: Path,
    database: Optional[str],
    smarthost: Optional[SmartHost],
    extra: Optional[List[str]] = None,
    **settings: Any,
) -> MailServer:
    server = make_server(base, database)
    smart = (
        {
            "smarthost": "127.0.0.1",
            "smarthost_port": smarthost.port,
            "starttls": True,
            "smarthost_ca_file": str(smarthost.ca_file),
            "auth_file": str(smarthost.auth_file),
        }
        if smarthost
        else {}
    )
    write_mail_settings(server.data, **{"retry_seconds": 0.5, "max_attempts": 4, **smart, **settings})
    return MailServer(server, free_port(), list(extra or []))


@pytest.fixture(scope="module")
def mailserver(tmp_path_factory, backend, smarthost, dovecot) -> Iterator[MailServer]:
    """A running server taking mail by SMTP and from the Dovecot mailbox, sending through the
    smart host; shared by a module's tests (each works on tickets and customers of its own)."""
    base = tmp_path_factory.mktemp("mailserver")
    pw = base / "imap-password"
    pw.write_text(dovecot.password + "\n")
    srv = mail_server(
        base,
        backend,
        smarthost,
        ["--imap", dovecot.url(), "--imap-password-file", str(pw)],
        max_attachment_bytes=256 * 1024,
        max_message_bytes=2 << 20,
        public_url="https://support.example.test",
    )
    srv.start()
    yield srv
    srv.server.stop()


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def signal_stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(15)
