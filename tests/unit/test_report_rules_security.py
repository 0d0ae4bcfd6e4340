"""The security rules (report/rules/security.py) over mysql/accounts.json as the accounts
collector writes it (names, plugins and flags only) and the server's variables."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest

import report.catalog  # noqa: F401 - declares every rule
from report import registry
from report.engine import evaluate
from report.finding import Finding
from report.model import Bundle
from tests.reportkit import make_bundle

ACCOUNTS = "mysql/accounts.json"


def account(user: str, host: str = "localhost", plugin: Optional[str] = "mysql_native_password",
            empty: Optional[bool] = False, locked: str = "0", role: str = "0",
            lifetime: Any = None) -> Dict[str, Any]:
    return {"user": user, "host": host, "plugin": plugin, "account_locked": locked, "is_role": role,
            "anonymous": user == "", "empty_authentication": empty, "password_lifetime": lifetime,
            "password_last_changed": None,
            "host_pattern": "any" if host == "%" else "wildcard" if "%" in host else "exact"}


def bundle(accounts: List[Dict[str, Any]], variables: Optional[Dict[str, Any]] = None,
           **kwargs: Any) -> Bundle:
    data = {"summary": {"accounts": len(accounts)}, "accounts": accounts}
    return make_bundle({"default_password_lifetime": 0, "local_infile": "OFF",
                        "secure_file_priv": "/var/lib/mysql-files/", "skip_name_resolve": "ON",
                        **(variables or {})}, files={ACCOUNTS: data}, **kwargs)


SAFE = [account("root", plugin="unix_socket"), account("app", "10.0.0.%"),
        account("mariadb.sys", locked="1"), account("backup", "127.0.0.1", plugin="ed25519")]


def run(b: Bundle, rule_id: str) -> Any:
    report = evaluate(b, [registry.get(rule_id)])
    return report.findings[0] if report.findings else report.outcomes[0]


def fired(result: Any) -> bool:
    return isinstance(result, Finding)


# -- SEC-01 empty passwords -----------------------------------------------------------------------
def test_local_account_without_password_is_an_error() -> None:
    found = run(bundle(SAFE + [account("root", "127.0.0.1", empty=True)]), "SEC-01")
    assert fired(found) and found.severity == "error"
    assert found.evidence[0].values["accounts"] == ["'root'@'127.0.0.1'"]


def test_remote_account_without_password_is_critical() -> None:
    found = run(bundle(SAFE + [account("app2", "%", empty=True)]), "SEC-01")
    assert fired(found) and found.severity == "critical" and "'app2'@'%'" in found.summary


def test_locked_or_role_accounts_and_passwords_pass() -> None:
    accounts = SAFE + [account("old", "%", empty=True, locked="Y"), account("r", "", empty=True, role="Y")]
    assert run(bundle(accounts), "SEC-01").status == "passed"


def test_empty_passwords_not_checked_is_insufficient() -> None:
    unknown = [dict(a, empty_authentication=None) for a in SAFE]
    assert run(bundle(unknown), "SEC-01").status == "insufficient"
    assert run(make_bundle(), "SEC-01").status == "insufficient"


# -- SEC-02 anonymous -----------------------------------------------------------------------------
def test_anonymous_accounts_fire() -> None:
    found = run(bundle(SAFE + [account("", "localhost")]), "SEC-02")
    assert fired(found) and found.severity == "warning"
    assert run(bundle(SAFE + [account("", "%")]), "SEC-02").severity == "error"


def test_no_anonymous_account_passes() -> None:
    assert run(bundle(SAFE + [account("", "localhost", locked="1")]), "SEC-02").status == "passed"


# -- SEC-03 root from any host --------------------------------------------------------------------
@pytest.mark.parametrize("host, severity", [("%", "error"), ("10.%", "warning")])
def test_root_from_a_wildcard_host_fires(host: str, severity: str) -> None:
    found = run(bundle(SAFE + [account("root", host)]), "SEC-03")
    assert fired(found) and found.severity == severity


def test_root_from_local_hosts_passes() -> None:
    accounts = SAFE + [account("root", "::1"), account("rooted", "%"), account("root", "%", locked="1")]
    assert run(bundle(accounts), "SEC-03").status == "passed"


# -- SEC-04 old auth plugins ----------------------------------------------------------------------
def test_mysql_old_password_is_an_error_on_any_server() -> None:
    found = run(bundle(SAFE + [account("legacy", "%", plugin="mysql_old_password")]), "SEC-04")
    assert fired(found) and found.severity == "error"


def test_mysql_native_password_on_mysql_8_is_a_notice_with_the_upgrade_note() -> None:
    accounts = [account("app", "%"), account("svc", "%", plugin="caching_sha2_password")]
    found = run(bundle(accounts, flavor="mysql", version="8.0.36"), "SEC-04")
    assert fired(found) and found.severity == "notice" and "8.4" in found.summary
    assert found.evidence[0].values["deprecated"] == ["'app'@'%'"]


def test_mysql_native_password_on_mariadb_or_mysql_57_passes() -> None:
    assert run(bundle(SAFE + [account("app", "%")]), "SEC-04").status == "passed"
    assert run(bundle([account("app", "%")], flavor="mysql", version="5.7.44"), "SEC-04").status == "passed"


# -- SEC-05 no expiry policy ----------------------------------------------------------------------
def test_no_expiry_policy_is_information() -> None:
    found = run(bundle(SAFE), "SEC-05")
    assert fired(found) and found.severity == "info"
    assert found.evidence[1].values["password_accounts"] == 2  # app and backup (root is socket, sys locked)


def test_a_default_or_an_account_lifetime_passes() -> None:
    assert run(bundle(SAFE, {"default_password_lifetime": 90}), "SEC-05").status == "passed"
    assert run(bundle(SAFE + [account("dba", "10.1.1.1", lifetime=180)]), "SEC-05").status == "passed"
    assert run(bundle(SAFE, {"default_password_lifetime": None}, stock=True), "SEC-05").status != "error"


# -- SEC-06 local_infile --------------------------------------------------------------------------
def test_local_infile_on_fires_and_off_passes() -> None:
    assert fired(run(bundle(SAFE, {"local_infile": "ON"}), "SEC-06"))
    assert run(bundle(SAFE), "SEC-06").status == "passed"


# -- SEC-07 secure_file_priv ----------------------------------------------------------------------
def test_empty_secure_file_priv_fires() -> None:
    found = run(bundle(SAFE, {"secure_file_priv": ""}), "SEC-07")
    assert fired(found) and found.severity == "warning"


def test_secure_file_priv_directory_or_null_passes() -> None:
    assert run(bundle(SAFE), "SEC-07").status == "passed"
    null = make_bundle(files={ACCOUNTS: {"accounts": SAFE}})
    null.files["mysql/global_variables.json"] = json.dumps({"version": "10.11.6-MariaDB",
                                                             "secure_file_priv": None}).encode()
    assert run(null, "SEC-07").status == "passed"
    missing = make_bundle(stock=False)
    assert run(missing, "SEC-07").status == "insufficient"


# -- SEC-08 skip_name_resolve ---------------------------------------------------------------------
def test_name_resolution_on_fires_and_names_host_name_accounts() -> None:
    found = run(bundle(SAFE + [account("web", "app1.example.com")], {"skip_name_resolve": "OFF"}), "SEC-08")
    assert fired(found) and found.severity == "notice"
    assert found.evidence[1].values["host_name_accounts"] == ["'web'@'app1.example.com'"]


def test_skip_name_resolve_on_passes() -> None:
    assert run(bundle(SAFE), "SEC-08").status == "passed"


# -- secrets and hostile members ------------------------------------------------------------------
def test_evidence_holds_account_names_only() -> None:
    accounts = SAFE + [account("x", "%", empty=True), account("", "%"), account("root", "%")]
    loose = {"local_infile": "ON", "secure_file_priv": "", "skip_name_resolve": "OFF"}
    report = evaluate(bundle(accounts, loose), [r for r in registry.all_rules() if r.group == "security"])
    text = json.dumps(report.to_dict()["findings"])
    assert len(report.findings) >= 6
    for word in ("authentication_string", "password_hash", "*", "$A$"):
        assert word not in text.replace("'%'", "").replace("*.*", ""), word


def test_malformed_accounts_never_make_a_security_rule_error() -> None:
    rules = [r for r in registry.all_rules() if r.group == "security"]
    assert len(rules) >= 5
    odd = [None, "root", 5, {"user": ["root"], "host": {"h": 1}, "plugin": 7, "empty_authentication": "yes",
                             "account_locked": None, "password_lifetime": "NaN", "host_pattern": ["any"]},
           {"user": None, "host": None}, {"user": "\x00\x1b[2J<script>" + "u" * 10000, "host": "%" * 5000,
                                          "empty_authentication": True, "plugin": "mysql_old_password"}]
    for data in ({"accounts": odd}, {"accounts": "all"}, [1, 2], "x", {"summary": None}):
        b = make_bundle({"default_password_lifetime": "NaN", "local_infile": ["ON"], "secure_file_priv": 5,
                         "skip_name_resolve": "maybe"}, files={ACCOUNTS: data})
        report = evaluate(b, rules)
        assert [o for o in report.outcomes if o.status == "error"] == []
        for finding in report.findings:
            assert "\x1b" not in json.dumps(finding.to_dict(), ensure_ascii=False)
