"""`mydiag-server`: the support side. Every subcommand takes `--data DIR` (from `init`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Optional

from bundle.version import FORMAT_VERSION, __version__
from server import exitcodes
from server.cli.common import Failure, Handler, Parser, _actor, _emit, _open, actions, command, json_option
from server.config import BlobSettings, Config, ConfigError, DataDir, Limits, safe_url, write_private
from server.storage.db import DatabaseError


def cmd_init(args: argparse.Namespace) -> int:
    from bundle import age
    from server.storage import audit
    from server.storage.db import open_database
    from server.support import tickets

    data = DataDir(Path(args.data))
    if data.exists():
        raise Failure(exitcodes.DATA_DIR, f"{data.path} is already initialized (its admin token was "
                                          "printed then; add engineers with `mydiag-server engineer add`)")
    blobs = _blob_settings(args)
    data.path.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret, recipient = age.generate_identity()
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_private(data.identity_path,
                  f"# created: {created}\n# public key: {recipient}\n{secret}\n".encode())
    limits = Limits()
    if args.max_upload_bytes:
        limits.max_upload_bytes = args.max_upload_bytes
    if args.max_ticket_bytes:
        limits.max_ticket_bytes = args.max_ticket_bytes
    config = Config(recipients=[recipient], database=args.database or "", limits=limits, blobs=blobs)
    db = open_database(data.database_url(config))
    try:
        with db.tx() as tx:
            token = tickets.add_engineer(tx, "admin", _actor(), role="admin")
            audit.record(tx, _actor(), "server.init", recipient=recipient)
    finally:
        db.close()
    data.save(config)
    data.blobs.mkdir(exist_ok=True)
    from server.gateway.hostkey import make_gateway_keys

    make_gateway_keys(data.path)  # the SSH gateway's host and peer keys, the same in every copy
    _emit(args, {"data": str(data.path), "recipients": [recipient], "admin_token": token,
                 "database": safe_url(data.database_url(config)), "blobs": blobs.describe(data.blobs)}, [
        f"initialized {data.path} (database {safe_url(data.database_url(config))}, "
        f"blobs {blobs.describe(data.blobs)})",
        f"server recipient: {recipient}",
        f"admin token (shown once, keep it safe): {token}",
    ])
    return exitcodes.OK


def _blob_settings(args: argparse.Namespace) -> BlobSettings:
    """The `blobs` section from init's options; an S3 store is tried once before anything is
    written (docs/storage.md). Credentials never go into config.json."""
    if args.blob_store != "s3":
        if args.s3_endpoint or args.s3_bucket or args.s3_prefix or args.s3_region or args.s3_credentials_file:
            raise Failure(exitcodes.USAGE, "the --s3-* options need --blob-store s3")
        return BlobSettings()
    if not args.s3_bucket:
        raise Failure(exitcodes.USAGE, "--blob-store s3 needs --s3-bucket NAME")
    if args.s3_endpoint:
        parts = urllib.parse.urlsplit(args.s3_endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Failure(exitcodes.USAGE, f"--s3-endpoint must be an http(s) URL, not {args.s3_endpoint!r}")
        if parts.username or parts.password:
            raise Failure(exitcodes.USAGE, "--s3-endpoint must not hold credentials: use AWS_ACCESS_KEY_ID "
                                           "and AWS_SECRET_ACCESS_KEY or --s3-credentials-file")
    settings = BlobSettings(kind="s3", endpoint=args.s3_endpoint or "", bucket=args.s3_bucket,
                            region=args.s3_region or "", prefix=args.s3_prefix or "",
                            credentials_file=str(Path(args.s3_credentials_file).resolve())
                            if args.s3_credentials_file else "")
    from server.storage.blobs import StoreUnavailable
    from server.storage.s3 import S3Store

    try:
        S3Store(settings, Path(args.data)).check()
    except StoreUnavailable as exc:
        raise Failure(exitcodes.IO_ERROR, f"cannot use the blob store {settings.describe()}: {exc}") from None
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from server.api.app import create_app
    from server.api.httpedge import bounded_protocol

    host, _, port_text = args.listen.rpartition(":")
    if not host or not port_text.isdigit():
        raise Failure(exitcodes.USAGE, f"--listen must be HOST:PORT, not {args.listen!r}")
    advertised = None
    if args.ssh_listen:
        from server.cli.sessions import parse_listen, start_gateway

        parse_listen(args.ssh_listen, "--ssh-listen")
        advertised = parse_listen(args.ssh_advertise, "--ssh-advertise") if args.ssh_advertise else None
    elif args.ssh_advertise:
        raise Failure(exitcodes.USAGE, "--ssh-advertise needs --ssh-listen HOST:PORT")
    _check_mail_options(args)
    state = _open(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    print(f"mydiag-server {__version__}: http://{args.listen}/api/v1 "
          f"(database {safe_url(state.data.database_url(state.config, args.database))}, "
          f"blobs {state.store.describe()})",
          file=sys.stderr, flush=True)
    app = create_app(state)
    gateway = mail = None
    try:
        if args.ssh_listen:
            gateway = app.state.gateway = start_gateway(args.ssh_listen, state)
            if advertised:
                gateway.advertise(*advertised)
        mail = _start_mail(args, state)
        uvicorn.run(app, host=host.strip("[]"), port=int(port_text),
                    http=bounded_protocol(state.config.limits), log_level=args.log_level,
                    access_log=args.log_level in ("info", "debug"),
                    timeout_graceful_shutdown=5, server_header=False)
    finally:
        if mail is not None:
            mail.stop()
        if gateway is not None:
            gateway.stop()
        state.close()
    return exitcodes.OK


def _check_mail_options(args: argparse.Namespace) -> None:
    if args.smtp_listen:
        host, _, port = args.smtp_listen.rpartition(":")
        if not host or not port.isdigit():
            raise Failure(exitcodes.USAGE, f"--smtp-listen must be HOST:PORT, not {args.smtp_listen!r}")
    if args.lmtp and not args.smtp_listen:
        raise Failure(exitcodes.USAGE, "--lmtp needs --smtp-listen HOST:PORT")
    if args.imap:
        from server.mail.imap import BadURL, Mailbox

        try:
            Mailbox.parse(args.imap)
        except BadURL as exc:
            raise Failure(exitcodes.USAGE, str(exc)) from None
        if not args.imap_password_file:
            raise Failure(exitcodes.USAGE, "--imap needs --imap-password-file FILE (never a password "
                                           "on the command line)")
        if not os.path.isfile(args.imap_password_file):
            raise Failure(exitcodes.IO_ERROR, f"{args.imap_password_file}: no such file")


def _start_mail(args: argparse.Namespace, state: Any) -> Any:
    """The mail endpoints and worker, when mail is configured (docs/mail.md)."""
    mail = state.config.mail
    if not (args.smtp_listen or args.imap or mail.smarthost):
        return None
    if not mail.domain:
        raise Failure(exitcodes.DATA_DIR, f"mail needs a domain: set \"mail\": {{\"domain\": …}} in "
                                          f"{state.data.config_path} (docs/mail.md)")
    from server.mail.service import MailService

    service = MailService(state, args.smtp_listen, args.lmtp, args.imap, args.imap_password_file,
                          args.imap_move_to or "")
    service.start()
    print(f"mail: {'LMTP' if args.lmtp else 'SMTP'} on {args.smtp_listen}" if args.smtp_listen else "mail:",
          f"IMAP {args.imap}" if args.imap else "", f"smart host {mail.smarthost}" if mail.smarthost else "",
          file=sys.stderr, flush=True)
    return service


def cmd_ticket_create(args: argparse.Namespace) -> int:
    from server.support import tickets

    state = _open(args)
    try:
        with state.db.tx() as tx:
            ticket = tickets.create_ticket(tx, args.customer, args.title, state.config.recipients,
                                           _actor(), args.token_days or state.config.limits.token_days)
    finally:
        state.close()
    _emit(args, ticket, [
        f"ticket {ticket['id']} for {ticket['customer']}: {ticket['title']}",
        f"upload token (shown once; give it to the customer): {ticket['upload_token']}",
        f"token expires: {ticket['token_expires']}",
        *(f"recipient: {r}" for r in ticket["recipients"]),
    ])
    return exitcodes.OK


def cmd_engineer_add(args: argparse.Namespace) -> int:
    from server.cli.sessions import add_key, read_ssh_key
    from server.support import tickets

    public_key = read_ssh_key(args.ssh_key) if args.ssh_key else None
    state = _open(args)
    try:
        with state.db.tx() as tx:
            token = tickets.add_engineer(tx, args.name, _actor())
            key = add_key(tx, args.name, public_key) if public_key else None
    finally:
        state.close()
    _emit(args, {"name": args.name, "token": token, "ssh_key": key},
          [f"engineer {args.name} added" + (f" with SSH key {key}" if key else ""),
           f"token (shown once, keep it safe): {token}"])
    return exitcodes.OK


def cmd_engineer_password(args: argparse.Namespace) -> int:
    from server.support import passwords

    password = _read_new_password(args.stdin)
    why = passwords.acceptable(password)
    if why:
        raise Failure(exitcodes.USAGE, why)
    state = _open(args)
    try:
        with state.db.tx() as tx:
            passwords.set_password(tx, args.name, password, _actor())
    finally:
        state.close()
    print(f"password of engineer {args.name} set; their web sessions were signed out")
    return exitcodes.OK


def _read_new_password(from_stdin: bool) -> str:
    """The new password: one line of stdin (--stdin), else typed twice at a prompt that
    does not echo. It is never printed, logged or put on a command line."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        # getpass would fall back to reading stdin with echo on: refuse instead.
        raise Failure(exitcodes.USAGE, "no terminal to ask for the password on: "
                                       "pipe it in with --stdin") from None
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise Failure(exitcodes.USAGE, "the two passwords differ; nothing was changed")
    return first


def _ticket_or_fail(state: Any, ticket_id: str) -> Dict[str, Any]:
    from server.support import tickets

    with state.db.tx(write=False) as tx:
        ticket = tickets.get_ticket(tx, ticket_id)
    if ticket is None:
        raise Failure(exitcodes.NOT_FOUND, f"no ticket {ticket_id!r}")
    return ticket


def cmd_bundle_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from server.intake import bundles
    from server.safetext import visible

    state = _open(args)
    try:
        _ticket_or_fail(state, args.ticket)
        with state.db.tx(write=False) as tx:
            rows = bundles.list_bundles(tx, args.ticket)
    finally:
        state.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return exitcodes.OK
    table = Table()
    for column in ("bundle", "status", "bytes", "host", "received"):
        table.add_column(column, no_wrap=column != "host")
    # The host, signer and reason come from the customer's bundle: never raw to the terminal.
    for row in rows:
        table.add_row(row["id"], row["status"], str(row["size"]), Text(visible(row["host"] or "")),
                      row["received"])
    console = Console()
    console.print(table, highlight=False)
    for row in rows:
        console.print(f"{row['id']}: sha256 {row['sha256']}, signer {visible(row['signer'] or '-')}"
                      + (f"\n  {row['status']}: {visible(row['reason'])}" if row["reason"] else ""),
                      markup=False, highlight=False, soft_wrap=True)
    return exitcodes.OK


def cmd_bundle_open(args: argparse.Namespace) -> int:
    from bundle.age import AgeError
    from server.intake import bundles
    from server.storage.blobs import StoreUnavailable

    state = _open(args)
    try:
        opened = bundles.open_bundle(state, args.bundle_id, Path(args.output), _actor(), force=args.force)
    except LookupError as exc:
        raise Failure(exitcodes.NOT_FOUND, str(exc)) from None
    except bundles.Refused as exc:
        raise Failure(exitcodes.QUARANTINED, str(exc)) from None
    except AgeError as exc:
        raise Failure(exitcodes.QUARANTINED, f"cannot unseal {args.bundle_id}: {exc}") from None
    except StoreUnavailable as exc:
        raise Failure(exitcodes.IO_ERROR, f"cannot read bundle {args.bundle_id}: {exc} (try again "
                      "when the store answers); removed what this run had written") from None
    except OSError as exc:
        raise Failure(exitcodes.IO_ERROR, f"cannot write {exc.filename or args.output}: "
                      f"{exc.strerror or exc}; removed what this run had written") from None
    finally:
        state.close()
    print(f"unsealed: {opened.plain}\nunpacked: {opened.folder} ({opened.files} files)")
    for name in opened.skipped:
        print(f"skipped: {name}")
    return exitcodes.OK


def cmd_bundle_import(args: argparse.Namespace) -> int:
    from server.intake import bundles

    path = Path(args.file)
    if not path.is_file():
        raise Failure(exitcodes.IO_ERROR, f"{path}: no such file")
    state = _open(args)
    try:
        _ticket_or_fail(state, args.ticket)
        result = bundles.import_file(state, args.ticket, path, _actor())
    finally:
        state.close()
    _emit(args, result, [
        f"bundle {result['id']} on {args.ticket}: {result['status']}"
        + (f" ({result['reason']})" if result["reason"] else ""),
        f"signer: {result['signer']}",
    ])
    return exitcodes.OK if result["status"] == "accepted" else exitcodes.QUARANTINED


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mydiag-server", description="mydiag support server: tickets, uploads, bundles. "
                    "Exit codes: 0 ok, 1 internal error, 2 usage, 3 data directory, 4 database, "
                    "5 not found, 6 file or network I/O, 7 bundle quarantined, 8 recording not verified, "
                    "130 interrupted.")
    parser.add_argument("--version", action="version",
                        version=f"mydiag-server {__version__} (bundle format {FORMAT_VERSION})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    p = command(sub, "init", "create a data directory: database, blobs, age identity, admin token", cmd_init)
    p.add_argument("--max-upload-bytes", type=int, metavar="N", help="largest single upload (default 4 GiB)")
    p.add_argument("--max-ticket-bytes", type=int, metavar="N", help="bytes per ticket (default 20 GiB)")
    p.add_argument("--blob-store", choices=("local", "s3"), default="local",
                   help="where bundles and uploads live: DATA/blobs (default) or an S3-compatible store")
    p.add_argument("--s3-endpoint", metavar="URL", help="the S3 store's URL (default: AWS's for the region)")
    p.add_argument("--s3-bucket", metavar="NAME", help="the bucket (it must exist)")
    p.add_argument("--s3-prefix", metavar="PREFIX", help="put before every key, e.g. mydiag/")
    p.add_argument("--s3-region", metavar="REGION", help="the region (default us-east-1)")
    p.add_argument("--s3-credentials-file", metavar="FILE",
                   help="access key id and secret on two lines (mode 0600); default: AWS_ACCESS_KEY_ID "
                        "and AWS_SECRET_ACCESS_KEY")
    json_option(p)

    p = command(sub, "run", "serve the API under /api/v1", cmd_run)
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:8080)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.add_argument("--ssh-listen", metavar="HOST:PORT",
                   help="also run the SSH gateway for remote sessions there (e.g. 0.0.0.0:2222)")
    p.add_argument("--ssh-advertise", metavar="HOST:PORT",
                   help="the gateway address grants name for customers' hosts and engineers, e.g. the "
                        "balancer's in front of several processes (default: --ssh-listen's)")
    p.add_argument("--smtp-listen", metavar="HOST:PORT",
                   help="take inbound mail by SMTP there (behind the organization's MTA; docs/mail.md)")
    p.add_argument("--lmtp", action="store_true", help="speak LMTP instead of SMTP on --smtp-listen")
    p.add_argument("--imap", metavar="URL", help="poll a mailbox: imap[s]://USER@HOST[:PORT]/FOLDER")
    p.add_argument("--imap-password-file", metavar="FILE", help="the IMAP password (first line)")
    p.add_argument("--imap-move-to", metavar="FOLDER",
                   help="move processed mail there instead of marking it \\Seen")

    ticket = actions(sub, "ticket", "tickets")
    p = command(ticket, "create", "open a ticket; prints its id, upload token and recipients",
                cmd_ticket_create)
    p.add_argument("--customer", required=True, help="the customer's name (letters, digits, . _ @ -)")
    p.add_argument("--title", required=True, help="one line saying what is wrong")
    p.add_argument("--token-days", type=float, metavar="DAYS",
                   help="how long the upload token stays valid (default 30)")
    json_option(p)

    bundle = actions(sub, "bundle", "bundles on a ticket")
    p = command(bundle, "list", "bundles of a ticket with their status", cmd_bundle_list)
    p.add_argument("--ticket", required=True, metavar="ID")
    json_option(p)
    p = command(bundle, "open", "unseal and unpack a bundle for reading into a new folder", cmd_bundle_open)
    p.add_argument("bundle_id", metavar="BUNDLE_ID")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="where to make DIR/<bundle id>-<name>/ and its .tar.zst (never replaced)")
    p.add_argument("--force", action="store_true",
                   help="open a quarantined or not yet verified bundle too (the limits still apply)")
    p = command(bundle, "import", "take a sealed bundle handed over by other means", cmd_bundle_import)
    p.add_argument("--ticket", required=True, metavar="ID")
    p.add_argument("file", metavar="FILE")
    json_option(p)

    engineer = actions(sub, "engineer", "engineer accounts")
    p = command(engineer, "add", "add an engineer; prints their token once", cmd_engineer_add)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--ssh-key", metavar="PUBKEY_FILE",
                   help="the engineer's OpenSSH public key, for joining remote sessions")
    json_option(p)

    p = command(engineer, "password", "set an engineer's password for the web pages (asked twice, "
                "or one line of stdin with --stdin); ends their web sessions", cmd_engineer_password)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--stdin", action="store_true", help="read the password from the first line of stdin")

    from server.cli import sessions as session_cli

    session_cli.register(sub)
    from server.cli import customers as customer_cli

    customer_cli.register(sub)
    from server.cli import capacity as capacity_cli

    capacity_cli.register(sub)
    from server.cli import simulate as simulate_cli

    simulate_cli.register(sub)
    from server.cli import migrate as migrate_cli

    migrate_cli.register(sub, _blob_settings)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Optional[Handler] = getattr(args, "run", None)
    if handler is None:
        parser.print_help()
        return exitcodes.USAGE
    from server.support.tickets import Invalid

    # Everything the server writes (database, blobs, identity) is for its own user only.
    os.umask(0o077)
    try:
        return handler(args)
    except (Failure, ConfigError, DatabaseError, Invalid) as exc:
        # Each of these is one sentence for the user already; what differs is the exit code.
        print(f"mydiag-server: {exc}", file=sys.stderr)
        if isinstance(exc, Failure):
            return exc.code
        if isinstance(exc, ConfigError):
            return exitcodes.DATA_DIR
        return exitcodes.DATABASE if isinstance(exc, DatabaseError) else exitcodes.USAGE
    except OSError as exc:
        print(f"mydiag-server: {exc.filename or ''}: {exc.strerror or exc}".replace(": :", ":"),
              file=sys.stderr)
        return exitcodes.IO_ERROR
    except KeyboardInterrupt:
        print("mydiag-server: interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence against a traceback
        if os.environ.get("MYDIAG_DEBUG"):
            raise
        print(f"mydiag-server: internal error: {type(exc).__name__}: {exc} "
              "(run again with MYDIAG_DEBUG=1 for details, and please report it)", file=sys.stderr)
        return exitcodes.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
