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


def test_a_name_inside_a_base64_token_is_no_secrets_name():
    """MariaDB's start-up line carries a random base64 server_uid; a fragment of it that reads
    like a name (`…+KZ5zk5bfmK4PwJTdU=` holds "Pw") once made the word after it "redacted"."""
    import io

    from privacy.redact import redact_stream

    uid = "hF0coRqCe+KZ5zk5bfmK4PwJTdU="
    line = (f"2026-12-02  7:17:40 0 [Note] Starting MariaDB 10.11.19-MariaDB source revision "
            f"5843d8475120241667a7ce0f8a1abb6c9b43a273 server_uid {uid} as process 3963\n").encode()
    out = io.BytesIO()
    redact_stream(io.BytesIO(line), out)
    assert out.getvalue() == line
    assert lint_line(line.decode()) == []
    # a real assignment after a token is still one
    secret = secrets.token_urlsafe(12)
    out = io.BytesIO()
    redact_stream(io.BytesIO(f"x {uid} password={secret}\n".encode()), out)
    assert secret.encode() not in out.getvalue()
