"""Where to connect, resolved the way MySQL users expect.

Order, later wins: option files (`--defaults-file` alone, else the client search
order), then `--host/--port/--socket/--user` on the command line, then `--ask-pass`.
A password only ever comes from an option file or the prompt: never argv or env.
"""

from __future__ import annotations

import getpass
import os
from typing import Optional

from collectors.mysql import optionfile
from collectors.mysql.session import ConnectSpec

#: Sockets tried, in order, when neither host nor socket is configured.
DEFAULT_SOCKETS = ("/run/mysqld/mysqld.sock", "/var/run/mysqld/mysqld.sock", "/tmp/mysql.sock")
OPTION_GROUPS = ("client", "mydiag")


class OptionError(Exception):
    pass


def resolve(
    *,
    defaults_file: Optional[str] = None,
    host: Optional[str] = None,
    port: Optional[int] = None,
    socket: Optional[str] = None,
    user: Optional[str] = None,
    ask_pass: bool = False,
) -> ConnectSpec:
    if defaults_file:
        if not os.path.isfile(defaults_file):
            raise OptionError(f"--defaults-file {defaults_file}: no such file")
        files = optionfile.read([defaults_file], missing_ok=False)
    else:
        files = optionfile.read(optionfile.CLIENT_SEARCH_ORDER)
    opts = files.group(*OPTION_GROUPS)
    spec = ConnectSpec(sources=files.files)
    spec.host = opts.get("host") or None
    spec.socket = opts.get("socket") or None
    spec.user = opts.get("user") or None
    spec.password = opts.get("password")
    spec.ssl_ca = opts.get("ssl-ca")
    spec.ssl_cert = opts.get("ssl-cert")
    spec.ssl_key = opts.get("ssl-key")
    spec.ssl_required = (opts.get("ssl-mode") or "").upper() in ("REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY")
    if opts.get("port"):
        try:
            spec.port = int(str(opts["port"]))
        except ValueError as exc:
            raise OptionError(f"option file: port {opts['port']!r} is not a number") from exc
    if host is not None:
        spec.host = host
        spec.socket = None if socket is None else socket
    if socket is not None:
        spec.socket = socket
    if port is not None:
        spec.port = port
        if host is None and socket is None and not spec.host:
            spec.host, spec.socket = "127.0.0.1", None
    if user is not None:
        spec.user = user
    # "localhost" means the socket to MySQL clients; an explicit TCP host means TCP.
    if spec.host == "localhost" and not spec.socket:
        spec.socket = _default_socket()
        if spec.socket:
            spec.host = None
    if not spec.host and not spec.socket:
        spec.socket = _default_socket()
        if not spec.socket:
            spec.host = "127.0.0.1"
    if spec.socket:
        spec.host = None
    if ask_pass:
        spec.password = ask_password(f"Password for {spec.describe()}: ")
    return spec


def ask_password(prompt: str) -> str:
    """The password typed at the terminal; an OptionError when there is no terminal to type it
    in (cron, a pipe, a service), never a password read from stdin."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        raise OptionError(
            "--ask-pass needs a terminal to type the password in, and there is none here; "
            "put the password in an option file instead ([client] password=..., mode 0600, "
            "given with --defaults-file)"
        ) from None
    os.close(tty)
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise OptionError("--ask-pass: no password was typed (end of input)") from None


def _default_socket() -> Optional[str]:
    for path in DEFAULT_SOCKETS:
        if os.path.exists(path):
            return path
    return None
