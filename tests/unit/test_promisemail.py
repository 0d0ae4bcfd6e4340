"""The promise by mail, its pure parts: signed links that verify only as made (every changed
character refused, junk never raises, an expired one refused), local times in a zone (DST gaps
and folds refused), and the strict keyword grammar of an answer by mail (quoted history and
our own instructions, quoted back, never count)."""

from __future__ import annotations

import datetime
import secrets

import pytest

from server.mail import promisemail
from server.mail.promisemail import LinkRefused
from server.mail.tokens import Signer

NOW = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.timezone.utc).timestamp()


def signer() -> Signer:
    return Signer(secrets.token_bytes(32), "support.test")


def test_a_link_round_trips_with_its_promise_action_person_and_expiry() -> None:
    key = signer()
    for action in ("accept", "counter"):
        token = promisemail.make_link(key, "pr-0123abcd", action, "Ann@Acme.Test", NOW + 3600)
        link = promisemail.read_link(key, token, NOW)
        assert (link.promise_id, link.action, link.email, link.expires) == \
            ("pr-0123abcd", action, "ann@acme.test", NOW + 3600)


def test_every_changed_character_of_a_link_is_refused_as_tampered() -> None:
    key = signer()
    token = promisemail.make_link(key, "pr-0123abcd", "accept", "ann@acme.test", NOW + 3600)
    alphabet = "0123456789abcdefACac.-_x"
    for at in range(len(token)):
        for other in alphabet:
            if other == token[at]:
                continue
            changed = token[:at] + other + token[at + 1:]
            with pytest.raises(LinkRefused) as refused:
                promisemail.read_link(key, changed, NOW)
            assert refused.value.status == 400, changed


def test_a_link_signed_with_another_key_or_for_another_promise_is_refused() -> None:
    mine, theirs = signer(), signer()
    forged = promisemail.make_link(theirs, "pr-0123abcd", "accept", "ann@acme.test", NOW + 3600)
    with pytest.raises(LinkRefused) as refused:
        promisemail.read_link(mine, forged, NOW)
    assert refused.value.status == 400
    good = promisemail.make_link(mine, "pr-0123abcd", "accept", "ann@acme.test", NOW + 3600)
    moved = good.replace("pr-0123abcd", "pr-0123abce")
    with pytest.raises(LinkRefused):
        promisemail.read_link(mine, moved, NOW)
    counter = good.replace(".a.", ".c.")
    with pytest.raises(LinkRefused):
        promisemail.read_link(mine, counter, NOW)


def test_an_expired_link_is_gone() -> None:
    key = signer()
    token = promisemail.make_link(key, "pr-0123abcd", "accept", "ann@acme.test", NOW)
    with pytest.raises(LinkRefused) as refused:
        promisemail.read_link(key, token, NOW)
    assert refused.value.status == 410


@pytest.mark.parametrize("junk", ["", "x", "v1", "v1.....", "v1.pr-1.a.1.YQ." + "0" * 40 + "x",
                                  "v1.pr-1.a.99999999999999.YQ." + "0" * 40, "\x00" * 50, "é" * 100,
                                  "v1.pr-1.a.1.%%%." + "0" * 40, "A" * 5000, None, 12])
def test_junk_is_a_refused_link_never_an_error(junk) -> None:
    with pytest.raises(LinkRefused) as refused:
        promisemail.read_link(signer(), junk, NOW)
    assert refused.value.status == 400


def test_local_times_become_utc_in_their_zone() -> None:
    assert promisemail.local_moment("2026-12-05T15:00", "UTC") == \
        datetime.datetime(2026, 12, 5, 15, 0, tzinfo=datetime.timezone.utc).timestamp()
    assert promisemail.local_moment("2026-12-05 16:00", "Europe/Berlin") == \
        datetime.datetime(2026, 12, 5, 15, 0, tzinfo=datetime.timezone.utc).timestamp()
    assert promisemail.local_moment("2026-07-05 17:00:30", "Europe/Berlin") == \
        datetime.datetime(2026, 7, 5, 15, 0, 30, tzinfo=datetime.timezone.utc).timestamp()


def test_a_local_time_the_clocks_skip_or_pass_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        promisemail.local_moment("2026-03-29T02:30", "Europe/Berlin")
    with pytest.raises(ValueError, match="happens twice"):
        promisemail.local_moment("2026-10-25T02:30", "Europe/Berlin")
    with pytest.raises(ValueError, match="does not exist"):
        promisemail.local_moment("2026-03-08T02:15", "America/New_York")


@pytest.mark.parametrize("value,zone", [("2026-02-30T10:00", "UTC"), ("2026-12-05", "UTC"),
                                        ("tomorrow", "UTC"), ("2026-12-05T25:00", "UTC"),
                                        ("2026-12-05T10:00", "Mars/Olympus"), ("2026-12-05T10:00", "../etc"),
                                        ("2026-12-05T10:00<script>", "UTC"), ("9" * 5000, "UTC"),
                                        ("2026-12-05T10:00", "x" * 500)])
def test_malformed_times_and_zones_are_a_reason_never_an_error(value, zone) -> None:
    with pytest.raises(ValueError):
        promisemail.local_moment(value, zone)


def test_an_accept_line_is_an_answer_and_alone_it_needs_no_reply() -> None:
    for line in ("accept", "Accept.", "  AGREED!  ", "accepted"):
        answer = promisemail.answer_in(line)
        assert answer is not None and answer.action == "accept" and answer.only, line
    answer = promisemail.answer_in("Thanks for the update.\naccept\n")
    assert answer.action == "accept" and not answer.only


def test_a_counter_line_with_a_reason() -> None:
    answer = promisemail.answer_in("counter: 2026-12-05 15:00 UTC\nreason: our change window is Friday\n")
    assert answer.action == "counter" and answer.only
    assert answer.due_at == datetime.datetime(2026, 12, 5, 15, 0, tzinfo=datetime.timezone.utc).timestamp()
    assert answer.reason == "our change window is Friday"
    berlin = promisemail.answer_in("Counter: 2026-12-05T16:00 Europe/Berlin")
    assert berlin.due_at == answer.due_at


def test_words_that_only_contain_the_keywords_are_no_answer() -> None:
    for body in ("I accept that the server is slow.", "We have not agreed to anything yet",
                 "accept?", "acceptable", "counter-proposal welcome", "please accept my apologies",
                 "#accept", ""):
        assert promisemail.answer_in(body) is None, body


def test_a_counter_that_cannot_be_read_is_refused_with_the_reason() -> None:
    for body, why in (("counter: next friday", "YYYY-MM-DD"), ("counter: 2026-03-29 02:30 Europe/Berlin",
                                                               "does not exist"),
                      ("counter: 2026-12-05 15:00 Narnia/Cair", "time zone"),
                      ("counter: 2026-12-05 15:00", "YYYY-MM-DD")):
        answer = promisemail.answer_in(body)
        assert answer is not None and answer.action == "" and why in answer.error, (body, answer)


def test_two_answers_are_ambiguous_and_applied_never() -> None:
    answer = promisemail.answer_in("accept\ncounter: 2026-12-05 15:00 UTC")
    assert answer.action == "" and "more than one" in answer.error


def test_quoted_history_never_answers() -> None:
    quoted = ("Fine by me, but see below.\n\nOn Wed, 2 Dec 2026 at 12:00, support wrote:\n> accept\n"
              "accept\n")
    assert promisemail.answer_in(quoted) is None
    assert promisemail.answer_in("> accept\n>> counter: 2026-12-05 15:00 UTC") is None
    outlook = "See you then.\n-----Original Message-----\nFrom: support\naccept"
    assert promisemail.answer_in(outlook) is None


def test_our_own_paragraph_quoted_back_without_markers_is_no_answer() -> None:
    key = signer()
    promise = {"id": "pr-0123abcd", "due_at": "2026-12-05T15:00:00Z", "reason": "a vendor's answer"}
    text = promisemail.paragraph(key, promise, "ann@acme.test", "https://support.example", NOW)
    assert "We propose to send our next reply by 2026-12-05 15:00 UTC (a vendor's answer)." in text
    assert promisemail.answer_in(text) is None
    assert promisemail.answer_in("Thanks.\n\n" + text) is None


def test_the_paragraph_carries_two_links_that_verify_for_the_person() -> None:
    key = signer()
    promise = {"id": "pr-0123abcd", "due_at": "2026-12-05T15:00:00Z", "reason": "x\ny <b>"}
    text = promisemail.paragraph(key, promise, "ann@acme.test", "https://support.example/", NOW)
    links = [line for line in text.split("\n") if line.startswith("https://")]
    assert len(links) == 2
    read = [promisemail.read_link(key, link.rsplit("/", 1)[1], NOW) for link in links]
    assert [r.action for r in read] == ["accept", "counter"]
    assert all(r.email == "ann@acme.test" and r.promise_id == "pr-0123abcd" for r in read)
    assert all(r.expires <= datetime.datetime(2026, 12, 5, 15, tzinfo=datetime.timezone.utc).timestamp()
               for r in read), "a link ends when the proposed time has passed"
    assert "(x y <b>)" in text, "the reason is one line (plain text mail: kept as text)"
    without = promisemail.paragraph(key, promise, "ann@acme.test", "", NOW)
    assert "https://" not in without and '"accept"' in without
