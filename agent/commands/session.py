"""`mydiag session grant|list|revoke|replay`: consented, time-limited, recorded remote sessions."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
from typing import Any, Dict, List, Optional

from agent import exitcodes
from agent.commands.say import fail, usage
from agent.session import state as session_state
from agent.session.diagaccount import ALLOW_PRIVILEGED

EXIT_CODES = ("Exit codes: 0 done, 2 bad arguments or not confirmed, 10 (replay) a recording does not "
              "verify, 13 the server could not be reached, 14 the server refused the grant, 130 interrupted.")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SECONDS = 24 * 3600


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


def parse_duration(text: str) -> float:
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ValueError(f"--for {text!r}: give a duration such as 90s, 30m or 2h")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= MAX_SECONDS:
        raise ValueError(f"--for {text!r}: a session lasts from 1 second to 24 hours")
    return seconds


def _local(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _clean(text: str, what: str, limit: int) -> str:
    text = text.strip()
    if len(text) > limit or any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"{what} must be at most {limit} printable characters")
    return text


# -- grant ------------------------------------------------------------------------------


def run_grant(args: argparse.Namespace) -> int:
    from agent.commands.ticket_options import RemoteError, client_from

    try:
        seconds = parse_duration(args.duration)
        purpose = _clean(args.purpose, "--purpose", 300) or "not given"
        engineer = _clean(args.engineer, "--engineer", 64)
        gateway = _gateway_option(args.gateway)
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
               f"({_span(seconds)}), through {client.server}, ticket {args.ticket}\n  purpose: {purpose}\n  "
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
    interrupt = Interrupt()
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
        grant, key = _request_grant(client, args, engineer, seconds, purpose, gateway)
    except RemoteError as exc:
        client.close()
        return fail(str(exc), exc.code)
    state = {**grant.to_dict(), "state": "granted", "created": _iso(time.time()),
             "via": "agent" if args.via_agent else "foreground", "parts": []}
    session_state.save(grant.id, state)
    first = {"id": grant.id, "engineer": grant.engineer, "mode": grant.mode, "purpose": grant.purpose,
             "expires": _iso(grant.expires), "ticket": grant.ticket, "join": grant.join_command(),
             "via": state["via"]}
    if args.json:
        print(json.dumps(first), flush=True)
    else:
        print(f"session {grant.id} granted to {grant.engineer} until {_local(grant.expires)} "
              f"({grant.mode} mode): {grant.purpose}\nthe engineer joins with: {grant.join_command()}",
              flush=True)
    if args.via_agent:
        client.close()
        return _hand_to_agent(grant, key, args.json, args.allow_privileged_account)
    return _hold(grant, key, spec, client, args.json, interrupt)


class Interrupt:
    """Ctrl-C or SIGTERM while a grant is made or held: remembered, acted on by the holder."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = "revoked by the customer (Ctrl-C)"
        self.holder: Any = None

    def handle(self, signum: int, _frame: Any) -> None:
        if signum != signal.SIGINT:
            self.reason = f"revoked by the customer ({signal.Signals(signum).name})"
        if self.holder is not None:
            self.holder.stop_reason = self.reason
        self.event.set()


def _span(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _gateway_option(value: Optional[str]) -> Optional[tuple]:
    if not value:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--gateway must be HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def _spec(args: argparse.Namespace) -> Any:
    import dataclasses

    from agent.collect.connection import OptionError
    from agent.commands.connection_options import connect_spec

    try:
        return dataclasses.asdict(connect_spec(args))
    except OptionError as exc:
        return fail(str(exc), exitcodes.USAGE)


def _request_grant(client: Any, args: argparse.Namespace, engineer: str, seconds: float, purpose: str,
                   gateway: Optional[tuple]) -> tuple:
    from agent.commands.ticket_options import RemoteError
    from agent.remote.transport import API, Transient
    from agent.session.grant import Grant
    from agent.session.tunnel import new_key, public_line

    key = new_key()
    body = {"engineer": engineer, "seconds": seconds, "purpose": purpose, "mode": args.mode,
            "tunnel_key": public_line(key), "host": socket.gethostname()}
    path = f"{API}/tickets/{urllib.parse.quote(args.ticket, safe='')}/sessions"
    try:
        reply = client.post_json(path, body)
    except Transient as exc:
        raise RemoteError(exitcodes.UPLOAD_FAILED, str(exc)) from None
    data = reply.json()
    if reply.status != 201 or not isinstance(data, dict):
        raise RemoteError(exitcodes.UPLOAD_REFUSED, f"the server refused the grant: {reply.error()}")
    offered = data.get("gateway") or {}
    host = gateway[0] if gateway else offered.get("host") or urllib.parse.urlsplit(client.server).hostname
    port = gateway[1] if gateway else int(offered.get("port") or 0)
    grant = Grant(id=str(data["id"]), engineer=str(data["engineer"]), mode=str(data["mode"]),
                  purpose=str(data["purpose"]), ticket=args.ticket, server=client.server,
                  host=str(data.get("host") or socket.gethostname()),
                  expires=time.time() + float(data.get("expires_in") or 0), gateway_host=str(host),
                  gateway_port=port, host_key=str(offered.get("host_key") or ""))
    return grant, key


def _printer(as_json: bool):
    def log(message: str) -> None:
        if as_json:
            print(json.dumps({"at": _iso(time.time()), "event": message}), flush=True)
        else:
            print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    return log


def _hold(grant: Any, key: Any, spec: Any, client: Any, as_json: bool, interrupt: Interrupt) -> int:
    from agent.remote.transport import API, Transient
    from agent.session.tunnel import Holder

    def notify(reason: str) -> bool:
        path = (f"{API}/tickets/{urllib.parse.quote(grant.ticket, safe='')}/sessions/"
                f"{urllib.parse.quote(grant.id, safe='')}/revoke")
        try:
            client.timeout = 3.0
            return client.post_json(path, {}).status == 200
        except Transient:
            return False

    log = _printer(as_json)
    holder = Holder(grant, key, spec, log, notify)
    holder.stop, holder.stop_reason, interrupt.holder = interrupt.event, interrupt.reason, holder
    if not as_json:
        log(f"holding session {grant.id}; Ctrl-C ends it")
    try:
        reason = holder.run()
    finally:
        client.close()
    log(f"session {grant.id} ended: {reason}; recording in {holder.folder}")
    return exitcodes.OK


def _hand_to_agent(grant: Any, key: Any, as_json: bool, allow_privileged: bool) -> int:
    from agent.session.tunnel import hold_path, key_pem

    request = {"grant": grant.to_dict(), "key": key_pem(key)}
    if allow_privileged:
        request[ALLOW_PRIVILEGED] = True
    session_state.write_json(hold_path(grant.id), request)
    log = _printer(as_json)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        data = session_state.load(grant.id) or {}
        if session_state.holder_alive(data) and data.get("holder_pid") != os.getpid():
            log(f"the scheduled agent (pid {data['holder_pid']}) holds session {grant.id}")
            return exitcodes.OK
        time.sleep(0.1)
    log(f"no running agent took session {grant.id} yet (is `mydiag agent run` running, with the same "
        f"state directory {session_state.root().parent}?); it will when it starts, until the grant expires; "
        f"`mydiag session revoke {grant.id}` withdraws it")
    return exitcodes.OK


# -- list, revoke, replay ---------------------------------------------------------------


def _status(data: Dict[str, Any]) -> str:
    if data.get("state") == "ended":
        return "ended"
    if session_state.holder_alive(data):
        return "expired" if float(data.get("expires") or 0) <= time.time() else "live"
    if float(data.get("expires") or 0) <= time.time():
        return "expired"
    return "waiting" if data.get("via") == "agent" else "not held"


def run_list(args: argparse.Namespace) -> int:
    rows = session_state.all_sessions()
    listed = [{"id": d.get("id"), "status": _status(d), "engineer": d.get("engineer"), "mode": d.get("mode"),
               "purpose": d.get("purpose"), "ticket": d.get("ticket"), "server": d.get("server"),
               "expires": _iso(float(d.get("expires") or 0)), "holder_pid": d.get("holder_pid"),
               "end_reason": d.get("end_reason"), "parts": len(d.get("parts") or [])} for d in rows]
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
    try:
        data = session_state.load(args.session_id)
    except ValueError as exc:
        return fail(str(exc), exitcodes.USAGE)
    if data is None:
        return fail(f"no session {args.session_id} on this host (see `mydiag session list`)",
                     exitcodes.USAGE)
    if data.get("state") == "ended":
        print(f"session {args.session_id} had already ended ({data.get('end_reason')})")
        return exitcodes.OK
    session_state.revoke(args.session_id, _user())
    if not session_state.holder_alive(data):
        session_state.update(args.session_id, state="ended", end_reason="revoked by the customer",
                             ended=time.time(), server_told=False)
        with contextlib.suppress(OSError):
            # A grant never taken by the agent: its tunnel key goes too.
            (session_state.folder(args.session_id) / session_state.HOLD).unlink()
        print(f"session {args.session_id} revoked; no process was holding it, so nobody could join; "
              "the support server ends it at its deadline")
        return exitcodes.OK
    deadline = time.monotonic() + 5.0
    cut = False
    while time.monotonic() < deadline:
        now = session_state.load(args.session_id) or {}
        cut = cut or now.get("state") == "ended"
        if cut and now.get("server_told") is not None:
            told = ("the support server was told" if now["server_told"]
                    else "the support server could not be told (it ends the session at its deadline)")
            print(f"session {args.session_id} revoked: every channel and the tunnel are closed; {told}")
            return exitcodes.OK
        time.sleep(0.05)
    if cut:
        print(f"session {args.session_id} revoked: every channel and the tunnel are closed; the support "
              "server has not answered yet (it ends the session at its deadline in any case)")
    else:
        print(f"session {args.session_id} revoked: the holder (pid {data.get('holder_pid')}) was told and "
              "cuts it; it has not confirmed yet")
    return exitcodes.OK


def run_replay(args: argparse.Namespace) -> int:
    from recording import asciicast

    try:
        folder = session_state.folder(args.session_id)
    except ValueError as exc:
        return fail(str(exc), exitcodes.USAGE)
    data = session_state.load(args.session_id) or {}
    anchors = {p.get("file"): p.get("chain_head") for p in data.get("parts") or [] if p.get("file")}
    casts: List[Any] = asciicast.parts(folder) if folder.is_dir() else []
    if args.part is not None:
        casts = [c for c in casts if c.stem == str(args.part)]
    if not casts:
        return fail(f"no recording of session {args.session_id} on this host", exitcodes.USAGE)
    verified = asciicast.replay(casts, anchors, "mydiag", list_commands=args.commands,
                                speed=args.speed, instant=args.instant)
    return exitcodes.OK if verified else exitcodes.NOT_VERIFIED
