"""`mydiag-server session list|show|replay|revoke`, the SSH gateway's start-up, engineer keys."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

from server import exitcodes
from server.cli.common import Failure, _actor, _emit, _open, actions, command, json_option


def parse_listen(value: str, option: str) -> tuple:
    host, _, port_text = value.rpartition(":")
    if not host or not port_text.isdigit():
        raise Failure(exitcodes.USAGE, f"{option} must be HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port_text)


def start_gateway(value: str, state: Any) -> Any:
    from server.gateway.server import Gateway

    host, port = parse_listen(value, "--ssh-listen")
    try:
        gateway = Gateway(state, host, port)
    except OSError as exc:
        raise Failure(exitcodes.IO_ERROR,
                      f"cannot listen for SSH on {value}: {exc.strerror or exc}") from None
    gateway.start()
    from server.storage import recordings

    # Parts a dead process left on this disk, and those the store was down for, go to the store.
    recordings.archiver_for(state.db, state.store, gateway.recordings, state.owner)
    print(f"mydiag-server: ssh gateway on {host}:{gateway.port} (host key {gateway.fingerprint})",
          file=sys.stderr, flush=True)
    return gateway


def read_ssh_key(path: str) -> str:
    from server.gateway.records import parse_public_key

    try:
        text = Path(path).read_text(errors="replace").strip()
    except OSError as exc:
        raise Failure(exitcodes.IO_ERROR, f"cannot read the SSH key {path}: {exc.strerror}") from None
    if "PRIVATE KEY" in text:
        raise Failure(exitcodes.USAGE, f"{path} is a private key: give the public one (the .pub file)")
    kind, blob = parse_public_key(text.splitlines()[0] if text else "")
    return f"{kind} {blob}"


def add_key(tx: Any, name: str, public_key: str) -> str:
    from server.gateway import records as sessions

    return sessions.add_engineer_key(tx, name, public_key, _actor())


def cmd_list(args: argparse.Namespace) -> int:
    from server.gateway import records as sessions

    state = _open(args)
    try:
        with state.db.tx(write=False) as tx:
            rows = sessions.list_for_ticket(tx, args.ticket)
    finally:
        state.close()
    lines = [f"{r['id']}  {r['state']:<8} {r['ticket']}  {r['engineer']:<12} {r['mode']:<5} "
             f"until {r['expires']}  parts {r['parts']}  {r['purpose']}"
             + (f"  ({r['end_reason']})" if r["end_reason"] else "") for r in rows]
    _emit(args, rows, lines or ["no sessions"])
    return exitcodes.OK


def cmd_show(args: argparse.Namespace) -> int:
    """The session and its timeline: every audit entry about it, oldest first."""
    from server.storage import audit

    _, found, timeline = _read_session(args, lambda tx, found: [
        e for e in reversed(audit.entries(tx, found["ticket"])) if e["subject"] == args.session_id])
    found["timeline"] = timeline
    lines = [f"session {found['id']} on {found['ticket']}: {found['engineer']}, {found['mode']} mode, "
             f"{found['state']}" + (f" ({found['end_reason']})" if found["end_reason"] else ""),
             f"purpose: {found['purpose']}", f"granted by {found['granted_by']} on host {found['host']}; "
             f"until {found['expires']}"]
    for entry in timeline:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["at"]))
        detail = ", ".join(f"{k}={v}" for k, v in entry["detail"].items() if v is not None)
        lines.append(f"  {when}  {entry['action']:<16} {entry['actor']}  {detail}")
    _emit(args, found, lines)
    return exitcodes.OK


def cmd_revoke(args: argparse.Namespace) -> int:
    from server.gateway import records as sessions

    state = _open(args)
    try:
        with state.db.tx() as tx:
            if sessions.get(tx, args.session_id) is None:
                raise Failure(exitcodes.NOT_FOUND, f"no session {args.session_id!r}")
            ended = sessions.end(tx, args.session_id, "revoked", f"revoked by {_actor()}", _actor())
    finally:
        state.close()
    print(f"session {args.session_id} revoked (a running gateway cuts it within a second)" if ended
          else f"session {args.session_id} had already ended")
    return exitcodes.OK


def cmd_replay(args: argparse.Namespace) -> int:
    from server.storage import recordings
    from server.storage.blobs import StoreUnavailable

    state, _, anchors = _read_session(args, lambda tx, found: _anchors(tx, found["ticket"], args.session_id))
    # Parts still on this disk, the others from the blob store (server/storage/recordings.py).
    state = _open(args)
    try:
        with recordings.local_parts(state.db, state.store, state.data.path / "sessions", state.data.tmp,
                                    args.session_id) as casts:
            return replay(casts, args, anchors)
    except StoreUnavailable as exc:
        raise Failure(exitcodes.IO_ERROR, f"the recording is in the blob store, which cannot be reached "
                      f"({exc}); try again") from None
    finally:
        state.close()


def _read_session(args: argparse.Namespace, more: Callable[[Any, Dict[str, Any]], Any]) -> tuple:
    """(state, the session `args.session_id`, `more(tx, session)`), read in one transaction.

    A session that does not exist leaves with NOT_FOUND. The state is closed already: only
    its settings (the data directory) are for use afterwards.
    """
    from server.gateway import records as sessions

    state = _open(args)
    try:
        with state.db.tx(write=False) as tx:
            found = sessions.get(tx, args.session_id)
            if found is None:
                raise Failure(exitcodes.NOT_FOUND, f"no session {args.session_id!r}")
            return state, found, more(tx, found)
    finally:
        state.close()


def _anchors(tx: Any, ticket_id: str, session_id: str) -> Dict[str, str]:
    """Each part's final chain head as the audit log (append-only) kept it, by file name."""
    from server.storage import audit

    return {e["detail"].get("file"): e["detail"].get("chain_head")
            for e in audit.entries(tx, ticket_id, limit=100000)
            if e["subject"] == session_id and e["action"] == "session.part" and e["detail"].get("file")}


def replay(casts: List[Path], args: argparse.Namespace, anchors: Dict[str, str]) -> int:
    """Verify every part, then play it or list what was typed."""
    from recording import asciicast

    if args.part is not None:
        casts = [c for c in casts if c.stem == str(args.part)]
    if not casts:
        raise Failure(exitcodes.NOT_FOUND, f"no recording of session {args.session_id}"
                      + (f" part {args.part}" if args.part is not None else ""))
    verified = asciicast.replay(casts, anchors, "mydiag-server", list_commands=args.commands,
                                speed=args.speed, instant=args.instant)
    return exitcodes.OK if verified else exitcodes.NOT_VERIFIED


def register(sub: Any) -> None:
    session = actions(sub, "session", "remote sessions: list, show, replay, revoke")
    p = command(session, "list", "sessions with their state", cmd_list)
    p.add_argument("--ticket", metavar="ID", help="only this ticket's")
    json_option(p)
    p = command(session, "show", "a session and its timeline (grant, joins, refusals, end)", cmd_show)
    p.add_argument("session_id", metavar="ID")
    json_option(p)
    p = command(session, "replay", "verify a session's recording and play it (or list the commands)",
                cmd_replay)
    add_replay_options(p)
    p = command(session, "revoke", "end a session now", cmd_revoke)
    p.add_argument("session_id", metavar="ID")


def add_replay_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("session_id", metavar="ID")
    p.add_argument("--commands", action="store_true", help="list what was typed instead of playing")
    p.add_argument("--part", type=int, metavar="N", help="only the N-th channel of the session")
    p.add_argument("--speed", type=float, default=1.0, help="play faster (2) or slower (0.5)")
    p.add_argument("--instant", action="store_true", help="no pauses: print everything at once")

