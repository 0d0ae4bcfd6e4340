"""Signed reply addresses and Message-IDs: a parser returns the ticket only for a MAC made
with the key; every other input (another key, another ticket, a changed digit, junk) is
None, never an exception; the key file is private."""

from __future__ import annotations

import os
import random
import secrets
import string

from server.mail import tokens

TICKET = "tk-abcdefgh23"
OTHER = "tk-zyxwvuts98"


def test_a_reply_address_round_trips_and_every_change_to_it_is_refused():
    key = secrets.token_bytes(32)
    address = tokens.reply_address(TICKET, key, "Support.Test")
    assert address.startswith(f"support+{TICKET}.") and address.endswith("@support.test")
    assert tokens.parse_reply_address(address, key, "support.test") == TICKET
    assert tokens.parse_reply_address(address.upper(), key, "support.test") == TICKET  # case folded by MTAs
    assert tokens.parse_reply_address(f"<{address}>", key, "support.test") == TICKET
    assert tokens.parse_reply_address(address, secrets.token_bytes(32), "support.test") is None
    assert tokens.parse_reply_address(address.replace(TICKET, OTHER), key, "support.test") is None
    assert tokens.parse_reply_address(address, key, "other.test") is None
    local, _, domain = address.partition("@")
    for i in range(len(f"support+{TICKET}."), len(local)):
        flipped = local[:i] + ("0" if local[i] != "0" else "1") + local[i + 1:]
        assert tokens.parse_reply_address(f"{flipped}@{domain}", key, "support.test") is None


def test_a_message_id_round_trips_with_its_nonce_and_a_forged_one_is_refused():
    key = secrets.token_bytes(32)
    value = tokens.message_id(TICKET, key, "support.test", "ob-0123456789abcdef")
    assert tokens.parse_message_id_full(value, key, "support.test") == (TICKET, "ob-0123456789abcdef")
    assert tokens.parse_message_id(value.replace("ob-0123456789abcdef", "ob-0123456789abcdee"), key,
                                   "support.test") is None
    assert tokens.parse_message_id(value.replace(TICKET, OTHER), key, "support.test") is None
    assert tokens.parse_message_id(value, secrets.token_bytes(32), "support.test") is None


def test_the_parsers_never_raise_on_junk():
    key = secrets.token_bytes(32)
    rng = random.Random(7)
    alphabet = string.printable + "\x00\u202e\u00e9<>@+."
    for _ in range(3000):
        junk = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        assert tokens.parse_reply_address(junk, key, "support.test") is None
        assert tokens.parse_message_id(junk, key, "support.test") is None
    assert tokens.parse_reply_address("", key, "support.test") is None
    assert tokens.parse_message_id("<" + "a" * 100_000 + ">", key, "support.test") is None


def test_the_key_is_made_once_and_private(tmp_path):
    path = tmp_path / "mail.key"
    key = tokens.load_key(path)
    assert len(key) == 32 and os.stat(path).st_mode & 0o777 == 0o600
    assert tokens.load_key(path) == key
