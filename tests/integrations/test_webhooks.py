"""Kustomer webhook signatures and work-session envelopes: pure checks, no server."""

import json

import pytest

from integrations.webhooks import (
    WebhookRefused,
    kustomer_signature,
    parse_kustomer_event,
    parse_work_session_event,
    verify_kustomer_delivery,
)
from tests.agentstatus.support import work_session_event

SECRET = "s3cret"
BODY = b'{"id":"e1","name":"kustomer.work-session.update"}'


def test_signature_is_lowercase_hex_hmac_sha256_over_the_raw_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()

    assert kustomer_signature(SECRET, BODY) == expected
    assert expected == expected.lower()


def test_a_correctly_signed_delivery_is_accepted_whatever_case_the_hex_is_in() -> None:
    verify_kustomer_delivery(secret=SECRET, signature=kustomer_signature(SECRET, BODY), body=BODY)
    verify_kustomer_delivery(secret=SECRET, signature=kustomer_signature(SECRET, BODY).upper(), body=BODY)


@pytest.mark.parametrize(
    ("signature", "body", "message_part"),
    [
        (None, BODY, "missing"),
        ("", BODY, "missing"),
        # Forged: signed with another secret; tampered: the body changed after signing.
        (kustomer_signature("guess", BODY), BODY, "does not match"),
        (kustomer_signature(SECRET, BODY), BODY + b" ", "does not match"),
        # The signature the receiver used to expect (over "{timestamp}." + body) is not Kustomer's.
        (kustomer_signature(SECRET, b"1800000000." + BODY), BODY, "does not match"),
        ("not hex at all \u00e9", BODY, "does not match"),
    ],
)
def test_forged_or_missing_signatures_are_401_naming_the_header(
    signature: str | None, body: bytes, message_part: str
) -> None:
    with pytest.raises(WebhookRefused) as refused:
        verify_kustomer_delivery(secret=SECRET, signature=signature, body=body)

    assert (refused.value.status_code, refused.value.field) == (401, "X-Kustomer-Webhook-Signature")
    assert message_part in refused.value.message


def test_work_session_event_is_read_from_the_envelope() -> None:
    envelope = work_session_event(session_id="ws-7", user_id="u-1", status="st-lunch", active=False, event_id="e-1")
    envelope["changes"] = {"attributes": {"status": {"before": "st-available", "after": "st-lunch"}}}

    event = parse_work_session_event(*parse_kustomer_event(json.dumps(envelope).encode()))

    assert (event.event_id, event.session_id, event.user_id, event.status_id, event.active) == (
        "e-1",
        "ws-7",
        "u-1",
        "st-lunch",
        False,
    )
    assert event.status_changed is True
    assert event.signed_in is False
    assert event.updated_at is not None


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e["data"]["attributes"].pop("status"), "data.attributes.status"),
        (lambda e: e["data"]["relationships"].pop("user"), "data.relationships.user.data.id"),
        (lambda e: e["data"].update(id=""), "data.id"),
        (lambda e: e["data"]["attributes"].update(active="yes"), "data.attributes.active"),
        (lambda e: e["data"]["attributes"].update(updatedAt="noon"), "data.attributes.updatedAt"),
        (lambda e: e.update(data=[]), "data"),
    ],
)
def test_malformed_work_session_events_name_the_field(mutate: object, field: str) -> None:
    envelope = work_session_event()
    mutate(envelope)  # type: ignore[operator]

    with pytest.raises(WebhookRefused) as refused:
        parse_work_session_event(*parse_kustomer_event(json.dumps(envelope).encode()))

    assert (refused.value.status_code, refused.value.field) == (400, field)


@pytest.mark.parametrize(
    ("body", "field"), [(b"not json", "body"), (b"[]", "body"), (b'{"name": "x"}', "id"), (b'{"id": "e"}', "name")]
)
def test_malformed_envelopes_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(WebhookRefused) as refused:
        parse_kustomer_event(body)

    assert refused.value.field == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"id": "e\\u0000", "name": "kustomer.work-session.update"}', "id"),
        (b'{"id": "e", "name": "x", "data": {"attributes": {"status": "a\\u0000b"}}}', "data.attributes.status"),
        (b'{"id": "e", "name": "x", "data": {"k\\u0000": 1}}', "data.k\x00"),
        (b'{"id": "e", "name": "x", "data": {"list": ["ok", "\\ud800"]}}', "data.list[1]"),
    ],
)
def test_text_postgresql_cannot_store_is_refused_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(WebhookRefused) as refused:
        parse_kustomer_event(body)

    assert (refused.value.status_code, refused.value.field) == (400, field)
    assert "are not allowed" in refused.value.message
