"""The operations console in a real browser: the home health panel during an outage, a session's
why-trace, Retry, bulk replay, Simulate, and an invalid title template refused on save.

Set SCREENSHOT_DIR (as `make screenshots` does, to docs/) to keep pictures of the home panel and Simulate.
"""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from records.models import CrmAction, OperationSettings, Session
from records.rules import RuleSet
from tests.records.scenario import T0, Call
from tests.support import connection_retry_budget, ingest_and_process, sandbox_config, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

SESSIONS = 3


def screenshot(target: Any, name: str) -> None:
    """A picture of a page or of one element of it, when SCREENSHOT_DIR is set."""
    directory = os.environ.get("SCREENSHOT_DIR")
    if directory:
        target.screenshot(path=str(Path(directory) / name))


def sign_in(page: Any, live_server: Any) -> None:
    get_user_model().objects.create_superuser("admin", "admin@example.com", "admin-password")
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#content-main")


def calls() -> list[Call]:
    return [
        Call(f"out-{n}", phone=f"+1415555{n:04d}", start=T0 + timedelta(minutes=n)).answered().ended()
        for n in range(SESSIONS)
    ]


def through_an_outage(sandbox: SandboxServer, connection: CrmConnection) -> list[Session]:
    """Sessions whose contact lookups the worker gave up on while the CRM failed everything for
    longer than the connection's retry budget (3 s here; the full budget again afterwards)."""
    connection_retry_budget(connection, 3)
    sandbox_config(sandbox, fail_rate=1.0)
    sessions = [ingest_and_process(call.events, session_id=call.session_id) for call in calls()]
    wait_until(
        lambda: CrmAction.objects.filter(kind="ensure_contact", status="failed").count() == SESSIONS,
        timeout=90,
        message="the contact lookups to fail",
    )
    connection_retry_budget(connection, None)
    return sessions


def settled(sessions: list[Session]) -> bool:
    return not CrmAction.objects.filter(session__in=sessions, status="pending").exists()


def test_console_home_panel_shows_the_outage(
    page: Any, live_server: Any, zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    through_an_outage(zendesk_sandbox, zendesk_connection)
    sign_in(page, live_server)

    panel = page.locator("#health-panel")
    failed = panel.locator("tr[data-label=failed-actions]")
    blocked = panel.locator("tr[data-label=sessions-blocked-by-a-failed-action]")

    assert failed.locator("a").inner_text() == str(SESSIONS)
    assert blocked.locator("a").inner_text() == str(SESSIONS)
    assert "health-alert" in (failed.get_attribute("class") or "")
    assert panel.locator("svg.usage-chart").count() == 1
    assert int(panel.locator("tr[data-label=faults-timeouts-connection-errors-5xx] td").inner_text()) > 0
    screenshot(panel, "console-home.png")

    # the count links to the failed actions, filtered
    failed.locator("a").click()
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == SESSIONS


def test_console_session_why_trace_and_retry(
    page: Any, live_server: Any, zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    sessions = through_an_outage(zendesk_sandbox, zendesk_connection)
    sandbox_config(zendesk_sandbox, fail_rate=0)
    session = sessions[0]
    lookup = session.actions.get(kind="ensure_contact")
    sign_in(page, live_server)

    # the session list says which action holds each session back
    page.goto(f"{live_server.url}/admin/records/session/?state=blocked")
    row = page.locator("#result_list tbody tr", has_text=session.external_id)
    assert row.locator("td.field-where_it_stands").inner_text() == f"Blocked by action #{lookup.pk}"

    # the session's page: why each action waits, and the contact lookup's whole error
    row.locator("th a").click()
    page.wait_for_selector(".inline-group")
    trace = page.locator(".inline-group", has_text="CRM actions").inner_text()
    assert f"Waits for action #{lookup.pk} (Find or create contact), which failed" in trace
    assert "gave up after " in trace
    assert "(the CRM kept failing for " in trace

    # Retry on the blocking action's own (view) page
    page.goto(f"{live_server.url}/admin/records/crmaction/{lookup.pk}/change/")
    assert page.title().startswith(f"#{lookup.pk}")
    assert "View CRM action" in page.title()
    assert page.locator("input[name=_save]").count() == 0
    page.click("#retry-action")
    assert "is queued to run again" in page.locator(".messagelist").inner_text()

    wait_until(lambda: settled([session]), timeout=60, message="the retried session to finish")
    page.goto(f"{live_server.url}/admin/records/session/{session.pk}/change/")
    assert page.locator(".field-where_it_stands .readonly").inner_text() == "Done"


def test_console_bulk_replay_after_an_outage(
    page: Any, live_server: Any, zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    sessions = through_an_outage(zendesk_sandbox, zendesk_connection)
    sandbox_config(zendesk_sandbox, fail_rate=0)
    sign_in(page, live_server)

    page.goto(f"{live_server.url}/admin/records/crmaction/")
    page.click("#replay-link")
    page.select_option("#id_connection", str(zendesk_connection.pk))
    page.click("input[name=_preview]")
    preview = page.locator("#replay-preview")
    assert f"{SESSIONS} failed actions in {SESSIONS} sessions" in preview.locator("h2").inner_text()
    # grouped by error: the sandbox failed with 500s and 503s, which are told apart
    assert sum(int(count) for count in preview.locator("td.group-count").all_inner_texts()) == SESSIONS
    assert "gave up after … attempts: GET api/v2/users/search.json: 50" in preview.inner_text()

    page.click("#replay-all")
    page.wait_for_selector("#replay-progress")
    # the page refreshes itself until the replay is done
    page.wait_for_selector('#replay-progress[data-finished="yes"]', timeout=60_000)
    assert page.locator("#replay-succeeded").inner_text() == str(SESSIONS)
    assert page.locator("#replay-failed").inner_text() == "0"
    wait_until(lambda: settled(sessions), timeout=60, message="every replayed session to finish")
    page.goto(f"{live_server.url}/admin/records/session/?state=done")
    assert page.locator("#result_list tbody tr").count() == SESSIONS


def test_console_simulate_shows_differences_and_saves_nothing(
    page: Any, live_server: Any, zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    for call in calls():
        ingest_and_process(call.events, session_id=call.session_id)
    wait_until(lambda: settled(list(Session.objects.all())), timeout=60, message="the sessions to finish")
    sign_in(page, live_server)

    page.goto(f"{live_server.url}/admin/records/operationsettings/")
    page.fill("#id_title_template", "{CALL_TYPE} {CALL_ID} ({LANGUAGE})")
    page.click("#simulate")
    page.wait_for_selector("#simulate-summary")

    assert f"{SESSIONS} sessions of the last 7 days" in page.locator("#simulate-summary").inner_text()
    rows = page.locator("#simulate-results tr.difference")
    assert rows.count() == SESSIONS
    assert "IVR Call out-0 (en)" in page.locator("#simulate-results").inner_text()
    screenshot(page.locator("#content"), "console-simulate.png")
    assert OperationSettings.load().title_template == RuleSet.title_template

    # and the settings can then be saved from there
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    assert OperationSettings.load().title_template == "{CALL_TYPE} {CALL_ID} ({LANGUAGE})"


def test_console_saving_an_invalid_title_template_is_refused(
    page: Any, live_server: Any, zendesk_connection: CrmConnection
) -> None:
    sign_in(page, live_server)

    page.goto(f"{live_server.url}/admin/records/operationsettings/")
    page.fill("#id_title_template", "{CALL_TYPE} from {CALLER}")
    page.click("input[name=_save]")

    errors = page.locator(".field-title_template .errorlist").inner_text()
    assert "Unknown variable(s): CALLER" in errors
    assert OperationSettings.load().title_template == RuleSet.title_template
