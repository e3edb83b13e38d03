"""The Kustomer provider against the sandbox Kustomer over loopback HTTP."""

import time
from typing import Any

import pytest
import redis
import requests

from integrations.exceptions import CrmAuthError, CrmNotFound, CrmRateLimited, CrmRequestError, CrmTransientError
from integrations.providers.base import (
    Attachment,
    Comment,
    ConnectionSettings,
    CrmUserStatus,
    CustomFieldSpec,
    CustomFieldType,
    NewRecord,
    Record,
    RecordChanges,
)
from integrations.providers.kustomer import KustomerClient, KustomerProvider, attribute_name
from integrations.providers.registry import get_provider
from integrations.ratelimit import RedisRateGate
from integrations.sandbox import SandboxServer
from integrations.services import connection_test
from tests.support import TEST_BROKER_URL, sandbox_config, sandbox_stats

ANA, BEN = "5f0a00000000000000000011", "5f0a00000000000000000012"
AVAILABLE, BUSY, EMAIL_WORK, OFFLINE = (
    "5f0c00000000000000000001",
    "5f0c00000000000000000002",
    "5f0c00000000000000000003",
    "5f0c00000000000000000005",
)


def provider_for(
    sandbox: SandboxServer,
    *,
    token: str = "sandbox-api-key",
    timeout: float = 5.0,
    gate: RedisRateGate | None = None,
) -> KustomerProvider:
    settings = ConnectionSettings(
        kind="kustomer", base_url=sandbox.base_url, config={}, secrets={"api_token": token}, timeout=timeout
    )
    provider = get_provider(settings, rate_gate=gate)
    assert isinstance(provider, KustomerProvider)
    return provider


@pytest.fixture
def kustomer(kustomer_sandbox: SandboxServer) -> KustomerProvider:
    return provider_for(kustomer_sandbox)


@pytest.fixture
def contact_id(kustomer: KustomerProvider) -> str:
    return kustomer.create_contact(name="Caller", phone="+14155550100").id


def new_conversation(customer_id: str, external_id: str = "c-1", **fields: Any) -> NewRecord:
    return NewRecord(
        subject="IVR Call from +14155550100",
        external_id=external_id,
        requester_id=customer_id,
        first_comment=Comment(body="Call ID: c-1"),
        tags=("Voice Inbound - IVR",),
        **fields,
    )


def control(sandbox: SandboxServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{sandbox.base_url}/__sandbox/{path}", json=body, timeout=5)
    assert response.status_code in (200, 201), response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def test_connection_and_registry_build_a_kustomer_provider(kustomer: KustomerProvider) -> None:
    kustomer.test_connection()

    assert kustomer.kind == "kustomer"
    assert kustomer.supports_user_status is True
    assert kustomer.open_statuses == frozenset({"open"})
    assert kustomer.default_open_status == "open"
    assert kustomer.immutable_statuses == frozenset()


def test_find_contacts_by_phone_email_and_external_id(kustomer: KustomerProvider) -> None:
    created = kustomer.create_contact(name="Caller", phone="+14155550100", email="c@example.net", external_id="app-7")

    assert kustomer.find_contacts(phone="+14155550100") == [created]
    assert kustomer.find_contacts(email="C@example.net") == [created]
    assert kustomer.find_contacts(external_id="app-7") == [created]
    assert created.phone == "+14155550100"
    assert created.email == "c@example.net"
    assert created.external_id == "app-7"
    assert kustomer.find_contacts(phone="+19999999999") == []
    assert kustomer.find_contacts() == []


def test_create_contact_with_a_taken_phone_is_a_conflict(kustomer: KustomerProvider, contact_id: str) -> None:
    with pytest.raises(CrmRequestError) as error:
        kustomer.create_contact(name="Other", phone="+14155550100")

    assert error.value.status_code == 409
    assert contact_id in str(error.value.body)


def test_find_agent_and_get_agent(kustomer: KustomerProvider) -> None:
    agent = kustomer.find_agent(email="ANA@example.com")

    assert agent is not None
    assert (agent.id, agent.email, agent.name) == (ANA, "ana@example.com", "Ana Agent")
    assert kustomer.get_agent(ANA) == agent
    # The API key's machine user is no agent.
    assert kustomer.find_agent(email="api@example.com") is None
    assert kustomer.find_agent(email="nobody@example.com") is None
    with pytest.raises(CrmNotFound):
        kustomer.get_agent("5f0a0000000000000000ffff")


def test_create_record_is_found_by_external_id_with_its_note(kustomer: KustomerProvider, contact_id: str) -> None:
    record = kustomer.create_record(new_conversation(contact_id, assignee_id=ANA))

    assert kustomer.find_records_by_external_id("c-1") == [record]
    assert record.subject == "IVR Call from +14155550100"
    assert record.status == "open"
    assert record.requester_id == contact_id
    assert record.assignee_id == ANA
    assert record.tags == ("Voice Inbound - IVR",)
    assert record.url == f"{kustomer.client.base_url}v1/conversations/{record.id}"
    assert record.merged_into_id is None
    assert kustomer.list_comments(record.id) == [Comment(body="Call ID: c-1", public=False)]
    assert kustomer.find_records_by_external_id("c-2") == []


def test_update_record_patches_appends_tags_and_adds_a_note(kustomer: KustomerProvider, contact_id: str) -> None:
    record = kustomer.create_record(new_conversation(contact_id))

    updated = kustomer.update_record(
        record.id,
        RecordChanges(status="done", assignee_id=BEN, add_tags=("callback",), comment=Comment(body="Called back")),
    )

    assert updated.status == "done"
    assert updated.assignee_id == BEN
    assert updated.tags == ("Voice Inbound - IVR", "callback")
    assert [c.body for c in kustomer.list_comments(record.id)] == ["Call ID: c-1", "Called back"]
    assert kustomer.get_record(record.id) == updated
    # A comment alone changes nothing else and still answers the record.
    assert kustomer.add_comment(record.id, Comment(body="Third")) == updated


def test_list_contact_records_follows_pages_most_recently_updated_first(
    kustomer_sandbox: SandboxServer, kustomer: KustomerProvider, contact_id: str
) -> None:
    records = [kustomer.create_record(new_conversation(contact_id, f"c-{n}")) for n in range(3)]
    kustomer.update_record(records[0].id, RecordChanges(status="done"))
    # A page size of one makes the provider follow links.next.
    original = KustomerClient.pages

    def small_pages(self: KustomerClient, path: str, params: dict[str, Any] | None = None) -> Any:
        return original(self, path, {"pageSize": 1, **(params or {})})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(KustomerClient, "pages", small_pages)
        listed = kustomer.list_contact_records(contact_id)

    assert [record.id for record in listed] == [records[0].id, records[2].id, records[1].id]
    assert sandbox_stats(kustomer_sandbox)["requests"]["GET /v1/customers/{id}/conversations"] == 3


def test_comment_attachments_are_uploaded_and_listed(
    kustomer_api: requests.Session, kustomer: KustomerProvider, contact_id: str
) -> None:
    record = kustomer.create_record(new_conversation(contact_id))
    transcript = Attachment(filename="transcript.txt", content_type="text/plain", content=b"Hello\nBye\n")

    kustomer.add_comment(record.id, Comment(body="Chat transcript", attachments=(transcript,)))

    comments = kustomer.list_comments(record.id)
    assert [comment.body for comment in comments] == ["Call ID: c-1", "Chat transcript"]
    (listed,) = comments[1].attachments
    assert (listed.filename, listed.content_type) == ("transcript.txt", "text/plain")
    assert listed.url is not None
    resource = kustomer_api.get(listed.url, timeout=5).json()["data"]
    assert resource["attributes"]["uploaded"] is True
    assert requests.get(resource["links"]["related"], timeout=5).content == b"Hello\nBye\n"


@pytest.mark.parametrize(
    ("key", "field_type", "name"),
    [
        ("call_duration", CustomFieldType.INTEGER, "callDurationNum"),
        ("wait_time", CustomFieldType.DECIMAL, "waitTimeNum"),
        ("call_id", CustomFieldType.TEXT, "callIdStr"),
        ("was_transferred", CustomFieldType.BOOLEAN, "wasTransferredBool"),
    ],
)
def test_attribute_name_is_camel_case_with_the_type_suffix(key: str, field_type: CustomFieldType, name: str) -> None:
    assert attribute_name(CustomFieldSpec(key=key, title=key, type=field_type)) == name


def test_custom_fields_are_defined_reused_and_set_on_conversations(
    kustomer_sandbox: SandboxServer, kustomer: KustomerProvider, contact_id: str
) -> None:
    specs = [
        CustomFieldSpec(key="call_duration", title="Call duration", type=CustomFieldType.INTEGER),
        CustomFieldSpec(key="call_id", title="Call ID"),
    ]
    assert kustomer.existing_custom_fields() == frozenset()

    names = kustomer.ensure_custom_fields(specs)
    again = kustomer.ensure_custom_fields(specs)

    assert names == again == {"call_duration": "callDurationNum", "call_id": "callIdStr"}
    assert kustomer.existing_custom_fields() == frozenset({"callDurationNum", "callIdStr"})
    # Only the first call defined anything.
    assert sandbox_stats(kustomer_sandbox)["requests"]["PUT /v1/metadata/{resource}"] == 1
    record = kustomer.create_record(new_conversation(contact_id, custom_fields={"callIdStr": "c-1"}))
    updated = kustomer.update_record(record.id, RecordChanges(custom_fields={"callDurationNum": 42}))
    assert updated.custom_fields == {"callIdStr": "c-1", "callDurationNum": 42}


def test_custom_field_of_the_same_title_is_reused(kustomer_api: requests.Session, kustomer: KustomerProvider) -> None:
    kustomer_api.put(
        f"{kustomer.client.base_url}v1/metadata/conversation",
        json={"properties": {"durationOfCallNum": {"displayName": "Call duration"}}},
        timeout=5,
    ).raise_for_status()

    names = kustomer.ensure_custom_fields([CustomFieldSpec("call_duration", "Call duration", CustomFieldType.INTEGER)])

    assert names == {"call_duration": "durationOfCallNum"}


def test_undefined_or_mistyped_custom_attribute_is_a_400(kustomer: KustomerProvider, contact_id: str) -> None:
    with pytest.raises(CrmRequestError) as undefined:
        kustomer.create_record(new_conversation(contact_id, custom_fields={"callIdStr": "c-1"}))
    kustomer.ensure_custom_fields([CustomFieldSpec("call_id", "Call ID")])
    with pytest.raises(CrmRequestError) as no_suffix:
        kustomer.create_record(new_conversation(contact_id, custom_fields={"callId": "c-1"}))

    assert undefined.value.status_code == no_suffix.value.status_code == 400
    assert undefined.value.body == {
        "errors": [
            {
                "code": "bad_request",
                "message": "Custom attribute callIdStr is not defined for this object",
                "meta": {"attribute": "custom.callIdStr"},
            }
        ]
    }


@pytest.mark.parametrize(
    ("name", "tag"),
    [
        ("Voice Inbound (IVR)", "Voice Inbound - IVR"),
        ("Messaging Inbound (Web Chat)", "Messaging Inbound - Web Chat"),
        ("Voice Outbound", "Voice Outbound"),
    ],
)
def test_session_type_tag_in_kustomer_style(kustomer: KustomerProvider, name: str, tag: str) -> None:
    assert kustomer.session_type_tag(name) == tag


def test_list_user_statuses(kustomer: KustomerProvider) -> None:
    statuses = kustomer.list_user_statuses()

    assert statuses[0] == CrmUserStatus(id=AVAILABLE, name="Available", status_type="available")
    assert [(s.name, s.status_type) for s in statuses] == [
        ("Available", "available"),
        ("Busy", "busy"),
        ("Email work", "unavailable"),
        ("Lunch", "unavailable"),
        ("Offline", "offline"),
    ]


def test_set_user_status_changes_the_active_work_session(
    kustomer_sandbox: SandboxServer, kustomer_api: requests.Session, kustomer: KustomerProvider
) -> None:
    with pytest.raises(CrmNotFound):
        kustomer.set_user_status(ANA, EMAIL_WORK)
    ended = control(kustomer_sandbox, "work-sessions", {"user": ANA, "status": AVAILABLE})
    control(kustomer_sandbox, f"work-sessions/{ended['id']}", {"active": False})
    session = control(kustomer_sandbox, "work-sessions", {"user": ANA, "status": AVAILABLE})

    kustomer.set_user_status(ANA, EMAIL_WORK)

    url = f"{kustomer_sandbox.base_url}/v1/routing/work-sessions/{session['id']}"
    attributes = kustomer_api.get(url, timeout=5).json()["data"]["attributes"]
    assert (attributes["status"], attributes["statusType"], attributes["active"]) == (EMAIL_WORK, "unavailable", True)
    # Going offline ends the session; then there is none to set.
    kustomer.set_user_status(ANA, OFFLINE)
    with pytest.raises(CrmNotFound):
        kustomer.set_user_status(ANA, AVAILABLE)


def test_set_user_status_with_an_unknown_status_is_a_400(
    kustomer_sandbox: SandboxServer, kustomer: KustomerProvider
) -> None:
    control(kustomer_sandbox, "work-sessions", {"user": BEN, "status": AVAILABLE})

    with pytest.raises(CrmRequestError) as error:
        kustomer.set_user_status(BEN, "5f0c0000000000000000ffff")

    assert error.value.status_code == 400


def test_register_webhook_returns_the_signing_token(kustomer_api: requests.Session, kustomer: KustomerProvider) -> None:
    token = kustomer.register_webhook("https://bridge.example.com/hooks/kustomer", ["kustomer.work-session.update"])

    (webhook,) = kustomer_api.get(f"{kustomer.client.base_url}v1/outbound-webhooks", timeout=5).json()["data"]
    assert len(token) == 64
    assert webhook["attributes"]["token"] == token
    assert webhook["attributes"]["events"] == ["kustomer.work-session.update"]
    with pytest.raises(CrmRequestError):
        kustomer.register_webhook("https://bridge.example.com/hooks/kustomer", ["kustomer.nothing.update"])


def test_missing_conversation_is_not_found(kustomer: KustomerProvider) -> None:
    with pytest.raises(CrmNotFound) as error:
        kustomer.get_record("5b1e8f2a0000000000000000")

    assert error.value.body == {
        "errors": [
            {
                "status": "404",
                "code": "not_found",
                "title": "Not Found",
                "detail": "Conversation 5b1e8f2a0000000000000000 not found",
                "source": {"parameter": "id"},
                "meta": {},
            }
        ]
    }


def test_wrong_api_key_is_an_auth_error(kustomer_sandbox: SandboxServer) -> None:
    with pytest.raises(CrmAuthError, match="401"):
        provider_for(kustomer_sandbox, token="wrong").test_connection()


def test_injected_5xx_is_transient_and_writes_nothing(
    kustomer_sandbox: SandboxServer, kustomer: KustomerProvider
) -> None:
    sandbox_config(kustomer_sandbox, fail_rate=1.0)

    with pytest.raises(CrmTransientError):
        kustomer.create_contact(name="Caller", phone="+14155550100")

    sandbox_config(kustomer_sandbox, fail_rate=0.0)
    assert kustomer.find_contacts(phone="+14155550100") == []


def test_slow_answer_past_the_timeout_is_transient(kustomer_sandbox: SandboxServer) -> None:
    sandbox_config(kustomer_sandbox, latency_ms=600)

    with pytest.raises(CrmTransientError, match="timed out"):
        provider_for(kustomer_sandbox, timeout=0.2).test_connection()


def test_429_waits_for_the_reset_header_and_closes_the_shared_gate(kustomer_sandbox: SandboxServer) -> None:
    gate = RedisRateGate(redis.Redis.from_url(TEST_BROKER_URL))
    kustomer = provider_for(kustomer_sandbox, gate=gate)
    sandbox_config(kustomer_sandbox, throttle_rate=1.0, retry_after_seconds=30)

    with pytest.raises(CrmRateLimited) as first:
        kustomer.test_connection()
    with pytest.raises(CrmRateLimited) as second:
        kustomer.test_connection()

    # No Retry-After: the wait comes from x-ratelimit-reset (an epoch second 30 s ahead).
    assert 28 <= first.value.retry_after <= 31
    # The gate keeps the pause in whole milliseconds: the second wait may round up by one.
    assert 0 < second.value.retry_after <= first.value.retry_after + 0.001
    assert sandbox_stats(kustomer_sandbox)["rate_limited"] == 1
    gate.open(kustomer_sandbox.base_url + "/")


@pytest.mark.parametrize(
    ("headers", "low", "high"),
    [
        ({"x-ratelimit-reset": "7"}, 7, 7),
        ({"x-ratelimit-reset": "{epoch+12}"}, 10, 12),
        ({"Retry-After": "3", "x-ratelimit-reset": "{epoch+12}"}, 3, 3),
        ({}, 10, 10),
    ],
)
def test_retry_after_reads_the_reset_as_epoch_or_seconds(headers: dict[str, str], low: float, high: float) -> None:
    response = requests.Response()
    response.status_code = 429
    epoch = int(time.time())
    response.headers.update({key: value.replace("{epoch+12}", str(epoch + 12)) for key, value in headers.items()})
    client = KustomerClient(
        ConnectionSettings(kind="kustomer", base_url="http://127.0.0.1:9", config={}, secrets={}), None
    )

    assert low <= client.retry_after(response) <= high


@pytest.mark.django_db
def test_kustomer_connection_tests_through_the_service(kustomer_connection: Any) -> None:
    assert connection_test(connection=kustomer_connection) is None


def test_records_compare_equal_across_calls(kustomer: KustomerProvider, contact_id: str) -> None:
    record = kustomer.create_record(new_conversation(contact_id))

    assert isinstance(record, Record)
    assert kustomer.list_contact_records(contact_id) == [record]


# Formats people type phones in; every one is the caller +14155550100.
STORED_FORMATS = ["(415) 555-0100", "415-555-0100", "+1 415 555 0100", "4155550100"]


def _customer(kustomer_sandbox: SandboxServer, **fields: Any) -> str:
    response = requests.post(
        f"{kustomer_sandbox.base_url}/v1/customers",
        json=fields,
        headers={"Authorization": "Bearer sandbox-api-key"},
        timeout=5,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


@pytest.mark.parametrize("stored", STORED_FORMATS)
def test_find_contacts_matches_a_phone_stored_in_any_format(
    kustomer: KustomerProvider, kustomer_sandbox: SandboxServer, stored: str
) -> None:
    customer_id = _customer(kustomer_sandbox, name="Typed by an agent", phones=[{"type": "work", "phone": stored}])

    found = kustomer.find_contacts(phone="+14155550100")

    assert [contact.id for contact in found] == [customer_id]
    assert sandbox_stats(kustomer_sandbox)["requests"]["POST /v1/customers/search"] == 1


def test_find_contacts_by_phone_exact_first_shared_phones_too_and_no_near_misses(
    kustomer: KustomerProvider, kustomer_sandbox: SandboxServer
) -> None:
    shared = _customer(kustomer_sandbox, name="Family line", sharedPhones=[{"phone": "415.555.0100"}])
    typed = _customer(kustomer_sandbox, name="Typed", phones=[{"phone": "(415) 555-0100"}])
    # Same last ten digits, another country: not the caller.
    _customer(kustomer_sandbox, name="Abroad", phones=[{"phone": "+44 4155 550100"}])

    found = kustomer.find_contacts(phone="+14155550100")
    assert {contact.id for contact in found} == {shared, typed}

    exact = kustomer.create_contact(name="Caller", phone="+14155550199")
    _customer(kustomer_sandbox, name="Same, typed", sharedPhones=[{"phone": "(415) 555-0199"}])
    searches = sandbox_stats(kustomer_sandbox)["requests"]["POST /v1/customers/search"]

    # Stored exactly as the caller's E.164: one identifier lookup, no search.
    assert kustomer.find_contacts(phone="+14155550199") == [exact]
    assert sandbox_stats(kustomer_sandbox)["requests"]["POST /v1/customers/search"] == searches


def test_a_done_conversation_carries_when_it_was_last_done_also_after_a_later_update(
    kustomer_sandbox: SandboxServer, kustomer: KustomerProvider, contact_id: str
) -> None:
    record = kustomer.create_record(new_conversation(contact_id, "c-1"))
    done = kustomer.update_record(record.id, RecordChanges(status="done"))
    assert done.closed_at is not None
    backdate = {"conversation": record.id, "lastDoneAt": "2026-11-11T09:00:00.000Z"}
    requests.post(f"{kustomer_sandbox.base_url}/__sandbox/backdate", json=backdate, timeout=5).raise_for_status()
    kustomer.update_record(record.id, RecordChanges(add_tags=("survey-sent",)))

    [listed] = kustomer.list_contact_records(contact_id)

    assert listed.closed_at == "2026-11-11T09:00:00.000Z"
    assert listed.updated_at is not None
    assert listed.updated_at > listed.closed_at
