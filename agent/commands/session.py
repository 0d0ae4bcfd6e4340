"""`mydiag session grant|list|revoke|replay`: consented, time-limited, recorded remote sessions.

The command parses, asks, prints and exits; what a grant is and does lives in agent/session/
(terms, supportapi, holding, listing, revocation, recordings).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from agent import exitcodes
from agent.commands.say import fail, usage
from agent.session import listing, recordings, revocation
from agent.session import state as session_state
from agent.session.diagaccount import ALLOW_PRIVILEGED
from agent.session.terms import clean, gateway_address, parse_duration, span

EXIT_CODES = ("Exit codes: 0 done, 2 bad arguments or not confirmed, 10 (replay) a recording does not "
              "verify, 13 the server could not be reached, 14 the server refused the grant, 130 interrupted.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "session", help="grant an engineer a remote session; list, revoke, replay sessions",
        description="Remote sessions with no inbound port: this host dials out to the support server's "
        "SSH gateway and the named engineer joins with ssh, for the time granted, in read-only diag mode "
        "or with a shell. Every byte is recorded here and on the server. See docs/sessions.md. "
        + EXIT_CODES)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    grant = actions.add_parser(
        "grant", add_help=False, help="grant a session and hold it in the foreground (Ctrl-C revokes it)",
        description="Grant ENGINEER a session for DURATION, then hold the tunnel in the foreground, "
        "showing who is connected and what they do, until it expires, is revoked, or Ctrl-C. " + EXIT_CODES)
    grant.add_argument("--help", action="help", help="show this help and exit")
    # `mydiag session revoke` must act within a second: when it (or list, replay) is what
    # runs, the grant's server and MySQL options, whose modules take a while to import
    # (the MySQL client, the upload code), are not needed and not loaded.
    light = sys.argv[1:2] == ["session"] and sys.argv[2:3] in (["revoke"], ["list"], ["replay"])
    if not light:
        from agent.commands.ticket_options import add_server_options

        add_server_options(grant)
    grant.add_argument("--engineer", required=True, metavar="NAME", help="who may join (their server name)")
    grant.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                       help="how long: 90s, 30m, 2h (at most 24h)")
    grant.add_argument("--purpose", default="", metavar="TEXT",
                       help="the session's agenda: what the engineer will look at (kept with the recording)")
    grant.add_argument("--mode", choices=("diag", "shell"), default="diag",
                       help="diag (default): read-only diagnostics actions; shell: a shell as you")
    grant.add_argument("--gateway", metavar="HOST:PORT",
                       help="reach the SSH gateway here instead of where the server says")
    grant.add_argument("--allow-privileged-account", action="store_true",
                       help="diag mode: let the console run even though its MySQL account has more than "
                       "diagnostics need (FILE, SUPER, writes, the mysql schema...); without it the console "
                       "refuses such an account (see `mydiag grants --purpose diag`)")
    grant.add_argument("--via-agent", action="store_true",
                       help="hand the grant to the running scheduled agent instead of holding it here")
    grant.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    grant.add_argument("--json", action="store_true",
                       help="print JSON lines; the first is the session with its `id`")
    if not light:
        from agent.commands.connection_options import add_connection_options

        add_connection_options(grant)
    grant.set_defaults(run=run_grant)

    listing = actions.add_parser("list", help="sessions granted on this host")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=run_list)

    revoke = actions.add_parser(
        "revoke", help="end a session now (works without the server)",
        description="Cut the session within a second: the process holding it closes every engineer "
        "channel and the tunnel, whether or not the support server can be reached. " + EXIT_CODES)
    revoke.add_argument("session_id", metavar="ID")
    revoke.set_defaults(run=run_revoke)

    replay = actions.add_parser(
        "replay", help="verify a session's recording on this host and play it",
        description="Check each recording's hash chain, then play what the engineer saw, or list what "
        "they typed. " + EXIT_CODES)
    replay.add_argument("session_id", metavar="ID")
    replay.add_argument("--commands", action="store_true", help="list what was typed instead of playing")
    replay.add_argument("--part", type=int, metavar="N", help="only the N-th channel of the session")
    replay.add_argument("--speed", type=float, default=1.0, help="play faster (2) or slower (0.5)")
    replay.add_argument("--instant", action="store_true", help="no pauses: print everything at once")
    replay.set_defaults(run=run_replay)
    parser.set_defaults(run=lambda args: usage(parser, exitcodes.USAGE))


def _local(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _printer(as_json: bool):
    """One event a line. The tunnel and its channels log from threads of their own, and
    print() writes a line's text and its end apart: two events at once came out as
    `{…}{…}` and then an empty line. Each line is written whole, under a lock."""
    lock = threading.Lock()

    def log(message: str) -> None:
        if as_json:
            line = json.dumps({"at": _iso(time.time()), "event": message})
        else:
            line = f"{time.strftime('%H:%M:%S')} {message}"
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    return log


# -- grant ------------------------------------------------------------------------------


def run_grant(args: argparse.Namespace) -> int:
    from agent.commands.ticket_options import RemoteError, client_from
    from agent.session import holding
    from agent.session.supportapi import GrantRefused, Unreachable, ask_grant

    try:
        seconds = parse_duration(args.duration)
        purpose = clean(args.purpose, "--purpose", 300) or "not given"
        engineer = clean(args.engineer, "--engineer", 64)
        gateway = gateway_address(args.gateway)
    except ValueError as exc:
        return fail(str(exc), exitcodes.USAGE)
    if args.via_agent and args.ask_pass:
        return fail("--via-agent uses the agent's own MySQL settings: leave out --ask-pass", exitcodes.USAGE)
    try:
        client = client_from(args)
    except RemoteError as exc:
        return fail(str(exc), exc.code)
    until = time.time() + seconds
    summary = (f"grant {engineer} a {args.mode} session on this host until {_local(until)} "
               f"({span(seconds)}), through {client.server}, ticket {args.ticket}\n  purpose: {purpose}\n  "
               + ("diag mode: read-only diagnostics actions (SQL checked read-only and time-limited, "
                  "collectors, logs, OS state); no shell"
                  + ("\n  --allow-privileged-account: the console runs even if its MySQL account has more "
                     "than diagnostics need" if args.allow_privileged_account else "")
                  if args.mode == "diag" else
                  f"shell mode: a shell as {_user()} on this host")
               + "\n  every byte is recorded here and on the support server; `mydiag session revoke ID` "
               "or Ctrl-C ends it at once")
    if not args.yes:
        if not sys.stdin.isatty():
            return fail("confirm the grant with --yes (standard input is not a terminal)", exitcodes.USAGE)
        # Questions go to stderr: with --json, stdout carries JSON only.
        print(summary + "\nGrant this session? [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return fail("not granted", exitcodes.USAGE)
    interrupt = holding.Interrupt()
    if not args.via_agent:
        # From here on, Ctrl-C means: revoke (the holder, once running, does it).
        signal.signal(signal.SIGINT, interrupt.handle)
        signal.signal(signal.SIGTERM, interrupt.handle)
    if args.allow_privileged_account and args.mode != "diag":
        return fail("--allow-privileged-account is for diag mode (--mode diag)", exitcodes.USAGE)
    spec = None
    if args.mode == "diag" and not args.via_agent:
        spec = _spec(args)
        if isinstance(spec, int):
            return spec
        if args.allow_privileged_account:
            spec[ALLOW_PRIVILEGED] = True
    try:
        grant, key = ask_grant(client, args.ticket, args.mode, engineer, seconds, purpose, gateway)
    except Unreachable as exc:
        client.close()
        return fail(str(exc), exitcodes.UPLOAD_FAILED)
    except GrantRefused as exc:
        client.close()
        return fail(str(exc), exitcodes.UPLOAD_REFUSED)
    state = holding.record(grant, args.via_agent)
    first = {"id": grant.id, "engineer": grant.engineer, "mode": grant.mode, "purpose": grant.purpose,
             "expires": _iso(grant.expires), "ticket": grant.ticket, "join": grant.join_command(),
             "via": state["via"]}
    if args.json:
        print(json.dumps(first), flush=True)
    else:
        print(f"session {grant.id} granted to {grant.engineer} until {_local(grant.expires)} "
              f"({grant.mode} mode): {grant.purpose}\nthe engineer joins with: {grant.join_command()}",
              flush=True)
    log = _printer(args.json)
    if args.via_agent:
        client.close()
        pid = holding.hand_to_agent(grant, key, args.allow_privileged_account)
        if pid is not None:
            log(f"the scheduled agent (pid {pid}) holds session {grant.id}")
        else:
            log(f"no running agent took session {grant.id} yet (is `mydiag agent run` running, with the "
                f"same state directory {session_state.root().parent}?); it will when it starts, until the "
                f"grant expires; `mydiag session revoke {grant.id}` withdraws it")
        return exitcodes.OK
    holder = holding.foreground(grant, key, spec, client, log, interrupt)
    if not args.json:
        log(f"holding session {grant.id}; Ctrl-C ends it")
    try:
        reason = holder.run()
    finally:
        client.close()
    log(f"session {grant.id} ended: {reason}; recording in {holder.folder}")
    return exitcodes.OK


def _spec(args: argparse.Namespace) -> Any:
    import dataclasses

    from agent.collect.connection import OptionError
    from agent.commands.connection_options import connect_spec

    try:
        return dataclasses.asdict(connect_spec(args))
    except OptionError as exc:
        return fail(str(exc), exitcodes.USAGE)


# -- list, revoke, replay ---------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    listed = listing.sessions()
    if args.json:
        print(json.dumps(listed, indent=2))
        return exitcodes.OK
    if not listed:
        print("no sessions on this host")
    for row in listed:
        print(f"{row['id']}  {row['status']:<8} {row['engineer']:<12} {row['mode']:<5} until "
              f"{_local(float(_epoch(row['expires'])))}  {row['parts']} part(s)  {row['purpose']}"
              + (f"  ({row['end_reason']})" if row["end_reason"] else ""))
    return exitcodes.OK


def _epoch(iso: str) -> float:
    return _dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc).timestamp()


def run_revoke(args: argparse.Namespace) -> int:
    session_id = args.session_id
    try:
        done = revocation.revoke(session_id, _user())
    except ValueError as exc:
        return fail(str(exc), exitcodes.USAGE)
    if done.outcome == revocation.UNKNOWN:
        return fail(f"no session {session_id} on this host (see `mydiag session list`)", exitcodes.USAGE)
    if done.outcome == revocation.ENDED_BEFORE:
        print(f"session {session_id} had already ended ({done.end_reason})")
    elif done.outcome == revocation.UNHELD:
        print(f"session {session_id} revoked; no process was holding it, so nobody could join; "
              "the support server ends it at its deadline")
    elif done.outcome == revocation.CONFIRMED:
        told = ("the support server was told" if done.server_told
                else "the support server could not be told (it ends the session at its deadline)")
        print(f"session {session_id} revoked: every channel and the tunnel are closed; {told}")
    elif done.outcome == revocation.CUT:
        print(f"session {session_id} revoked: every channel and the tunnel are closed; the support "
              "server has not answered yet (it ends the session at its deadline in any case)")
    else:
        print(f"session {session_id} revoked: the holder (pid {done.holder_pid}) was told and "
              "cuts it; it has not confirmed yet")
    return exitcodes.OK


def run_replay(args: argparse.Namespace) -> int:
    from recording import asciicast

    try:
        casts, anchors = recordings.parts(args.session_id, args.part)
    except ValueError as exc:
        return fail(str(exc), exitcodes.USAGE)
    if not casts:
        return fail(f"no recording of session {args.session_id} on this host", exitcodes.USAGE)
    verified = asciicast.replay(casts, anchors, "mydiag", list_commands=args.commands,
                                speed=args.speed, instant=args.instant)
    return exitcodes.OK if verified else exitcodes.NOT_VERIFIED
