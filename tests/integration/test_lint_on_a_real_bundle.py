"""The lint's new shapes (hash families, tokens, named values at every position, tool
flags, record dumps) must not fire on what an ordinary collection holds: a bundle of the
shared test server, redacted again and linted file by file, has no finding at all."""

from __future__ import annotations

from privacy.lint import lint_bytes
from privacy.redact import Redactor
from tests.helpers import bundle_files, collect_json


def test_an_ordinary_bundle_passes_redaction_and_the_lint_with_nothing_found(server, tmp_path):
    server.sql("CREATE DATABASE IF NOT EXISTS lintcheck",
               "CREATE TABLE IF NOT EXISTS lintcheck.t (id INT PRIMARY KEY, v VARCHAR(20))",
               "INSERT IGNORE INTO lintcheck.t VALUES (1, 'one'), (2, 'two')")
    done, summary = collect_json("--host", server.host, "--port", str(server.port), "--user", server.user,
                                 "--output", str(tmp_path), "--samples", "1", "--profile", "full")
    assert summary is not None, done.stderr  # exit 17 would mean the lint stopped it
    files = bundle_files(summary["bundle"])
    assert len(files) > 20
    redactor = Redactor()
    findings = []
    for path, data in files.items():
        findings += lint_bytes(path, data)
        findings += lint_bytes(path, redactor.apply(path, data))
    assert findings == [], [str(f) for f in findings[:10]]
