"""Handing one message to the configured smart host over SMTP.

STARTTLS when `starttls` is set (certificates verified against the system's CAs or
`smarthost_ca_file`), then AUTH with the user and password read from `auth_file` (its
first and second lines; never on a command line). Any failure raises: the outbox
decides whether it is retried.
"""

from __future__ import annotations

import smtplib
import ssl
from pathlib import Path
from typing import Callable, Tuple

from server.config import MailSettings

TIMEOUT_SECONDS = 30.0


class NotConfigured(RuntimeError):
    pass


def read_auth(path: str) -> Tuple[str, str]:
    lines = Path(path).read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip():
        raise NotConfigured(f"{path}: the user on the first line and the password on the second")
    return lines[0].strip(), lines[1]


def smarthost(settings: MailSettings) -> Callable[[str, str, str], None]:
    if not settings.smarthost:
        raise NotConfigured("no smart host configured (mail.smarthost in config.json)")

    def deliver(envelope_from: str, to_addr: str, raw: str) -> None:
        with smtplib.SMTP(settings.smarthost, settings.smarthost_port, timeout=TIMEOUT_SECONDS) as smtp:
            smtp.ehlo()
            if settings.starttls:
                context = ssl.create_default_context(cafile=settings.smarthost_ca_file or None)
                smtp.starttls(context=context)
                smtp.ehlo()
            if settings.auth_file:
                user, password = read_auth(settings.auth_file)
                smtp.login(user, password)
            data = raw.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
            refused = smtp.sendmail(envelope_from, [to_addr], data)
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)

    return deliver
