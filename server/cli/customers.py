"""`mydiag-server customer add-person|people|set-plan|ticket-terms` and `report ontime`."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any, Dict

from server import exitcodes
from server.cli.common import Failure, _actor, _emit, _open, actions, command, json_option


def _when(text: str, option: str) -> float:
    """An ISO date or date-time (UTC unless it says otherwise) as epoch seconds."""
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Failure(exitcodes.USAGE, f"{option} must be a date like 2026-12-01 or 2026-12-01T09:00Z, "
                                       f"not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def cmd_add_person(args: argparse.Namespace) -> int:
    from server.support import people

    state = _open(args)
    try:
        with state.db.tx() as tx:
            found = people.add_person(tx, args.customer, args.email, args.name, _actor())
    finally:
        state.close()
    _emit(args, found, [f"{found['email']} is a person of {found['customer']}"
                        + (f" ({found['name']})" if found["name"] else "")])
    return exitcodes.OK


def cmd_people(args: argparse.Namespace) -> int:
    from server.support import people

    state = _open(args)
    try:
        with state.db.tx(write=False) as tx:
            found = people.people_of(tx, args.customer)
            plan = people.plan_of(tx, args.customer)
    finally:
        state.close()
    _emit(args, {"customer": args.customer, "plan": plan, "people": found},
          [f"{args.customer} (plan {plan})"] + [f"  {p['email']}  {p['name'] or ''}" for p in found])
    return exitcodes.OK


def cmd_set_plan(args: argparse.Namespace) -> int:
    from server.support import people

    state = _open(args)
    try:
        with state.db.tx() as tx:
            people.set_plan(tx, args.customer, args.plan, _actor())
    finally:
        state.close()
    print(f"{args.customer} is on plan {args.plan} (for obligations opened from now on)")
    return exitcodes.OK


def cmd_ticket_terms(args: argparse.Namespace) -> int:
    from server.storage import audit
    from server.support import obligations, tickets

    state = _open(args)
    try:
        with state.db.tx() as tx:
            if tickets.get_ticket(tx, args.ticket) is None:
                raise Failure(exitcodes.NOT_FOUND, f"no ticket {args.ticket!r}")
            obligations.set_terms(tx, args.ticket, severity=args.severity, owner=args.owner)
            audit.record(tx, _actor(), "ticket.terms", args.ticket, severity=args.severity, owner=args.owner)
            found = obligations.terms(tx, args.ticket)
    finally:
        state.close()
    print(f"{args.ticket}: severity {found['severity']}, owner {found['owner'] or '(whoever opened it)'}")
    return exitcodes.OK


def cmd_ontime(args: argparse.Namespace) -> int:
    from server.support import ontime

    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    if until <= since:
        raise Failure(exitcodes.USAGE, "--until must be after --since")
    state = _open(args)
    try:
        with state.db.tx(write=False) as tx:
            found = ontime.report(tx, since, until)
    finally:
        state.close()
    found["since"], found["until"] = args.since, args.until
    _emit(args, found, _ontime_lines(found))
    return exitcodes.OK


def _ontime_lines(found: Dict[str, Any]) -> list:
    def rate(group: Dict[str, Any]) -> str:
        shown = "n/a" if group["rate"] is None else f"{group['rate'] * 100:.1f}%"
        return (f"{shown} on time ({group['on_time']} on time, {group['late']} late, "
                f"{group['open_late']} still open past due, {group['pending']} not yet due; "
                f"{group['messages']} messages)")

    late = found["lateness"]
    lines = [f"on-time replies {found['since']} .. {found['until']}",
             f"  first replies: {rate(found['first_replies'])}",
             f"  follow-ups:    {rate(found['follow_ups'])}",
             f"  lateness: {late['count']} late" + (
                 f", p50 {late['p50_seconds'] / 3600:.1f}h, p90 {late['p90_seconds'] / 3600:.1f}h, "
                 f"max {late['max_seconds'] / 3600:.1f}h" if late["count"] else ""),
             "    " + ", ".join(f"{k}: {v}" for k, v in late["buckets"].items()),
             f"  no reply needed: {found['no_reply_needed']['total']}"]
    lines += [f"    by {who}: {n}" for who, n in found["no_reply_needed"]["by"].items()]
    kept = found.get("promises")
    if kept:
        lines.append(f"  promises: {kept['promised']} agreed, {kept['kept']} kept, {kept['missed']} missed, "
                     f"{kept['renegotiated']} renegotiated, {kept['pending']} pending; "
                     f"{kept['refused']} refused by admission control")
    return lines


def register(sub: Any) -> None:
    customer = actions(sub, "customer", "customer organizations: their people, plans, ticket terms")
    p = command(customer, "add-person", "add a person (by e-mail) to a customer organization", cmd_add_person)
    p.add_argument("customer", metavar="CUSTOMER")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--name", metavar="N", help="the person's name")
    json_option(p)
    p = command(customer, "people", "a customer's people and plan", cmd_people)
    p.add_argument("customer", metavar="CUSTOMER")
    json_option(p)
    p = command(customer, "set-plan", "the customer's support plan (chooses the reply policy)", cmd_set_plan)
    p.add_argument("customer", metavar="CUSTOMER")
    p.add_argument("plan", metavar="PLAN")
    p = command(customer, "ticket-terms", "a ticket's severity and owner (who gets its clock warnings)",
                cmd_ticket_terms)
    p.add_argument("ticket", metavar="TICKET")
    p.add_argument("--severity", choices=("low", "normal", "high", "urgent"))
    p.add_argument("--owner", metavar="ENGINEER")
    report = actions(sub, "report", "reports over a period")
    p = command(report, "ontime", "on-time reply rate, lateness, messages needing no reply", cmd_ontime)
    p.add_argument("--since", required=True, metavar="DATE", help="start (UTC ISO date or date-time)")
    p.add_argument("--until", required=True, metavar="DATE", help="end, exclusive")
    json_option(p)
