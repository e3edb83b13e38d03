"""Providers' screen-pop and contact capabilities (O3, O4) against the sandbox CRMs, and the sandbox display API."""

import pytest
import requests

from integrations.exceptions import CrmNotFound, CrmUnsupported
from integrations.providers.base import ConnectionSettings, Record
from integrations.providers.kustomer import KustomerProvider
from integrations.providers.salesforce import SalesforceProvider
from integrations.providers.zendesk import ZendeskProvider
from integrations.sandbox import SandboxServer


def zendesk(sandbox: SandboxServer) -> ZendeskProvider:
    settings = ConnectionSettings(
        kind="zendesk",
        base_url=sandbox.base_url,
        config={"email": "admin@example.com"},
        secrets={"api_token": "sandbox-token"},
    )
    return ZendeskProvider(settings)


def kustomer(sandbox: SandboxServer, base_url: str | None = None) -> KustomerProvider:
    settings = ConnectionSettings(
        kind="kustomer", base_url=base_url or sandbox.base_url, config={}, secrets={"api_token": "sandbox-api-key"}
    )
    return KustomerProvider(settings)


def test_zendesk_declares_the_talk_display_api_and_opens_a_ticket_on_the_agents_screen(
    zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    provider = zendesk(zendesk_sandbox)
    contact = provider.create_contact(name="Ann Lee", phone="+14155550100")
    ticket = zendesk_api.post(
        f"{zendesk_sandbox.base_url}/api/v2/tickets.json",
        json={"ticket": {"subject": "Call", "comment": {"body": "x"}, "requester_id": int(contact.id)}},
        timeout=10,
    ).json()["ticket"]
    agent = provider.find_agent(email="ana@example.com")
    assert agent is not None

    assert provider.supports_screen_pop_display
    provider.display_record(agent.id, str(ticket["id"]))

    displays = requests.get(f"{zendesk_sandbox.base_url}/__sandbox/displays", timeout=5).json()["displays"]
    assert [(item["agent_id"], item["ticket_id"]) for item in displays] == [(int(agent.id), ticket["id"])]
    # An end user is no agent, and an unknown ticket is no ticket: Zendesk's 404.
    with pytest.raises(CrmNotFound):
        provider.display_record(contact.id, str(ticket["id"]))
    with pytest.raises(CrmNotFound):
        provider.display_record(agent.id, "999999")


def test_zendesk_record_url_is_the_agent_page_and_contacts_carry_their_user_fields(
    zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    provider = zendesk(zendesk_sandbox)
    body = {"user": {"name": "Ann Lee", "role": "end-user", "user_fields": {"site_phone": "+442071838750"}}}
    user = zendesk_api.post(f"{zendesk_sandbox.base_url}/api/v2/users.json", json=body, timeout=10).json()["user"]

    contact = provider.get_contact(str(user["id"]))

    assert contact.fields == {"site_phone": "+442071838750"}
    assert provider.record_web_url(Record(id="812", subject="", status="open")) == (
        f"{zendesk_sandbox.base_url}/agent/tickets/812"
    )
    with pytest.raises(CrmNotFound):
        provider.get_contact("not-a-number")


def test_kustomer_has_no_display_api_its_record_url_is_the_customer_timeline(kustomer_sandbox: SandboxServer) -> None:
    provider = kustomer(kustomer_sandbox, base_url="https://acme.api.kustomerapp.com")
    record = Record(id="c0nv", subject="", status="open", requester_id="cu5t")

    assert not provider.supports_screen_pop_display
    assert provider.record_web_url(record) == "https://acme.kustomerapp.com/app/customers/cu5t/event/c0nv"
    with pytest.raises(CrmUnsupported):
        provider.display_record("u-1", "c0nv")


def test_kustomer_contact_by_id_with_its_custom_attributes(
    kustomer_sandbox: SandboxServer, kustomer_api: requests.Session
) -> None:
    body = {
        "name": "Ann Lee",
        "phones": [{"type": "mobile", "phone": "+14155550100"}],
        "custom": {"sitePhoneStr": "+44"},
    }
    created = kustomer_api.post(f"{kustomer_sandbox.base_url}/v1/customers", json=body, timeout=10).json()["data"]

    contact = kustomer(kustomer_sandbox).get_contact(created["id"])

    assert contact.phone == "+14155550100"
    assert contact.fields == {"sitePhoneStr": "+44"}


def test_a_provider_without_these_capabilities_says_so() -> None:
    settings = ConnectionSettings(kind="salesforce", base_url="https://acme.my.salesforce.com", config={}, secrets={})
    provider = SalesforceProvider(settings)

    # Every CRM with a record page has a URL for it (the provider's record_web_path) ...
    assert provider.record_web_url(Record(id="500x", subject="", status="New")) == (
        "https://acme.my.salesforce.com/lightning/r/Case/500x/view"
    )
    # ... but Salesforce cannot open it on the agent's screen, nor read a contact by id yet.
    assert not provider.supports_screen_pop_display
    with pytest.raises(CrmUnsupported):
        provider.get_contact("003")
