"""The Salesforce provider against the sandbox Salesforce over loopback HTTP."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import requests

from integrations.exceptions import CrmAuthError, CrmNotFound, CrmRateLimited, CrmRequestError
from integrations.http import LIMIT_EXCEEDED_RETRY_AFTER_SECONDS
from integrations.providers.base import (
    Attachment,
    Comment,
    ConnectionSettings,
    CustomFieldSpec,
    CustomFieldType,
    NewRecord,
    RecordChanges,
)
from integrations.providers.salesforce import SalesforceProvider, soql_string
from integrations.sandbox import SandboxServer
from integrations.sandbox.salesforce import SANDBOX_LOGIN
from tests.support import sandbox_config, sandbox_stats

SINCE = datetime.now(UTC) - timedelta(days=100)


def provider_for(sandbox: SandboxServer, **config: str) -> SalesforceProvider:
    settings = ConnectionSettings(
        kind="salesforce",
        base_url=sandbox.base_url,
        config={"client_id": "c", **config},
        secrets={"client_secret": "s", "password": "pw"},
        timeout=5,
    )
    return SalesforceProvider(settings)


@pytest.fixture
def salesforce(salesforce_sandbox: SandboxServer) -> SalesforceProvider:
    return provider_for(salesforce_sandbox)


def test_test_connection_logs_in_with_client_credentials(salesforce: SalesforceProvider) -> None:
    salesforce.test_connection()


def test_password_flow_is_used_when_a_username_is_configured(salesforce_sandbox: SandboxServer) -> None:
    username, password, security_token = SANDBOX_LOGIN
    settings = ConnectionSettings(
        kind="salesforce",
        base_url=salesforce_sandbox.base_url,
        config={"client_id": "c", "username": username},
        secrets={"client_secret": "s", "password": password, "security_token": security_token},
        timeout=5,
    )

    SalesforceProvider(settings).test_connection()


def test_bad_credentials_are_an_auth_error(salesforce_sandbox: SandboxServer) -> None:
    settings = ConnectionSettings(kind="salesforce", base_url=salesforce_sandbox.base_url, config={}, secrets={})

    with pytest.raises(CrmAuthError):
        SalesforceProvider(settings).test_connection()


def test_an_expired_token_is_refreshed_once(salesforce: SalesforceProvider, salesforce_sandbox: SandboxServer) -> None:
    salesforce.test_connection()
    requests.post(f"{salesforce_sandbox.base_url}/__sandbox/expire_tokens", timeout=5)

    salesforce.test_connection()

    assert sandbox_stats(salesforce_sandbox)["requests"]["POST /services/oauth2/token"] == 2


def test_request_limit_exceeded_is_rate_limited(
    salesforce: SalesforceProvider, salesforce_sandbox: SandboxServer
) -> None:
    salesforce.test_connection()
    sandbox_config(salesforce_sandbox, throttle_rate=1.0)

    with pytest.raises(CrmRateLimited) as caught:
        salesforce.test_connection()

    assert caught.value.retry_after > 0


def test_iter_tickets_follows_next_records_url_and_keeps_a_cursor(
    salesforce: SalesforceProvider, salesforce_sandbox: SandboxServer
) -> None:
    requests.post(f"{salesforce_sandbox.base_url}/__sandbox/seed", json={"count": 2100, "seed": 7}, timeout=30)

    pages = list(salesforce.iter_tickets(cursor=None, since=SINCE))

    assert [len(page.items) for page in pages] == [2000, 100]
    assert pages[0].total == 2100
    assert pages[-1].cursor >= pages[0].cursor
    assert all(ticket.web_url.endswith("/view") for ticket in pages[0].items)


def test_find_agent_escapes_the_email(salesforce: SalesforceProvider, salesforce_sandbox: SandboxServer) -> None:
    requests.post(f"{salesforce_sandbox.base_url}/__sandbox/seed", json={"users": [
        {"FirstName": "Sam", "LastName": "Force", "Email": "sam@example.com"}]}, timeout=5)  # fmt: skip

    agent = salesforce.find_agent(email="sam@example.com")

    assert agent is not None
    assert agent.name == "Sam Force"
    assert salesforce.find_agent(email="x' OR Email != '") is None
    assert soql_string("it's \\ here") == "'it\\'s \\\\ here'"


@pytest.fixture
def org(salesforce: SalesforceProvider) -> SalesforceProvider:
    """An org set up once for the product: the external-id fields on Case and Contact exist."""
    salesforce.ensure_custom_fields(())
    return salesforce


def test_contacts_are_found_by_phone_in_any_stored_format(
    org: SalesforceProvider, salesforce_sandbox: SandboxServer
) -> None:
    requests.post(f"{salesforce_sandbox.base_url}/__sandbox/seed", json={"contacts": [
        {"LastName": "Typed", "Phone": "(415) 555-0100"}, {"LastName": "Mobile", "MobilePhone": "+1 415 555 0100"},
        {"LastName": "Other", "Phone": "+1 415 555 0199"}]}, timeout=5)  # fmt: skip

    found = org.find_contacts(phone="+14155550100")

    assert sorted(contact.name for contact in found) == ["Mobile", "Typed"]
    assert sandbox_stats(salesforce_sandbox)["requests"]["GET /services/data/v{version}/search"] == 1


def test_a_created_contact_is_found_by_email_and_external_id(org: SalesforceProvider) -> None:
    made = org.create_contact(name="Ann Lee", email="ann@example.com", external_id="u-77")

    assert [contact.id for contact in org.find_contacts(email="ann@example.com")] == [made.id]
    assert [contact.name for contact in org.find_contacts(external_id="u-77")] == ["Ann Lee"]
    assert org.find_contacts(external_id="x' OR Name != '") == []


def new_case(contact_id: str, session_id: str = "c-1") -> NewRecord:
    return NewRecord(
        subject="IVR Call c-1",
        external_id=session_id,
        requester_id=contact_id,
        first_comment=Comment(body="Call ID: c-1"),
    )


def test_case_create_is_an_upsert_on_the_session_id(org: SalesforceProvider, salesforce_sandbox: SandboxServer) -> None:
    contact = org.create_contact(name="Caller", phone="+14155550100")

    first = org.create_record(new_case(contact.id))
    again = org.create_record(new_case(contact.id))

    assert again.id == first.id
    assert [record.id for record in org.find_records_by_external_id("c-1")] == [first.id]
    assert first.status == "New"
    assert org.is_open(first)
    assert first.url == f"{salesforce_sandbox.base_url}/lightning/r/Case/{first.id}/view"
    assert [comment.body for comment in org.list_comments(first.id)] == ["Call ID: c-1"]


def test_an_update_with_a_comment_and_a_file_is_one_composite_call(
    org: SalesforceProvider, salesforce_sandbox: SandboxServer
) -> None:
    contact = org.create_contact(name="Caller", phone="+14155550100")
    case = org.create_record(new_case(contact.id))
    before = sandbox_stats(salesforce_sandbox)["total"]

    file = Attachment(filename="transcript.txt", content_type="text/plain", content=b"hi")
    closed = org.update_record(
        case.id, RecordChanges(status="Closed", comment=Comment(body="done", attachments=(file,)))
    )

    assert sandbox_stats(salesforce_sandbox)["total"] - before == 1
    assert closed.status == "Closed"
    assert not org.is_open(closed)
    assert [comment.body for comment in org.list_comments(case.id)] == ["Call ID: c-1", "done"]
    reopened = org.update_record(case.id, RecordChanges(status=org.default_open_status))
    assert org.is_open(reopened)
    assert [record.id for record in org.list_contact_records(contact.id)] == [case.id]


def test_a_failed_subrequest_rolls_the_composite_back_and_raises_its_own_error(org: SalesforceProvider) -> None:
    contact = org.create_contact(name="Caller", phone="+14155550100")
    case = org.create_record(new_case(contact.id))

    with pytest.raises(CrmRequestError) as caught:
        org.update_record(case.id, RecordChanges(status="Nonsense", comment=Comment(body="lost")))

    assert "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" in str(caught.value)
    assert [comment.body for comment in org.list_comments(case.id)] == ["Call ID: c-1"]


def test_custom_fields_are_made_through_the_tooling_api_once(org: SalesforceProvider) -> None:
    specs = (
        CustomFieldSpec("call_duration", "Call duration", CustomFieldType.INTEGER),
        CustomFieldSpec("queue_name", "Queue"),
    )

    ids = org.ensure_custom_fields(specs)
    again = org.ensure_custom_fields(specs)

    assert ids == again == {"call_duration": "Call_Duration__c", "queue_name": "Queue_Name__c"}
    assert {"Call_Duration__c", "Queue_Name__c", "CRM_Bridge_Session_Id__c"} <= org.existing_custom_fields()
    contact = org.create_contact(name="Caller", phone="+14155550100")
    case = org.create_record(dataclasses.replace(new_case(contact.id), custom_fields={"Call_Duration__c": 90}))
    assert case.custom_fields["Call_Duration__c"] == 90


def test_without_the_external_id_field_a_create_fails_visibly(salesforce: SalesforceProvider) -> None:
    contact = salesforce.create_contact(name="Caller", phone="+14155550100")

    with pytest.raises(CrmNotFound, match="external ID field does not exist"):
        salesforce.create_record(new_case(contact.id))


def test_the_limit_header_closes_the_shared_gate_before_the_org_runs_out(salesforce_sandbox: SandboxServer) -> None:
    gate = MemoryGate()
    settings = ConnectionSettings(
        kind="salesforce",
        base_url=salesforce_sandbox.base_url,
        config={"client_id": "c"},
        secrets={"client_secret": "s"},
    )
    provider = SalesforceProvider(settings, rate_gate=gate)
    provider.test_connection()
    assert gate.closed == {}

    # Two calls so far (login, query): the third is admitted and leaves none of a limit of 3.
    sandbox_config(salesforce_sandbox, rate_limit_per_minute=3)
    provider.test_connection()

    assert list(gate.closed.values()) == [LIMIT_EXCEEDED_RETRY_AFTER_SECONDS]


class MemoryGate:
    def __init__(self) -> None:
        self.closed: dict[str, float] = {}

    def acquire(self, key: str, per_minute: int, *, first: bool = False) -> float:
        return 0.0

    def seconds_until_open(self, key: str) -> float:
        return 0.0

    def hold(self, key: str, *, first: bool = False) -> float:
        return 0.0

    def close_for(self, key: str, seconds: float, *, pace: float = 0.0) -> None:
        self.closed[key] = seconds

    def record_usage(self, key: str, *outcomes: str) -> None:
        """The health chart's counters: not what this test is about."""
