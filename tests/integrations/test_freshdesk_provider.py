"""The Freshdesk provider against the sandbox Freshdesk over loopback HTTP, in Freshdesk's shapes."""

import pytest
import requests

from integrations.exceptions import CrmAuthError, CrmRateLimited, CrmRequestError
from integrations.providers.base import (
    Attachment,
    Comment,
    ConnectionSettings,
    CustomFieldSpec,
    CustomFieldType,
    NewRecord,
    RecordChanges,
)
from integrations.providers.freshdesk import FreshdeskProvider, field_name
from integrations.sandbox import SandboxServer
from tests.support import sandbox_config, sandbox_stats


def provider_for(sandbox: SandboxServer, key: str = "sandbox-api-key") -> FreshdeskProvider:
    settings = ConnectionSettings(kind="freshdesk", base_url=sandbox.base_url, config={}, secrets={"api_token": key})
    return FreshdeskProvider(settings)


@pytest.fixture
def freshdesk(freshdesk_sandbox: SandboxServer) -> FreshdeskProvider:
    provider = provider_for(freshdesk_sandbox)
    provider.ensure_custom_fields(())
    return provider


def test_the_connection_test_authenticates_with_the_api_key(freshdesk_sandbox: SandboxServer) -> None:
    provider_for(freshdesk_sandbox).test_connection()
    with pytest.raises(CrmAuthError):
        provider_for(freshdesk_sandbox, key="wrong").test_connection()


def test_contacts_are_found_by_phone_or_mobile_in_any_stored_format(
    freshdesk: FreshdeskProvider, freshdesk_sandbox: SandboxServer
) -> None:
    for name, field, value in (("Typed", "phone", "4155550100"), ("Mobile", "mobile", "+14155550100"),
                               ("Other", "phone", "4155550199")):  # fmt: skip
        url = f"{freshdesk_sandbox.base_url}/api/v2/contacts"
        requests.post(url, json={"name": name, field: value}, auth=("sandbox-api-key", "X"), timeout=5)

    found = freshdesk.find_contacts(phone="+14155550100")

    assert [contact.name for contact in found][:1] == ["Mobile"]
    assert sorted(contact.name for contact in found) == ["Mobile", "Typed"]
    assert freshdesk.find_contacts(phone="+14155550123") == []


def test_a_ticket_is_created_found_by_its_session_id_updated_and_noted(freshdesk: FreshdeskProvider) -> None:
    contact = freshdesk.create_contact(name="Caller", phone="+14155550100")
    agent = freshdesk.find_agent(email="ben@example.com")
    assert agent is not None

    record = freshdesk.create_record(
        NewRecord(
            subject="IVR Call",
            external_id="c-1",
            requester_id=contact.id,
            first_comment=Comment(body="Call ID: c-1\nLanguage: en"),
            tags=("Voice Inbound (IVR)",),
        )
    )
    file = Attachment(filename="transcript.txt", content_type="text/plain", content=b"hi there")
    freshdesk.update_record(
        record.id,
        RecordChanges(assignee_id=agent.id, add_tags=("acme",), comment=Comment(body="done", attachments=(file,))),
    )
    resolved = freshdesk.update_record(record.id, RecordChanges(status=freshdesk.resolved_status))

    assert [found.id for found in freshdesk.find_records_by_external_id("c-1")] == [record.id]
    assert record.status == "open"
    assert freshdesk.is_open(record)
    assert resolved.status == "resolved"
    assert not freshdesk.is_open(resolved)
    assert resolved.tags == ("Voice Inbound (IVR)", "acme")
    assert resolved.assignee_id == agent.id
    comments = freshdesk.list_comments(record.id)
    assert [comment.body for comment in comments] == ["Call ID: c-1\nLanguage: en", "done"]
    assert comments[1].public is False
    assert [attachment.filename for attachment in comments[1].attachments] == ["transcript.txt"]
    assert [r.id for r in freshdesk.list_contact_records(contact.id)] == [record.id]


def test_custom_fields_are_cf_ticket_fields_made_once(freshdesk: FreshdeskProvider) -> None:
    specs = (CustomFieldSpec("call_duration", "Call duration", CustomFieldType.INTEGER),)

    assert (
        freshdesk.ensure_custom_fields(specs)
        == freshdesk.ensure_custom_fields(specs)
        == {"call_duration": "cf_call_duration"}
    )
    assert {"cf_call_duration", "cf_crm_bridge_session_id"} <= freshdesk.existing_custom_fields()
    assert field_name("CRM Bridge session id") == "cf_crm_bridge_session_id"
    contact = freshdesk.create_contact(name="Caller", email="c@example.com")
    with pytest.raises(CrmRequestError, match="datatype_mismatch"):
        freshdesk.create_record(
            NewRecord("s", "c-2", contact.id, Comment(body="x"), custom_fields={"cf_call_duration": "ninety"})
        )


def test_a_429_carries_retry_after(freshdesk: FreshdeskProvider, freshdesk_sandbox: SandboxServer) -> None:
    sandbox_config(freshdesk_sandbox, throttle_rate=1.0, retry_after_seconds=7)

    with pytest.raises(CrmRateLimited) as caught:
        freshdesk.test_connection()

    assert caught.value.retry_after == 7
    assert sandbox_stats(freshdesk_sandbox)["rate_limited"] == 1


def test_the_search_query_must_be_wrapped_in_double_quotes(freshdesk_sandbox: SandboxServer) -> None:
    url = f"{freshdesk_sandbox.base_url}/api/v2/search/contacts"
    auth = ("sandbox-api-key", "X")

    bare = requests.get(url, params={"query": "phone:'1'"}, auth=auth, timeout=5)
    quoted = requests.get(url, params={"query": "\"phone:'1'\""}, auth=auth, timeout=5)

    assert bare.status_code == 400
    assert bare.json()["errors"][0]["field"] == "query"
    assert quoted.json() == {"total": 0, "results": []}
    assert quoted.headers["X-RateLimit-Remaining"]
