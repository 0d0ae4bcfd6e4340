"""The bundle report page, as an engineer uses it: real bundles collected by `mydiag collect`
from a private MariaDB, uploaded by `mydiag upload` to a real server (SQLite and PostgreSQL),
rendered by the server's background verifier on arrival, read in Debian's Chromium.

The MariaDB carries markup where a customer's data holds free text (table and schema names,
init_connect, user names in the error log, a running statement in the processlist): the
page shows it as text and runs none of it. The quick-profile bundle of one sample, where the
window rules can only say "insufficient", renders too.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Dict, Iterator

import pytest

from tests import servers
from tests.serverkit import agent_cli
from tests.web.conftest import Web, axe_check

pytestmark = pytest.mark.server

#: What the bundle's free-text places carry: any of it running sets window.__xss.
PAYLOADS = ('<script>window.__xss=1</script>', '"><img src=x onerror="window.__xss=1">',
            'javascript:window.__xss=1')


def start_mariadb(base: Path) -> servers.Instance:
    try:
        return servers.create(base, ["--performance-schema=ON"])
    except servers.ServerUnavailable as exc:
        pytest.fail(f"a private MariaDB is needed: {exc}")
        raise


def plant_markup(instance: servers.Instance) -> None:
    """Markup in each free-text place a bundle picks up from this server."""
    statements = [f"CREATE DATABASE IF NOT EXISTS `{PAYLOADS[0]}`", "CREATE DATABASE IF NOT EXISTS xss"]
    for payload in PAYLOADS:
        quoted = payload.replace("'", "''")
        statements.append(f"CREATE TABLE IF NOT EXISTS xss.`{payload}` (v INT) ENGINE=MyISAM "
                          f"COMMENT '{quoted}'")
    init_connect = PAYLOADS[1].replace("'", "''")
    statements.append(f"SET GLOBAL init_connect = '{init_connect}'")
    instance.sql(*statements)
    import pymysql

    for payload in PAYLOADS:  # "Access denied for user '<payload>'" in the error log
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host="127.0.0.1", port=instance.port, user=payload[:32], password="wrong",
                            ssl_disabled=True)


def defaults_file(instance: servers.Instance, folder: Path) -> Path:
    path = folder / "my.cnf"
    path.write_text(f"[client]\nhost = 127.0.0.1\nport = {instance.port}\nuser = root\npassword = \"\"\n")
    path.chmod(0o600)
    return path


def collect(instance: servers.Instance, folder: Path, *options: str) -> Path:
    """`mydiag collect` into `folder` (a new one); the plain bundle."""
    folder.mkdir(parents=True)
    done = agent_cli("collect", "--json", "--yes", "--defaults-file", str(defaults_file(instance, folder)),
                     "--output", str(folder / "out"), *options, env={"MYDIAG_HOME": str(folder / "home")})
    assert done.returncode in (0, 3), done.stderr
    return Path(json.loads(done.stdout)["bundle"])


def collect_with_statement_running(instance: servers.Instance, folder: Path, *options: str) -> Path:
    """A collection while a statement carrying markup runs (it is in the processlist)."""
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                instance.sql(f"SELECT SLEEP(2), '{PAYLOADS[0]}' AS x")
            except Exception:  # noqa: BLE001 - killed by the server's end: stop
                return

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    time.sleep(0.3)
    try:
        return collect(instance, folder, *options)
    finally:
        stop.set()
        worker.join(10)


def new_ticket(web: Web, title: str = "slow queries") -> Dict:
    return json.loads(web.server.api("POST", "/api/v1/tickets", {"customer": "acme", "title": title}))


def upload(web: Web, ticket: Dict, plain: Path, home: Path) -> Dict:
    """`mydiag upload` of `plain`, then the bundle once verified and its report rendered."""
    home.mkdir(parents=True, exist_ok=True)
    token = home / "token"
    token.write_text(ticket["upload_token"])
    token.chmod(0o600)
    done = agent_cli("upload", str(plain), "--server", web.url, "--ticket", ticket["id"], "--token-file",
                     str(token), "--json", env={"MYDIAG_HOME": str(home)})
    assert done.returncode == 0, done.stderr
    sha256 = json.loads(done.stdout)["sha256"]
    deadline = time.monotonic() + 60
    while True:
        listed = json.loads(web.server.api("GET", f"/api/v1/tickets/{ticket['id']}/bundles"))
        found = [b for b in listed if b["sha256"] == sha256]
        if found and found[0]["status"] == "accepted" and found[0]["report"]:
            return found[0]
        assert time.monotonic() < deadline, f"not accepted and rendered in time: {found}"
        time.sleep(0.1)


def sign_in(page, web: Web, target: str) -> None:
    """Open `target`, get sent to the sign-in form, sign in, land on `target`."""
    page.goto(web.url + target)
    assert "/signin" in page.url
    page.fill("input[name=name]", web.engineer)
    page.fill("input[name=password]", web.password)
    page.click("form.signin button[type=submit]")
    page.wait_for_load_state()
    assert page.url.endswith(target), page.url


def nothing_ran(page) -> None:
    assert page.evaluate("typeof window.__xss") == "undefined", "markup from the bundle ran"
    assert page.dialogs == [], f"a dialog opened: {page.dialogs}"
    assert page.csp_errors == [], f"the page broke its own CSP: {page.csp_errors}"


def styled_by_report_css(page) -> None:
    """report.css is linked once, from <head> (base.html's head block), and loaded."""
    assert page.locator("head link[rel=stylesheet][href='/static/report.css']").count() == 1
    assert page.locator("body link").count() == 0, "a stylesheet link left in the body"
    rules = page.evaluate("Array.from(document.styleSheets).filter(s => s.href && "
                          "s.href.endsWith('/static/report.css')).map(s => s.cssRules.length)")
    assert rules and rules[0] > 0, "report.css did not load"


def sign_out(page) -> None:
    page.click("header.site form button[type=submit]")
    page.wait_for_load_state()
    assert "/signin" in page.url


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> Iterator[Dict[str, Path]]:
    """Plain bundles of one private MariaDB: one with markup planted and 3 samples, one of the
    quick profile with a single sample."""
    base = tmp_path_factory.mktemp("report-page")
    instance = start_mariadb(base / "db")
    try:
        plant_markup(instance)
        bundles = {
            "marked": collect_with_statement_running(instance, base / "marked", "--profile", "standard",
                                                     "--samples", "3", "--interval", "0.5"),
            "one_sample": collect(instance, base / "one", "--profile", "quick", "--samples", "1"),
        }
        yield bundles
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def uploaded(web, collected, tmp_path_factory) -> Dict[str, Dict]:
    home = tmp_path_factory.mktemp("agent-home")
    ticket = new_ticket(web, PAYLOADS[0])
    return {"ticket": ticket, **{name: upload(web, ticket, path, home) for name, path in collected.items()}}


def test_engineer_signs_in_opens_the_ticket_and_reads_the_report_with_findings_and_charts(
        web, uploaded, page, screenshot):
    ticket, bundle = uploaded["ticket"], uploaded["marked"]
    sign_in(page, web, f"/tickets/{ticket['id']}")
    nothing_ran(page)
    axe_check(page)
    screenshot(page, "ticket")
    page.click(f"a[href='/tickets/{ticket['id']}/bundles/{bundle['id']}/report']")
    page.wait_for_load_state()
    assert page.url.endswith(f"/bundles/{bundle['id']}/report")
    findings = page.locator("#findings .rule-id")
    assert findings.count() >= 1 and findings.first.is_visible()
    rules = set(findings.all_inner_texts())
    assert {"SCH-01", "SCH-02"} <= {r.strip() for r in rules}, rules  # the planted tables: no key, MyISAM
    charts = page.locator("svg[role=img]")
    assert charts.count() >= 1 and charts.first.is_visible()
    styled_by_report_css(page)
    assert page.locator("h1").count() == 1, "the report's own heading is the page's one h1"
    nothing_ran(page)
    axe_check(page)
    screenshot(page, "report")
    sign_out(page)


def test_under_the_real_csp_the_report_is_styled_with_one_heading_and_passes_axe(web, uploaded,
                                                                                strict_page):
    ticket, bundle = uploaded["ticket"], uploaded["marked"]
    sign_in(strict_page, web, f"/tickets/{ticket['id']}/bundles/{bundle['id']}/report")
    styled_by_report_css(strict_page)
    assert strict_page.locator("h1").all_inner_texts() == [f"Report for {bundle['host']}"]
    nothing_ran(strict_page)
    axe_check(strict_page)
    assert strict_page.csp_errors == [], "axe-core ran without breaking the page's CSP"


def test_markup_from_the_bundle_is_shown_as_text_and_runs_nowhere(web, uploaded, page, screenshot):
    ticket, bundle = uploaded["ticket"], uploaded["marked"]
    sign_in(page, web, f"/tickets/{ticket['id']}/bundles/{bundle['id']}/report")
    text = page.inner_text("main")
    assert PAYLOADS[0] in text, "the planted schema/table names are shown (as text)"
    assert PAYLOADS[2] in text
    # No element, attribute or link came from the bundle's markup.
    assert page.locator("main script").count() == 0
    assert page.locator("img[src=x]").count() == 0
    hrefs = page.evaluate("Array.from(document.querySelectorAll('[href],[src]'))"
                          ".map(e => e.getAttribute('href') || e.getAttribute('src'))")
    assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")], hrefs
    nothing_ran(page)
    axe_check(page)
    screenshot(page, "report-markup")


def test_a_one_sample_quick_bundle_renders_with_its_rules_insufficient(web, uploaded, page,
                                                                       screenshot):
    ticket, bundle = uploaded["ticket"], uploaded["one_sample"]
    state = web.state()
    try:
        with state.db.tx(write=False) as tx:
            row = tx.one("SELECT state, report_json FROM reports WHERE bundle_id = ?", (bundle["id"],))
    finally:
        state.close()
    assert row["state"] == "rendered"
    outcomes = json.loads(row["report_json"])["outcomes"]
    assert sum(o["status"] == "insufficient" for o in outcomes) >= 5
    assert not [o for o in outcomes if o["status"] == "error"], outcomes
    sign_in(page, web, f"/tickets/{ticket['id']}/bundles/{bundle['id']}/report")
    assert "fewer than two status samples" in page.inner_text("main").lower()
    assert page.locator("#not-judged").is_visible()
    nothing_ran(page)
    axe_check(page)
    screenshot(page, "report-one-sample")


def test_the_report_page_is_for_signed_in_engineers_and_only_for_the_ticket_s_own_bundles(web, uploaded):
    ticket, bundle = uploaded["ticket"], uploaded["marked"]
    path = f"/tickets/{ticket['id']}/bundles/{bundle['id']}/report"
    anonymous = web.client().get(path)
    assert anonymous.status == 303 and anonymous.header("location").startswith("/signin?next=")
    client = web.signed_in()
    shown = client.get(path)
    assert shown.status == 200 and "default-src 'none'" in shown.header("content-security-policy")
    assert "<script" not in shown.body.lower().replace("&lt;script", "")
    other = new_ticket(web)
    assert client.get(f"/tickets/{other['id']}/bundles/{bundle['id']}/report").status == 404
    assert client.get(f"/tickets/{ticket['id']}/bundles/bd-0000000000000000/report").status == 404
    assert client.get(f"/tickets/tk-nosuchticket/bundles/{bundle['id']}/report").status == 404
    css = client.get("/static/report.css")
    assert css.status == 200 and css.header("content-type").startswith("text/css")


def test_the_api_lists_the_bundle_with_its_headline_findings(web, uploaded):
    ticket, bundle = uploaded["ticket"], uploaded["marked"]
    one = json.loads(web.server.api("GET", f"/api/v1/tickets/{ticket['id']}/bundles/{bundle['id']}"))
    assert one["report"] == "rendered"
    assert isinstance(one["headline"], list)
    for finding in one["headline"]:
        assert set(finding) == {"rule", "severity", "title", "summary"}
        assert finding["severity"] in ("warning", "error", "critical")


def test_a_bundle_accepted_before_reports_existed_is_rendered_on_first_view(web, uploaded):
    ticket, bundle = uploaded["ticket"], uploaded["one_sample"]
    state = web.state()
    try:
        with state.db.tx() as tx:
            tx.run("DELETE FROM reports WHERE bundle_id = ?", (bundle["id"],))
    finally:
        state.close()
    client = web.signed_in()
    shown = client.get(f"/tickets/{ticket['id']}/bundles/{bundle['id']}/report")
    assert shown.status == 200 and "Not judged" in shown.body
    one = json.loads(web.server.api("GET", f"/api/v1/tickets/{ticket['id']}/bundles/{bundle['id']}"))
    assert one["report"] == "rendered"

