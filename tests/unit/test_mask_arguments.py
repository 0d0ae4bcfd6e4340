"""privacy.argmask.mask_arguments: a process's command line that the last look would refuse
loses what looks like a secret, argument by argument, and nothing else."""

from __future__ import annotations

import json
import secrets

import pytest

from privacy.argmask import _after_rules, mask_arguments
from privacy.lint import lint_line


def _token() -> str:
    # A generated value of mixed classes, the shape the lint knows as random.
    return secrets.token_urlsafe(18) + "A1"


def test_a_clean_command_line_is_kept_whole():
    args = ["/usr/sbin/mariadbd", "--no-defaults", "--datadir=/var/lib/mysql", "--port=3306"]
    assert mask_arguments(args) == (args, False)


@pytest.mark.parametrize("shape", [
    lambda t: ["app", "--keyring", "/etc/app", "--session", t],       # secret word, value apart
    lambda t: ["python", "-c", f"auth = '{t}'; main()"],               # code holding a secret
], ids=["apart", "code"])
def test_what_the_lint_would_refuse_is_masked_and_the_rest_kept(shape):
    token = _token()
    args = shape(token)
    assert lint_line(" ".join(args)), "the case must be one the last look refuses"
    kept, masked = mask_arguments(args)
    assert masked and kept[0] == args[0]
    assert token not in json.dumps(kept)
    assert lint_line(json.dumps(kept)) == [] and lint_line(" ".join(kept)) == []


@pytest.mark.parametrize("shape", [
    lambda t: ["app", "--verbose", f"--password={t}", "--port=5"],
    lambda t: ["mysql", "-uapp", f"-p{t}"],
    lambda t: ["sshpass", "-p", t, "ssh", "db1"],
    lambda t: ["curl", "-u", f"admin:{t}", "https://x.example/"],
    lambda t: ["app", "--api-token", t, "--verbose"],
    lambda t: ["app", f"https://user:{t}@db.example/x"],
], ids=["password=", "mysql-p", "sshpass", "curl-u", "api-token", "url"])
def test_what_the_redaction_rules_mask_is_left_to_them(shape):
    """They mask it their own way (`-p<redacted>`) and count it; nothing is taken twice."""
    token = _token()
    args = shape(token)
    assert mask_arguments(args) == (args, False)
    assert token not in json.dumps(_after_rules(args)), "the rules must really mask it"


def test_the_option_name_stays_when_only_its_value_is_secret():
    token = _token()
    kept, masked = mask_arguments(["app", "--keyring", "/x", f"--session={token}", "--port=5"])
    assert masked and kept == ["app", "--keyring", "/x", "--session=<redacted>", "--port=5"]
