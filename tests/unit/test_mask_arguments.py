"""privacy.lint.mask_arguments: a process's command line that the last look would refuse
loses what looks like a secret, argument by argument, and nothing else."""

from __future__ import annotations

import json
import secrets

import pytest

from privacy.lint import lint_line, mask_arguments


def _token() -> str:
    # A generated value of mixed classes, the shape the lint knows as random.
    return secrets.token_urlsafe(18) + "A1"


def test_a_clean_command_line_is_kept_whole():
    args = ["/usr/sbin/mariadbd", "--no-defaults", "--datadir=/var/lib/mysql", "--port=3306"]
    assert mask_arguments(args) == (args, False)


@pytest.mark.parametrize("shape", [
    lambda t: ["app", "--keyring", "/etc/app", "--session", t],       # secret word, value apart
    lambda t: ["app", f"--password={t}"],                              # name=value
    lambda t: ["app", "--api-token", t, "--verbose"],
    lambda t: ["python", "-c", f"auth = '{t}'; main()"],               # code holding a secret
    lambda t: ["curl", "-u", f"admin:{t}", "https://x.example/"],
    lambda t: ["app", f"https://user:{t}@db.example/x"],
], ids=["apart", "name=value", "option-value", "code", "curl-u", "url"])
def test_what_the_lint_would_refuse_is_masked_and_the_rest_kept(shape):
    token = _token()
    args = shape(token)
    assert lint_line(" ".join(args)), "the case must be one the last look refuses"
    kept, masked = mask_arguments(args)
    assert masked and kept[0] == args[0]
    assert token not in json.dumps(kept)
    assert lint_line(json.dumps(kept)) == [] and lint_line(" ".join(kept)) == []


def test_the_option_name_stays_when_only_its_value_is_secret():
    token = _token()
    kept, masked = mask_arguments(["app", "--verbose", f"--password={token}", "--port=5"])
    assert masked and kept == ["app", "--verbose", "--password=<redacted>", "--port=5"]
