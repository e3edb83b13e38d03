"""The reference adapter panel in a real browser: sign in, status, an outbound call, a screen pop."""

from typing import Any

import pytest
import requests

from agentstatus.models import Agent, AgentToken, PlatformStatus
from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from records.models import OperationSettings, Session
from tests.records.scenario import Call, ZendeskView
from tests.support import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "+14155550100"


@pytest.fixture
def ana_token(db: None) -> str:
    agent = Agent.objects.create(email="ana@example.com", name="Ana Agent")
    _, key = AgentToken.objects.create_key(name="panel", agent=agent)
    return key


def sign_in(page: Any, live_server: Any, token: str) -> None:
    page.goto(f"{live_server.url}/adapter/")
    page.fill("#token", token)
    page.click("#signin-button")
    page.wait_for_selector("#signed-in:not(.hidden)")


def test_agent_signs_in_with_the_adapter_token_and_a_wrong_one_is_refused(
    page: Any, live_server: Any, ana_token: str
) -> None:
    page.goto(f"{live_server.url}/adapter/")
    page.fill("#token", "not.a-token")
    page.click("#signin-button")
    page.wait_for_selector("#signin-message.error")
    assert page.locator("#signin-message").inner_text() == "That token is not valid."

    sign_in(page, live_server, ana_token)
    assert page.locator("#agent-email").inner_text() == "Signed in as ana@example.com"
    # The tab keeps the token: a reload stays signed in.
    page.reload()
    page.wait_for_selector("#signed-in:not(.hidden)")


def test_agent_changes_the_status_from_the_menu(page: Any, live_server: Any, ana_token: str) -> None:
    PlatformStatus.objects.create(name="Available", position=1)
    lunch = PlatformStatus.objects.create(name="Lunch", position=2)
    sign_in(page, live_server, ana_token)

    page.select_option("#status", label="Lunch")

    page.wait_for_selector("#status-message:has-text('Status set to Lunch.')")
    agent = Agent.objects.get(email="ana@example.com")
    assert agent.platform_status == lunch
    assert agent.status_source == "adapter"


@pytest.mark.usefixtures("celery_worker")
def test_outbound_call_with_several_contacts_and_a_record_pick(
    page: Any,
    live_server: Any,
    ana_token: str,
    zendesk_connection: CrmConnection,
    zendesk_sandbox: SandboxServer,
    zendesk_api: requests.Session,
) -> None:
    OperationSettings.objects.create(outbound_prompt_record_choice=True, outbound_allow_create_new=True)
    crm = ZendeskView(zendesk_sandbox, zendesk_api)
    crm.create_contact("Ann Lee", PHONE)
    bob = crm.create_contact("Bob Lee", PHONE)
    seeded = requests.post(
        f"{zendesk_sandbox.base_url}/__sandbox/seed",
        json={
            "tickets": [
                {
                    "subject": "Bob's older ticket",
                    "status": "open",
                    "requester_id": int(bob),
                    "updated_at": "2026-11-01T09:00:00Z",
                },
                {
                    "subject": "Bob's newer ticket",
                    "status": "pending",
                    "requester_id": int(bob),
                    "updated_at": "2026-11-19T09:00:00Z",
                },
            ]
        },
        timeout=10,
    ).json()["tickets"]
    older, newer = (str(ticket_id) for ticket_id in seeded)
    sign_in(page, live_server, ana_token)

    page.select_option("#origin", "phone_number")
    page.fill("#origin-value", PHONE)
    page.click("#next-button")
    page.wait_for_selector("#contact-choices input[name=contact]")
    assert page.locator("#contact-choices input[name=contact]").count() == 2
    # A click, not check(): the pick re-renders the choices at once (the chosen contact as text, no
    # radios), and check() would look for the radio again to confirm its state.
    page.click(f"#contact-choices input[value='{bob}']")
    page.wait_for_selector(f"#contact-choices:has-text('Contact: Bob Lee (ID {bob})')")

    page.wait_for_selector("#record-choices input[name=record]")
    values = page.locator("#record-choices input[name=record]").evaluate_all("(inputs) => inputs.map((i) => i.value)")
    assert values == [f"existing:{newer}", f"existing:{older}", "new:"]
    assert page.locator(f"#record-choices input[value='existing:{newer}']").is_checked()
    page.check(f"#record-choices input[value='existing:{older}']")
    page.click("#call-button")

    page.wait_for_selector(f"#call-message:has-text('logged on record {older}')")
    session = Session.objects.get()
    wait_until(
        lambda: Session.objects.get(pk=session.pk).crm_record_id == older, message="the call on the picked record"
    )
    added = f"Session {session.external_id} added to this record."
    wait_until(
        lambda: any(comment["body"].startswith(added) for comment in crm.comments(older)),
        message="the call's comment on the picked record",
    )
    assert Session.objects.get().crm_contact_id == bob
    assert not any(comment["body"].startswith(added) for comment in crm.comments(newer))


@pytest.mark.usefixtures("celery_worker")
def test_a_screen_pop_arrives_when_the_agent_answers(
    page: Any,
    live_server: Any,
    ana_token: str,
    api_key: str,
    zendesk_connection: CrmConnection,
    zendesk_sandbox: SandboxServer,
) -> None:
    sign_in(page, live_server, ana_token)
    assert page.locator("#pop").is_hidden()

    events = Call("c-1").answered("ana@example.com").events
    response = requests.post(
        f"{live_server.url}/api/v1/events",
        json={"events": events},
        headers={"Authorization": f"Api-Key {api_key}"},
        timeout=10,
    )
    assert response.status_code == 202

    page.wait_for_selector("#pop:not(.hidden)", timeout=20_000)
    record_id = Session.objects.get(external_id="c-1").crm_record_id
    assert page.locator("#pop-record").inner_text() == record_id
    assert page.locator("#pop-session").inner_text() == "c-1"
    assert page.locator("#pop-link").get_attribute("href") == f"{zendesk_sandbox.base_url}/agent/tickets/{record_id}"
