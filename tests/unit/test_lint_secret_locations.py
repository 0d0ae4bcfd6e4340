"""The final lint and options that name where a secret is kept (`--password-file PATH`):
the recommended way to pass a secret must not make the rest of the line a suspect, and a
real secret beside it is still found."""

from __future__ import annotations

import json
import secrets

import pytest

from privacy.lint import lint_line

RANDOM_DB = "mydiag_test_" + secrets.token_hex(10)


@pytest.mark.parametrize("option", ["--imap-password-file", "--password-file", "--passwd-file",
                                    "--token-file", "--key-file", "--secret-path", "--passenv",
                                    "--credentials-file"])
def test_an_option_naming_a_secrets_place_is_no_finding(option):
    args = ["mydiag-server", "run", option, "/run/mydiag/imap",
            "--database", f"postgresql://root@127.0.0.1:5432/{RANDOM_DB}"]
    assert lint_line(json.dumps({"args": args})) == []


def test_a_secret_beside_it_is_still_found():
    value = secrets.token_urlsafe(18)
    args = ["tool", "--password-file", "/run/x", "--password", value]
    assert lint_line(json.dumps({"args": args}))
    assert lint_line(f"token_file = /etc/x; auth {value}")
