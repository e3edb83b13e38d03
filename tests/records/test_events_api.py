"""POST /api/v1/events: auth, validation, duplicates, batches (P1, EVENTS.md)."""

import copy
import json
from typing import Any

import pytest
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from records.models import Event, Session
from tests.support import EXAMPLE_CALL

URL = "/api/v1/events"


def created(event_id: str = "e1", session_id: str = "s1", **data: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "session_id": session_id,
        "type": "session.created",
        "occurred_at": "2026-11-20T09:00:00Z",
        "data": {"channel": "voice", "session_type": "voice_inbound_ivr", "phone_number": "+14155550100", **data},
    }


pytestmark = pytest.mark.django_db


def test_events_api_accepts_the_example_batch(platform_client: APIClient) -> None:
    response = platform_client.post(URL, EXAMPLE_CALL, format="json")

    assert response.status_code == 202
    assert response.json() == {"accepted": 5, "duplicates": 0}
    session = Session.objects.get(external_id="c-1")
    assert list(session.events.values_list("event_id", flat=True)) == ["a1", "a2", "a3", "a4", "a5"]


def test_events_api_accepts_a_single_event(platform_client: APIClient) -> None:
    response = platform_client.post(URL, created(), format="json")

    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}


def test_events_api_repeated_event_is_a_duplicate_not_stored_twice(platform_client: APIClient) -> None:
    platform_client.post(URL, EXAMPLE_CALL, format="json")

    again = platform_client.post(URL, EXAMPLE_CALL, format="json")
    mixed = platform_client.post(URL, {"events": [created("a1", "c-1"), created("new", "c-1")]}, format="json")
    same_batch = platform_client.post(URL, {"events": [created("x", "s2"), created("x", "s2")]}, format="json")

    assert again.json() == {"accepted": 0, "duplicates": 5}
    assert mixed.json() == {"accepted": 1, "duplicates": 1}
    assert same_batch.json() == {"accepted": 1, "duplicates": 1}
    assert Event.objects.count() == 7


def test_events_api_keeps_extra_fields_and_normalises_phone_numbers(platform_client: APIClient) -> None:
    event = created(phone_number="+1 (415) 555-0100", vendor_field={"a": 1})
    event["platform_version"] = "7.2"

    platform_client.post(URL, event, format="json")

    stored = Event.objects.get(event_id="e1")
    assert stored.data["phone_number"] == "+14155550100"
    assert stored.data["vendor_field"] == {"a": 1}
    assert stored.extra == {"platform_version": "7.2"}


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Api-Key ", 401),
        ("Api-Key not-a-key", 401),
        ("Api-Key abcdefgh.wrongsecretwrongsecretwrongsecret", 401),
        ("Bearer something", 401),
    ],
)
def test_events_api_refuses_missing_or_wrong_keys(header: str | None, status: int) -> None:
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)

    response = client.post(URL, created(), format="json")

    assert response.status_code == status
    assert response.json()["message"]
    assert Event.objects.count() == 0


def test_events_api_refuses_a_revoked_key(api_key: str) -> None:
    APIKey.objects.update(revoked=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key}")

    response = client.post(URL, created(), format="json")

    assert response.status_code == 401
    assert response.json() == {"message": "Invalid or revoked API key."}


def test_events_api_malformed_json_is_a_400(platform_client: APIClient) -> None:
    response = platform_client.post(URL, '{"event_id": "e1", ', content_type="application/json")

    assert response.status_code == 400
    assert "JSON parse error" in response.json()["message"]


def invalid(mutate: Any) -> dict[str, Any]:
    event = created()
    mutate(event)
    return event


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (invalid(lambda e: e.pop("event_id")), "event_id"),
        (invalid(lambda e: e.pop("session_id")), "session_id"),
        (invalid(lambda e: e.update(type="session.exploded")), "type"),
        (invalid(lambda e: e.update(occurred_at="yesterday")), "occurred_at"),
        (invalid(lambda e: e.update(data="not an object")), "data"),
        (invalid(lambda e: e["data"].pop("channel")), "data.channel"),
        (invalid(lambda e: e["data"].update(channel="fax")), "data.channel"),
        (invalid(lambda e: e["data"].update(channel="chat")), "data.channel"),
        (invalid(lambda e: e["data"].update(session_type="voice_magic")), "data.session_type"),
        (invalid(lambda e: e["data"].update(phone_number="4155550100")), "data.phone_number"),
        (invalid(lambda e: e["data"].update(phone_number="+1 555")), "data.phone_number"),
        (invalid(lambda e: e["data"].update(queue={"path": "Support"})), "data.queue.path"),
        (invalid(lambda e: e["data"].update(customer={"email": "nope"})), "data.customer.email"),
        (invalid(lambda e: e.update(type="session.assigned", data={})), "data.agent"),
        (invalid(lambda e: e.update(type="csat.submitted", data={"rating": 9})), "data.rating"),
        (invalid(lambda e: e.update(type="recording.ready", data={"url": "ftp//x"})), "data.url"),
        (invalid(lambda e: e.update(type="voicemail.updated", data={"action": "deleted"})), "data.action"),
        (invalid(lambda e: e.update(type="session.ended", data={"call_duration": -1})), "data.call_duration"),
        (invalid(lambda e: e.update(type="smartaction.failed", data={"kind": "photo"})), "data.error"),
        (invalid(lambda e: e.update(occurred_at="0001-01-01T00:00:00+14:00")), "occurred_at"),
        (invalid(lambda e: e["data"].update(note="a\u0000b")), "data.note"),
        (invalid(lambda e: e["data"].update(custom_data={"list": ["ok", "\u0000"]})), "data.custom_data.list[1]"),
        (invalid(lambda e: e.update(platform_note="\u0000")), "platform_note"),
        ("just a string", "event"),
    ],
)
def test_events_api_invalid_event_names_its_field(platform_client: APIClient, event: Any, field: str) -> None:
    response = platform_client.post(URL, {"events": [event]}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "1 of 1 event(s) are invalid; nothing was stored."
    assert field in body["errors"][0]["fields"], body
    assert Event.objects.count() == 0
    assert Session.objects.count() == 0


def test_events_api_one_bad_event_rejects_the_whole_batch(platform_client: APIClient) -> None:
    events = copy.deepcopy(EXAMPLE_CALL["events"])
    events[3]["data"]["call_duration"] = "long"

    response = platform_client.post(URL, {"events": events}, format="json")

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert [(error["index"], error["event_id"]) for error in errors] == [(3, "a4")]
    assert errors[0]["fields"] == {"data.call_duration": ["A valid number is required."]}
    assert Event.objects.count() == 0
    assert Session.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"events": []}, "The batch is empty."),
        ({"events": {"event_id": "x"}}, "Expected a list of events."),
        ({"events": [created(f"e{i}", "s") for i in range(501)]}, "At most 500 events per batch; got 501."),
        ([created()], "Expected a JSON object."),
    ],
)
def test_events_api_refuses_bad_batches(platform_client: APIClient, body: Any, message: str) -> None:
    response = platform_client.post(URL, body, format="json")

    assert response.status_code == 400
    assert message in json.dumps(response.json())
    assert Event.objects.count() == 0


def test_events_api_accepts_a_full_batch_of_500(platform_client: APIClient) -> None:
    events = [created(f"e{i}", f"s{i % 50}") for i in range(500)]

    response = platform_client.post(URL, {"events": events}, format="json")

    assert response.json() == {"accepted": 500, "duplicates": 0}
    assert Session.objects.count() == 50


def test_ping_answers_with_the_key_name(platform_client: APIClient) -> None:
    response = platform_client.get("/api/v1/ping")

    assert response.status_code == 200
    assert response.json() == {"ok": True, "key": "test platform"}


def test_ping_without_key_is_401() -> None:
    response = APIClient().get("/api/v1/ping")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"


def test_events_api_names_every_invalid_event_of_a_batch(platform_client: APIClient) -> None:
    events = [created("ok", "s1"), created("bad1", "s1", channel="fax"), created("ok2"), {"type": "session.ended"}]

    response = platform_client.post(URL, {"events": events}, format="json")

    body = response.json()
    assert body["message"] == "2 of 4 event(s) are invalid; nothing was stored."
    assert [(error["index"], error["event_id"]) for error in body["errors"]] == [(1, "bad1"), (3, None)]
    assert set(body["errors"][1]["fields"]) == {"event_id", "session_id", "occurred_at"}
    assert Event.objects.count() == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_events_api_refuses_non_json_numbers(platform_client: APIClient, literal: str) -> None:
    body = (
        '{"event_id": "e1", "session_id": "s", "type": "session.ended", "occurred_at": "2026-11-20T09:00:00Z", '
        f'"data": {{"call_duration": {literal}}}}}'
    )

    response = platform_client.post(URL, body, content_type="application/json")

    assert response.status_code == 400
    assert Event.objects.count() == 0


def test_events_api_too_large_a_body_is_a_413_that_says_so(platform_client: APIClient, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    event = created(blob="x" * 20_000)

    response = platform_client.post(URL, event, format="json")

    assert response.status_code == 413
    assert response.json() == {"message": "The body is larger than 10000 bytes; send fewer events per call."}
    assert Event.objects.count() == 0
