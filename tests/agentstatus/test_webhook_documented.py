"""A delivery byte for byte as Kustomer documents one, over a real socket to the live server.

developer.kustomer.com/docs/events/delivery-and-retries shows the request as:

    POST /kustomer HTTP/1.1
    Host: hooks.example.com
    Content-Type: application/json
    X-Kustomer-Webhook-Event: kustomer.conversation.update
    X-Kustomer-Webhook-Signature: 3f1c9a…e07b
    X-Source: kustomer

    {"id":"6717c2b1e5b1f00012ab3511","name":"kustomer.conversation.update",…}

with the signature "lowercase hex HMAC-SHA256 of the raw body, keyed with the webhook's token" and
no timestamp header. The page elides the signature and the rest of the body, so only those are
filled in here: the signature computed as documented, the body completed with the envelope's
documented keys (`org`, `partition`, `data`, `changes`), compact as Kustomer sends it. The path and
Host are ours; Content-Length is what any HTTP/1.1 client adds.
"""

import hashlib
import hmac
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import pytest

from agentstatus.models import Agent, ProcessedWebhookEvent, StatusChange
from tests.agentstatus.support import WEBHOOK_PATH, WEBHOOK_SECRET

pytestmark = pytest.mark.django_db(transaction=True)

CONVERSATION_BODY = (
    b'{"id":"6717c2b1e5b1f00012ab3511","name":"kustomer.conversation.update","org":"5f0a0000000000000000aaaa",'
    b'"partition":"5f0a0000000000000000aaaa","data":{"type":"conversation","id":"6717c2b0e5b1f00012ab3500",'
    b'"attributes":{"status":"open","updatedAt":"2026-12-01T09:00:00.000Z"},"relationships":{},'
    b'"links":{"self":"/v1/conversations/6717c2b0e5b1f00012ab3500"}},'
    b'"changes":{"attributes":{"status":{"op":"replace","before":"snoozed","after":"open"}}}}'
)


def work_session_body(event_id: str, status: str, updated_at: str) -> bytes:
    envelope = {
        "id": event_id,
        "name": "kustomer.work-session.update",
        "org": "5f0a0000000000000000aaaa",
        "partition": "5f0a0000000000000000aaaa",
        "data": {
            "type": "work-session",
            "id": "6717c2b1e5b1f00012ab0001",
            "attributes": {"status": status, "active": True, "updatedAt": updated_at},
            "relationships": {"user": {"data": {"type": "user", "id": "u-ana"}}},
            "links": {"self": "/v1/routing/work-sessions/6717c2b1e5b1f00012ab0001"},
        },
        "changes": {"attributes": {"status": {"op": "replace", "before": "st-available", "after": status}}},
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def documented_request(host: str, event: str, body: bytes, token: str = WEBHOOK_SECRET) -> bytes:
    signature = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Content-Type: application/json\r\n"
        f"X-Kustomer-Webhook-Event: {event}\r\n"
        f"X-Kustomer-Webhook-Signature: {signature}\r\n"
        "X-Source: kustomer\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    ).encode() + body


def send(live_server: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
    url = urlsplit(live_server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(raw)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def test_the_documented_conversation_delivery_is_verified_and_acknowledged(ana: Agent, live_server: Any) -> None:
    host = urlsplit(live_server.url).netloc

    status, answer = send(live_server, documented_request(host, "kustomer.conversation.update", CONVERSATION_BODY))

    assert status == 200, answer
    assert answer["outcome"] == "ignored"
    assert ProcessedWebhookEvent.objects.filter(event_id="6717c2b1e5b1f00012ab3511").exists()


def test_a_work_session_delivery_in_the_documented_form_applies_once(ana: Agent, live_server: Any) -> None:
    host = urlsplit(live_server.url).netloc
    raw = documented_request(
        host,
        "kustomer.work-session.update",
        work_session_body("6717c2b1e5b1f00012ab3512", "st-lunch", "2026-12-01T09:00:00.000Z"),
    )

    status, answer = send(live_server, raw)
    again_status, again = send(live_server, raw)

    assert (status, answer["outcome"], answer["platform_status"]) == (200, "applied", "Away")
    assert (again_status, again["outcome"]) == (200, "duplicate")
    assert StatusChange.objects.filter(agent=ana, applied=True).count() == 1


def test_the_documented_delivery_with_another_token_is_401(ana: Agent, live_server: Any) -> None:
    host = urlsplit(live_server.url).netloc

    status, answer = send(
        live_server, documented_request(host, "kustomer.conversation.update", CONVERSATION_BODY, token="not-the-token")
    )

    assert status == 401
    assert "X-Kustomer-Webhook-Signature" in answer["errors"]
    assert not ProcessedWebhookEvent.objects.exists()
