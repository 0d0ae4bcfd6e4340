"""The options that name a support server, a ticket and its token, and the upload step
shared by `mydiag upload` and `mydiag collect --upload`.

The token is a secret: it is read from `--token-file` or `MYDIAG_TOKEN` by preference
(`--token` shows on the process list), and never printed, logged or put in an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from agent import exitcodes
from agent.remote import pins
from agent.remote.transport import API, Client
from agent.remote.upload import Backoff, Outcome, Refused, UploadError, fetch_ticket, upload_file
from bundle import age

TOKEN_ENV = "MYDIAG_TOKEN"


class RemoteError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_server_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    group = parser.add_argument_group("support server (the ticket's upload token is a secret)")
    group.add_argument("--server", required=required, metavar="URL",
                       help="the support server, e.g. https://support.example.com")
    group.add_argument("--ticket", required=required, metavar="ID", help="the ticket id (tk-…)")
    group.add_argument("--token-file", metavar="FILE",
                       help=f"read the upload token from FILE (preferred; or set {TOKEN_ENV})")
    group.add_argument("--token", metavar="TOKEN",
                       help="the upload token itself (visible to other users in the process list)")


def add_transfer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chunk-size", type=int, default=16, metavar="MIB",
                        help="MiB per request; a network cut re-sends at most one (default 16)")
    parser.add_argument("--retries", type=int, default=10, metavar="N",
                        help="retries in a row before giving up (default 10; run again to resume)")
    parser.add_argument("--chunk-checksum", action="store_true",
                        help="send a SHA-1 with each chunk, so a chunk cut short is dropped "
                        "whole (more CPU; the whole file's SHA-256 is confirmed either way)")


def client_from(args: argparse.Namespace) -> Client:
    token: Optional[str] = None
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise RemoteError(exitcodes.USAGE,
                              f"cannot read the token file {args.token_file}: {exc.strerror}") from None
    token = token or args.token or os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise RemoteError(exitcodes.USAGE,
                          f"no upload token: pass --token-file FILE (or set {TOKEN_ENV}, or --token)")
    try:
        return Client(args.server, token)
    except ValueError as exc:
        raise RemoteError(exitcodes.USAGE, str(exc)) from None


def recipients_for(client: Client, ticket: str) -> list:
    """The ticket's recipients, pinned on first use; refuses a change loudly."""
    found = fetch_ticket(client, ticket)
    offered = [r for r in found.get("recipients", []) if isinstance(r, str)]
    for recipient in offered:
        try:
            age.parse_recipient(recipient)
        except age.AgeError:
            raise RemoteError(exitcodes.UPLOAD_REFUSED,
                              f"the server offered an invalid recipient for {ticket}") from None
    try:
        return pins.pinned(client.server, ticket, offered)
    except pins.RecipientChanged as exc:
        raise RemoteError(exitcodes.RECIPIENT_CHANGED, str(exc)) from None


def send(path: Path, args: argparse.Namespace, show_progress: bool) -> Dict[str, Any]:
    """Seal `path` if it is a plain bundle, upload it, and return what the server said.

    A sealed copy made here sits next to the plain bundle (`<name>.age`) until the server
    confirmed it; a restarted run finds it and its journal, and resumes.
    """
    client = client_from(args)
    try:
        recipients = recipients_for(client, args.ticket)
        target = path
        if not age.is_age_file(path):
            target = path.with_name(path.name + ".age")
            if not target.exists():
                age.seal_file(path, target, recipients)
        outcome = _upload(target, client, args, show_progress)
        details = _details(client, args.ticket, outcome)
    except Refused as exc:
        raise RemoteError(exitcodes.UPLOAD_REFUSED, str(exc)) from None
    except UploadError as exc:
        raise RemoteError(exitcodes.UPLOAD_FAILED, str(exc)) from None
    except age.AgeError as exc:
        raise RemoteError(exitcodes.BAD_SEAL, f"cannot seal {path}: {exc}") from None
    finally:
        client.close()
    return {"file": str(target), "ticket": args.ticket, "bundle": outcome.bundle,
            "status": outcome.status, "reason": outcome.reason, "sha256": outcome.sha256,
            "bytes": outcome.size, "sent": outcome.sent, "duplicate": outcome.duplicate,
            "signer": details.get("signer"), "removed": not args.keep}


def _upload(target: Path, client: Client, args: argparse.Namespace, show_progress: bool) -> Outcome:
    options = dict(chunk_size=max(1, args.chunk_size) << 20, backoff=Backoff(args.retries),
                   remove=not args.keep, chunk_checksum=args.chunk_checksum)
    if not show_progress:
        return upload_file(target, client, args.ticket, **options)
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task(f"uploading {target.name}", total=target.stat().st_size)
        return upload_file(target, client, args.ticket,
                           progress=lambda done, total: bar.update(task, completed=done), **options)


def _details(client: Client, ticket: str, outcome: Outcome) -> Dict[str, Any]:
    if not outcome.bundle:
        return {}
    try:
        reply = client.get_json(f"{API}/tickets/{urllib.parse.quote(ticket, safe='')}/bundles/"
                                f"{urllib.parse.quote(outcome.bundle, safe='')}")
    except Exception:  # noqa: BLE001 - the upload is done; the details are a courtesy
        return {}
    data = reply.json()
    return data if reply.status == 200 and isinstance(data, dict) else {}


def report(result: Dict[str, Any], as_json: bool) -> int:
    """Print the outcome; the exit code says whether the bundle was accepted."""
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        what = "already on the server" if result["duplicate"] else "uploaded"
        print(f"{what}: {Path(result['file']).name} -> ticket {result['ticket']}, bundle "
              f"{result['bundle']}: {result['status']}"
              + (f" ({result['reason']})" if result["reason"] else "")
              + (f", signer {result['signer']}" if result.get("signer") else ""))
    if result["status"] == "quarantined":
        if not as_json:
            print(f"mydiag: the server quarantined the bundle: {result['reason']}", file=sys.stderr)
        return exitcodes.QUARANTINED
    return exitcodes.OK


def add_upload_options(parser: argparse.ArgumentParser) -> None:
    """`collect --upload`: the same server options, all optional until --upload is given."""
    parser.add_argument("--upload", action="store_true",
                        help="seal to the ticket's pinned recipients and upload the bundle")
    add_server_options(parser, required=False)
    add_transfer_options(parser)
    parser.add_argument("--keep", action="store_true", help="with --upload, keep the sealed bundle")


def pin_before_collect(args: argparse.Namespace) -> List[str]:
    """Check the server, the ticket and the token before collecting; the recipients to seal to."""
    if not (args.server and args.ticket):
        raise RemoteError(exitcodes.USAGE, "--upload needs --server URL and --ticket ID")
    client = client_from(args)
    try:
        return recipients_for(client, args.ticket)
    except Refused as exc:
        raise RemoteError(exitcodes.UPLOAD_REFUSED, str(exc)) from None
    except UploadError as exc:
        raise RemoteError(exitcodes.UPLOAD_FAILED, str(exc)) from None
    finally:
        client.close()


def upload_collected(bundle: Path, args: argparse.Namespace) -> Tuple[int, Dict[str, Any]]:
    """Upload a freshly collected bundle; (exit code, result or {"error": …}). Prints unless --json."""
    try:
        result = send(bundle, args, show_progress=not args.json and sys.stderr.isatty())
    except RemoteError as exc:
        if not args.json:
            print(f"mydiag: upload failed: {exc}", file=sys.stderr)
        return exc.code, {"error": str(exc)}
    code = report(result, as_json=False) if not args.json else (
        exitcodes.QUARANTINED if result["status"] == "quarantined" else exitcodes.OK)
    return code, result
