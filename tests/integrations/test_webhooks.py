"""Kustomer webhook signatures and work-session envelopes: pure checks, no server."""

import json

import pytest

from integrations.webhooks import (
    MAX_DELIVERY_AGE_SECONDS,
    WebhookRefused,
    kustomer_signature,
    parse_kustomer_event,
    parse_work_session_event,
    verify_kustomer_delivery,
)
from tests.agentstatus.support import work_session_event

SECRET = "s3cret"
BODY = b'{"id":"e1","name":"kustomer.work-session.update"}'
NOW = 1_800_000_000.0


def signed(timestamp: int, body: bytes = BODY, secret: str = SECRET) -> str:
    return kustomer_signature(secret, str(timestamp), body)


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret", b"1800000000." + BODY, hashlib.sha256).hexdigest()

    assert kustomer_signature(SECRET, "1800000000", BODY) == expected


def test_a_fresh_correctly_signed_delivery_is_accepted() -> None:
    stamp = int(NOW) - 10

    assert verify_kustomer_delivery(
        secret=SECRET, timestamp=str(stamp), signature=signed(stamp), body=BODY, now=NOW
    ) == (stamp)


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "status", "field", "message_part"),
    [
        ("1800000000", None, BODY, 401, "X-Kustomer-Webhook-Signature", "missing"),
        (None, signed(int(NOW)), BODY, 400, "X-Kustomer-Webhook-Timestamp", "missing"),
        ("yesterday", "ab", BODY, 400, "X-Kustomer-Webhook-Timestamp", "unix seconds"),
        # Forged: signed with another secret; tampered: the body changed after signing.
        ("1800000000", signed(int(NOW), secret="guess"), BODY, 401, "X-Kustomer-Webhook-Signature", "does not match"),
        ("1800000000", signed(int(NOW)), BODY + b" ", 401, "X-Kustomer-Webhook-Signature", "does not match"),
        # A valid signature moved to another timestamp does not verify either.
        ("1800000001", signed(int(NOW)), BODY, 401, "X-Kustomer-Webhook-Signature", "does not match"),
        # Stale and future deliveries, correctly signed.
        (
            str(int(NOW) - MAX_DELIVERY_AGE_SECONDS - 1),
            signed(int(NOW) - MAX_DELIVERY_AGE_SECONDS - 1),
            BODY,
            400,
            "X-Kustomer-Webhook-Timestamp",
            "older than 300s",
        ),
        (
            str(int(NOW) + MAX_DELIVERY_AGE_SECONDS + 1),
            signed(int(NOW) + MAX_DELIVERY_AGE_SECONDS + 1),
            BODY,
            400,
            "X-Kustomer-Webhook-Timestamp",
            "in the future",
        ),
    ],
)
def test_bad_deliveries_are_refused_naming_the_header(
    timestamp: str | None, signature: str | None, body: bytes, status: int, field: str, message_part: str
) -> None:
    with pytest.raises(WebhookRefused) as refused:
        verify_kustomer_delivery(secret=SECRET, timestamp=timestamp, signature=signature, body=body, now=NOW)

    assert (refused.value.status_code, refused.value.field) == (status, field)
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
