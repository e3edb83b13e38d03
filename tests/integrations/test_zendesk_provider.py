"""The Zendesk provider against the sandbox Zendesk over loopback HTTP."""

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta

import pytest
import redis
import requests

from integrations.exceptions import CrmAuthError, CrmNotFound, CrmRateLimited, CrmRequestError, CrmTransientError
from integrations.http import CrmHttpClient
from integrations.providers.base import (
    Attachment,
    Comment,
    ConnectionSettings,
    CustomFieldSpec,
    CustomFieldType,
    NewRecord,
    RecordChanges,
)
from integrations.providers.zendesk import ZendeskProvider
from integrations.ratelimit import RedisRateGate
from integrations.sandbox import SandboxServer
from integrations.sandbox import zendesk as sandbox_zendesk
from tests.support import TEST_BROKER_URL, sandbox_config, sandbox_stats


def provider_for(
    sandbox: SandboxServer, *, timeout: float = 5.0, gate: RedisRateGate | None = None, per_minute: int | None = None
) -> ZendeskProvider:
    settings = ConnectionSettings(
        kind="zendesk",
        base_url=sandbox.base_url,
        config={"email": "admin@example.com"},
        secrets={"api_token": "sandbox-token"},
        timeout=timeout,
        rate_limit_per_minute=per_minute,
    )
    return ZendeskProvider(settings, rate_gate=gate)


@pytest.fixture
def zendesk(zendesk_sandbox: SandboxServer) -> ZendeskProvider:
    return provider_for(zendesk_sandbox)


@pytest.fixture
def contact_id(zendesk: ZendeskProvider) -> str:
    return zendesk.create_contact(name="Caller", phone="+14155550100").id


def new_ticket(requester_id: str, external_id: str = "c-1", assignee_id: str | None = None) -> NewRecord:
    return NewRecord(
        subject="IVR Call from +14155550100",
        external_id=external_id,
        requester_id=requester_id,
        first_comment=Comment(body="Call ID: c-1"),
        assignee_id=assignee_id,
        tags=("voice_inbound_ivr",),
    )


def test_find_contacts_matches_phone_whatever_its_format(zendesk: ZendeskProvider) -> None:
    created = zendesk.create_contact(name="Caller", phone="+1 415-555-0100")

    found = zendesk.find_contacts(phone="+14155550100")

    assert [contact.id for contact in found] == [created.id]
    assert found[0].name == "Caller"


def test_find_contacts_returns_the_newest_first(zendesk: ZendeskProvider) -> None:
    older = zendesk.create_contact(name="Old", email="old@example.net")
    newer = zendesk.create_contact(name="New", email="new@example.net")
    zendesk.create_contact(name="Other", phone="+14155550999")

    assert [c.id for c in zendesk.find_contacts(email="old@example.net")] == [older.id]
    assert newer.id != older.id
    assert zendesk.find_contacts(phone="+19999999999") == []
    assert zendesk.find_contacts() == []


def test_find_agent_matches_agents_by_email_only(zendesk: ZendeskProvider) -> None:
    zendesk.create_contact(name="Customer", email="customer@example.net")

    agent = zendesk.find_agent(email="ANA@example.com")

    assert agent is not None
    assert agent.email == "ana@example.com"
    assert zendesk.find_agent(email="customer@example.net") is None
    assert zendesk.find_agent(email="nobody@example.com") is None


def test_create_record_is_found_by_external_id_with_its_internal_comment(
    zendesk: ZendeskProvider, contact_id: str
) -> None:
    agent = zendesk.find_agent(email="ana@example.com")
    assert agent is not None

    record = zendesk.create_record(new_ticket(contact_id, assignee_id=agent.id))

    assert zendesk.find_records_by_external_id("c-1") == [record]
    assert record.subject == "IVR Call from +14155550100"
    assert record.requester_id == contact_id
    assert record.assignee_id == agent.id
    assert record.tags == ("voice_inbound_ivr",)
    assert zendesk.list_comments(record.id) == [Comment(body="Call ID: c-1", public=False)]
    assert zendesk.find_records_by_external_id("c-2") == []


def test_update_record_changes_status_tags_and_adds_a_comment(zendesk: ZendeskProvider, contact_id: str) -> None:
    record = zendesk.create_record(new_ticket(contact_id))

    updated = zendesk.update_record(
        record.id, RecordChanges(status="pending", add_tags=("callback",), comment=Comment(body="Called back"))
    )

    assert updated.status == "pending"
    assert set(updated.tags) == {"voice_inbound_ivr", "callback"}
    assert [c.body for c in zendesk.list_comments(record.id)] == ["Call ID: c-1", "Called back"]
    assert zendesk.get_record(record.id) == updated


def test_update_of_a_closed_ticket_is_a_request_error(zendesk: ZendeskProvider, contact_id: str) -> None:
    record = zendesk.create_record(new_ticket(contact_id))
    zendesk.update_record(record.id, RecordChanges(status="closed"))

    with pytest.raises(CrmRequestError) as error:
        zendesk.add_comment(record.id, Comment(body="late"))

    assert error.value.status_code == 422
    body = error.value.body
    assert isinstance(body, dict)
    assert body["details"]["status"][0]["description"] == "Status: closed prevents ticket update"


# -- Contact records, custom fields, attachments, merges ------------------------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox (served from this process) stamps each write one second after the last."""
    start = datetime(2024, 5, 1, tzinfo=UTC)
    ticks = itertools.count()
    monkeypatch.setattr(
        sandbox_zendesk, "_now", lambda: (start + timedelta(seconds=next(ticks))).strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def test_external_id_contact_is_created_and_found_exactly(zendesk: ZendeskProvider) -> None:
    created = zendesk.create_contact(name="App user", external_id="app-42")
    zendesk.create_contact(name="Other app user", external_id="app-420")

    found = zendesk.find_contacts(external_id="app-42")

    assert created.external_id == "app-42"
    assert found == [created]
    assert zendesk.find_contacts(external_id="app-4") == []


@pytest.mark.usefixtures("clock")
def test_list_contact_records_reads_every_page_most_recently_updated_first(
    zendesk_sandbox: SandboxServer, zendesk_api: requests.Session, zendesk: ZendeskProvider, contact_id: str
) -> None:
    # given: more tickets than one page holds, the oldest updated last, and another contact's ticket
    tickets_url = f"{zendesk_sandbox.base_url}/api/v2/tickets.json"
    for n in range(101):
        ticket = {"subject": f"Call {n}", "comment": {"body": "x"}, "requester_id": int(contact_id)}
        assert zendesk_api.post(tickets_url, json={"ticket": ticket}, timeout=5).status_code == 201
    zendesk.create_record(new_ticket(zendesk.create_contact(name="Other", phone="+14155550999").id))
    zendesk.update_record("1", RecordChanges(status="pending"))

    # when
    records = zendesk.list_contact_records(contact_id)

    # then
    assert [record.id for record in records] == ["1", *(str(n) for n in range(101, 1, -1))]
    assert {record.requester_id for record in records} == {contact_id}
    assert sandbox_stats(zendesk_sandbox)["requests"]["GET /api/v2/users/{id}/tickets/requested.json"] == 2


def test_ensure_custom_fields_creates_what_is_missing_once(
    zendesk_sandbox: SandboxServer, zendesk_api: requests.Session, zendesk: ZendeskProvider
) -> None:
    existing = zendesk_api.post(
        f"{zendesk_sandbox.base_url}/api/v2/ticket_fields.json",
        json={"ticket_field": {"type": "text", "title": "Call ID"}},
        timeout=5,
    ).json()["ticket_field"]
    specs = [
        CustomFieldSpec(key="call_id", title="Call ID"),
        CustomFieldSpec(key="wait", title="Wait (s)", type=CustomFieldType.INTEGER),
        CustomFieldSpec(key="answered", title="Answered", type=CustomFieldType.BOOLEAN),
    ]

    ids = zendesk.ensure_custom_fields(specs)
    again = zendesk.ensure_custom_fields(specs)

    assert again == ids
    assert ids["call_id"] == str(existing["id"])
    assert sandbox_stats(zendesk_sandbox)["requests"]["POST /api/v2/ticket_fields.json"] == 3  # 1 given + 2 created
    fields = zendesk_api.get(f"{zendesk_sandbox.base_url}/api/v2/ticket_fields.json", timeout=5).json()["ticket_fields"]
    types = {str(field["id"]): field["type"] for field in fields}
    assert (types[ids["wait"]], types[ids["answered"]]) == ("integer", "checkbox")
    assert set(ids.values()) <= zendesk.existing_custom_fields()
    assert set(types) == zendesk.existing_custom_fields()


def test_custom_field_values_are_written_and_read_back(zendesk: ZendeskProvider, contact_id: str) -> None:
    ids = zendesk.ensure_custom_fields(
        [CustomFieldSpec(key="call_id", title="Call ID"), CustomFieldSpec(key="queue", title="Queue")]
    )
    call_id, queue = ids["call_id"], ids["queue"]

    created = zendesk.create_record(
        dataclasses.replace(new_ticket(contact_id), custom_fields={call_id: "c-1", "25356371": "no such field"})
    )
    updated = zendesk.update_record(created.id, RecordChanges(custom_fields={queue: "sales"}))

    assert created.custom_fields == {call_id: "c-1", queue: None}
    assert updated.custom_fields == {call_id: "c-1", queue: "sales"}
    assert zendesk.get_record(created.id).custom_fields == updated.custom_fields


def test_comment_attachments_are_uploaded_and_read_back(
    zendesk_api: requests.Session, zendesk: ZendeskProvider, contact_id: str
) -> None:
    summary = Attachment(filename="summary.txt", content_type="text/plain", content=b"Caller asked for a refund")
    recording = Attachment(filename="call.wav", content_type="audio/wav", content=bytes(range(256)) * 4)
    first = Comment(body="Call ID: c-1", attachments=(summary,))

    record = zendesk.create_record(dataclasses.replace(new_ticket(contact_id), first_comment=first))
    zendesk.add_comment(record.id, Comment(body="Recording", attachments=(recording,)))

    comments = zendesk.list_comments(record.id)
    assert [comment.body for comment in comments] == ["Call ID: c-1", "Recording"]
    for comment, sent in zip(comments, (summary, recording), strict=True):
        (attachment,) = comment.attachments
        assert (attachment.filename, attachment.content_type) == (sent.filename, sent.content_type)
        assert attachment.url is not None
        file = zendesk_api.get(attachment.url, timeout=5)
        assert (file.status_code, file.content) == (200, sent.content)


def test_unknown_upload_token_is_a_request_error(zendesk: ZendeskProvider, contact_id: str) -> None:
    record = zendesk.create_record(new_ticket(contact_id))
    comment = {"body": "late file", "uploads": ["no-such-token"]}

    with pytest.raises(CrmRequestError) as error:
        zendesk.client.put(f"api/v2/tickets/{record.id}.json", json={"ticket": {"comment": comment}})

    assert error.value.status_code == 422
    assert [c.body for c in zendesk.list_comments(record.id)] == ["Call ID: c-1"]


def test_merged_ticket_names_the_ticket_it_was_merged_into(
    zendesk_sandbox: SandboxServer, zendesk_api: requests.Session, zendesk: ZendeskProvider, contact_id: str
) -> None:
    target = zendesk.create_record(new_ticket(contact_id, external_id="c-1"))
    source = zendesk.create_record(new_ticket(contact_id, external_id="c-2"))

    response = zendesk_api.post(
        f"{zendesk_sandbox.base_url}/api/v2/tickets/{target.id}/merge.json", json={"ids": [int(source.id)]}, timeout=5
    )

    assert response.json()["job_status"]["status"] == "completed"
    merged = zendesk.get_record(source.id)
    assert (merged.status, merged.merged_into_id) == ("closed", target.id)
    assert zendesk.get_record(target.id).merged_into_id is None
    assert not zendesk.can_reopen(merged)


def test_missing_ticket_is_not_found(zendesk: ZendeskProvider) -> None:
    with pytest.raises(CrmNotFound):
        zendesk.get_record("987654321")


def test_request_without_credentials_is_an_auth_error(zendesk_sandbox: SandboxServer) -> None:
    client = CrmHttpClient(zendesk_sandbox.base_url, timeout=5)

    with pytest.raises(CrmAuthError):
        client.get("api/v2/users.json")


def test_injected_5xx_is_transient_and_writes_nothing(zendesk_sandbox: SandboxServer, zendesk: ZendeskProvider) -> None:
    sandbox_config(zendesk_sandbox, fail_rate=1.0)

    with pytest.raises(CrmTransientError):
        zendesk.create_contact(name="Caller", phone="+14155550100")

    sandbox_config(zendesk_sandbox, fail_rate=0.0)
    assert zendesk.find_contacts(phone="+14155550100") == []


def test_slow_answer_past_the_timeout_is_transient(zendesk_sandbox: SandboxServer) -> None:
    sandbox_config(zendesk_sandbox, latency_ms=800)

    with pytest.raises(CrmTransientError, match="timed out"):
        provider_for(zendesk_sandbox, timeout=0.2).test_connection()


def test_429_carries_retry_after_and_closes_the_shared_gate(zendesk_sandbox: SandboxServer) -> None:
    gate = RedisRateGate(redis.Redis.from_url(TEST_BROKER_URL))
    zendesk = provider_for(zendesk_sandbox, gate=gate)
    # A 429 the window's headers did not foretell (they would have held the call back before it).
    sandbox_config(zendesk_sandbox, throttle_rate=1.0, retry_after_seconds=30)

    with pytest.raises(CrmRateLimited) as first:
        zendesk.test_connection()
    after_429 = sandbox_stats(zendesk_sandbox)
    with pytest.raises(CrmRateLimited) as second:
        zendesk.test_connection()

    assert first.value.retry_after == 30
    assert 0 < second.value.retry_after <= first.value.retry_after
    # The second call was stopped by the gate in Redis: it never reached the CRM. (Compared with
    # the figures after the first call: the session's shared sandbox once counted a stray 429 of
    # an earlier test's worker before it, 2 == 1 in a CI run.)
    assert after_429["rate_limited"] >= 1
    assert sandbox_stats(zendesk_sandbox)["total"] == after_429["total"]
    assert sandbox_stats(zendesk_sandbox)["rate_limited"] == after_429["rate_limited"]
    gate.open(zendesk_sandbox.base_url + "/")


def test_own_rate_limit_is_shared_and_stops_calls_before_the_crm_sees_them(zendesk_sandbox: SandboxServer) -> None:
    gate = RedisRateGate(redis.Redis.from_url(TEST_BROKER_URL))
    # Two providers stand for two workers: they share the one window in Redis.
    first, second = (provider_for(zendesk_sandbox, gate=gate, per_minute=3) for _ in range(2))
    first.test_connection()
    second.test_connection()
    first.test_connection()

    with pytest.raises(CrmRateLimited, match="own limit of 3 requests/min") as limited:
        second.test_connection()

    assert 59 < limited.value.retry_after <= 60
    assert sandbox_stats(zendesk_sandbox)["total"] == 3
    assert sandbox_stats(zendesk_sandbox)["rate_limited"] == 0
    gate.open(zendesk_sandbox.base_url + "/")
    second.test_connection()


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("Voice Inbound (IVR)", "voice_inbound_ivr"),
        ("Messaging Inbound (Web Chat)", "messaging_inbound_web_chat"),
        ("Voice Outbound", "voice_outbound"),
    ],
)
def test_session_type_tag_in_zendesk_style(zendesk: ZendeskProvider, name: str, tag: str) -> None:
    assert zendesk.session_type_tag(name) == tag


@pytest.mark.parametrize("stored", ["(415) 555-0100", "415-555-0100", "+1 415 555 0100", "4155550100"])
def test_find_contacts_matches_a_phone_stored_in_any_format(zendesk: ZendeskProvider, stored: str) -> None:
    created = zendesk.create_contact(name="Typed by an agent", phone=stored)

    assert [contact.id for contact in zendesk.find_contacts(phone="+14155550100")] == [created.id]


def test_find_contacts_by_phone_ranks_the_exact_phone_first_and_drops_near_misses(
    zendesk_sandbox: SandboxServer, zendesk: ZendeskProvider
) -> None:
    exact = zendesk.create_contact(name="Exact", phone="+14155550100")
    users = f"{zendesk_sandbox.base_url}/api/v2/users.json"
    auth = ("admin@example.com/token", "sandbox-token")
    ids = []
    for name, phone in (("Typed later", "(415) 555-0100"), ("Abroad", "+44 4155 550100")):
        body = {"user": {"name": name, "phone": phone, "shared_phone_number": True}}
        response = requests.post(users, json=body, auth=auth, timeout=5)
        assert response.status_code == 201, response.text
        ids.append(str(response.json()["user"]["id"]))

    found = zendesk.find_contacts(phone="+14155550100")

    # The typed one is newer, yet the exact one comes first; the +44 number is not the caller.
    assert [contact.id for contact in found] == [exact.id, ids[0]]


def test_list_contact_records_carries_the_solve_time_from_sideloaded_metric_sets_in_one_request(
    zendesk_sandbox: SandboxServer, zendesk: ZendeskProvider, contact_id: str
) -> None:
    solved = zendesk.create_record(new_ticket(contact_id, "c-1"))
    still_open = zendesk.create_record(new_ticket(contact_id, "c-2"))
    zendesk.update_record(solved.id, RecordChanges(status="solved"))
    # An automation tags the ticket later: its update time moves, its solve time does not.
    backdate = {"ticket": int(solved.id), "solved_at": "2026-11-11T09:00:00Z", "updated_at": "2026-11-17T09:00:00Z"}
    requests.post(f"{zendesk_sandbox.base_url}/__sandbox/backdate", json=backdate, timeout=5).raise_for_status()
    before = sandbox_stats(zendesk_sandbox)["total"]

    records = {record.id: record for record in zendesk.list_contact_records(contact_id)}

    assert records[solved.id].closed_at == "2026-11-11T09:00:00Z"
    assert records[solved.id].updated_at == "2026-11-17T09:00:00Z"
    assert records[still_open.id].closed_at is None
    assert sandbox_stats(zendesk_sandbox)["total"] - before == 1
