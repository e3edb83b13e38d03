"""The sandbox Kustomer over loopback HTTP: Kustomer's shapes and errors, control endpoints, webhooks, faults.

No database: the suite's sandbox, reset before each test, read with plain `requests`.
"""

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from integrations.sandbox import KustomerSandbox, SandboxServer

ANA = "5f0a00000000000000000011"
AVAILABLE, BUSY, LUNCH, OFFLINE = (
    "5f0c00000000000000000001",
    "5f0c00000000000000000002",
    "5f0c00000000000000000004",
    "5f0c00000000000000000005",
)
ORG = "5a7d3f1c9b2e4a0012345678"


class Kustomer:
    def __init__(self, sandbox: SandboxServer, session: requests.Session) -> None:
        self.base_url = sandbox.base_url
        self.session = session

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base_url + path, json=body, timeout=5, **kwargs)

    def created(self, path: str, body: Any) -> dict[str, Any]:
        response = self.call("POST", path, body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()["data"]
        return data

    def control(self, path: str, body: Any) -> requests.Response:
        return requests.post(f"{self.base_url}/__sandbox/{path}", json=body, timeout=5)


@pytest.fixture
def sandbox(kustomer_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    yield kustomer_sandbox
    assert kustomer_sandbox.stats()["unexpected_errors"] == 0


@pytest.fixture
def kustomer(sandbox: SandboxServer, kustomer_api: requests.Session) -> Kustomer:
    return Kustomer(sandbox, kustomer_api)


def kustomer_sandbox_of(server: SandboxServer) -> KustomerSandbox:
    assert isinstance(server.sandbox, KustomerSandbox)
    return server.sandbox


# -- Receiver for webhook deliveries -----------------------------------------------------------------


class Receiver:
    """A loopback HTTP endpoint recording what it is sent; answers `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/kustomer"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


def verify(token: str, headers: dict[str, str], body: bytes) -> bool:
    """As Kustomer documents it: lowercase hex HMAC-SHA256 of the raw body, keyed with the token; no timestamp."""
    assert "x-kustomer-webhook-timestamp" not in headers
    expected = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["x-kustomer-webhook-signature"])


# -- Customers ---------------------------------------------------------------------------------------


def test_customer_create_and_lookups_in_kustomer_shapes(kustomer: Kustomer) -> None:
    customer = kustomer.created(
        "/v1/customers",
        {
            "name": "Jane Doe",
            "externalId": "crm-10427",
            "phones": [{"type": "mobile", "phone": "+15555550123"}],
            "emails": [{"type": "home", "email": "Jane@Example.com"}],
        },
    )

    assert customer["type"] == "customer"
    assert len(customer["id"]) == 24
    assert customer["links"] == {"self": f"/v1/customers/{customer['id']}"}
    assert customer["relationships"]["org"]["data"] == {"type": "org", "id": ORG}
    attributes = customer["attributes"]
    assert attributes["phones"] == [{"phone": "+15555550123", "type": "mobile", "verified": False}]
    assert attributes["emails"] == [{"email": "jane@example.com", "type": "home", "verified": False}]
    assert attributes["createdAt"].endswith("Z")
    for path in ("phone=%2B15555550123", "email=jane%40example.com", "externalId=crm-10427"):
        found = kustomer.call("GET", f"/v1/customers/{path}")
        assert found.status_code == 200
        assert found.json()["data"]["id"] == customer["id"]
    missing = kustomer.call("GET", "/v1/customers/phone=%2B19999999999")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["status"] == "404"


@pytest.mark.parametrize(
    ("second", "pointer"),
    [
        ({"phones": [{"type": "work", "phone": "+1 555 555 0123"}]}, "/phones/0/phone"),
        ({"emails": [{"type": "work", "email": "JANE@example.com"}]}, "/emails/0/email"),
        ({"externalId": "crm-1"}, "/externalId"),
    ],
)
def test_customer_identifiers_are_unique(kustomer: Kustomer, second: dict[str, Any], pointer: str) -> None:
    kustomer.created(
        "/v1/customers",
        {"externalId": "crm-1", "phones": [{"phone": "+15555550123"}], "emails": [{"email": "jane@example.com"}]},
    )

    response = kustomer.call("POST", "/v1/customers", {"name": "Other", **second})

    assert response.status_code == 409
    assert response.json()["errors"][0]["source"] == {"pointer": pointer}


def test_bad_bodies_are_400_in_the_usual_error_shape(kustomer: Kustomer) -> None:
    bad_type = kustomer.call("POST", "/v1/customers", {"phones": [{"type": "pager", "phone": "+15555550123"}]})
    bad_suffix = kustomer.call("POST", "/v1/customers", {"custom": {"loyaltyTier": "gold"}})
    bad_value = kustomer.call("POST", "/v1/customers", {"custom": {"ordersNum": "many"}})
    not_json = kustomer.call("POST", "/v1/customers", data=b"{", headers={"Content-Type": "application/json"})

    for response in (bad_type, bad_suffix, bad_value, not_json):
        assert response.status_code == 400
    assert bad_suffix.json()["errors"][0]["code"] == "bad_request"
    assert bad_suffix.json()["errors"][0]["meta"] == {"attribute": "custom.loyaltyTier"}
    assert kustomer.call("POST", "/v1/customers", {"custom": {"ordersNum": 3, "vipBool": True}}).status_code == 201


# -- Conversations, notes, attachments, metadata -----------------------------------------------------


@pytest.fixture
def customer_id(kustomer: Kustomer) -> str:
    return str(kustomer.created("/v1/customers", {"name": "Caller"})["id"])


def test_conversation_lifecycle(kustomer: Kustomer, customer_id: str) -> None:
    created = kustomer.created(
        f"/v1/customers/{customer_id}/conversations",
        {"name": "Inbound call", "externalId": "call-42", "tags": ["phone"], "assignedUsers": [ANA]},
    )
    conversation_id = created["id"]

    assert created["type"] == "conversation"
    assert created["attributes"]["status"] == "open"
    assert created["relationships"]["customer"]["data"] == {"type": "customer", "id": customer_id}
    assert kustomer.call("GET", "/v1/conversations/externalId=call-42").json()["data"]["id"] == conversation_id
    patched = kustomer.call("PATCH", f"/v1/conversations/{conversation_id}", {"status": "snoozed"})
    assert patched.status_code == 200
    assert patched.json()["data"]["attributes"]["status"] == "snoozed"
    tagged = kustomer.call("POST", f"/v1/conversations/{conversation_id}/tags", {"tags": ["vip", "phone"]})
    assert tagged.json()["data"]["attributes"]["tags"] == ["phone", "vip"]
    stale = kustomer.call("PATCH", f"/v1/conversations/{conversation_id}", {"rev": 1, "status": "done"})
    assert stale.status_code == 409
    listed = kustomer.call("GET", f"/v1/customers/{customer_id}/conversations").json()
    assert listed["meta"]["total"] == 1
    assert listed["links"]["next"] is None
    assert kustomer.call("DELETE", f"/v1/conversations/{conversation_id}").status_code == 204
    assert kustomer.call("GET", f"/v1/conversations/{conversation_id}").status_code == 404


def test_conversation_validation(kustomer: Kustomer, customer_id: str) -> None:
    path = f"/v1/customers/{customer_id}/conversations"
    kustomer.created(path, {"externalId": "call-1"})

    assert kustomer.call("POST", path, {"externalId": "call-1"}).status_code == 409
    assert kustomer.call("POST", path, {"status": "snoozed"}).status_code == 400
    assert kustomer.call("POST", path, {"assignedUsers": ["nobody"]}).status_code == 400
    assert kustomer.call("POST", path, {"custom": {"callIdStr": "x"}}).status_code == 400
    assert kustomer.call("POST", "/v1/customers/5a821b940000000000000000/conversations", {}).status_code == 404
    assert kustomer.call("POST", "/v1/conversations", {"name": "no customer"}).status_code == 400


def test_metadata_defines_typed_attributes(kustomer: Kustomer, customer_id: str) -> None:
    defined = kustomer.call(
        "PUT", "/v1/metadata/conversation", {"properties": {"callDurationNum": {}, "callIdStr": {"displayName": "ID"}}}
    )
    assert defined.status_code == 200
    properties = defined.json()["data"]["attributes"]["properties"]

    assert properties["callDurationNum"] == {"type": "number", "displayName": "Call Duration"}
    assert properties["callIdStr"] == {"type": "string", "displayName": "ID"}
    assert kustomer.call("PUT", "/v1/metadata/conversation", {"properties": {"callDuration": {}}}).status_code == 400
    assert kustomer.call("GET", "/v1/metadata/nothing").status_code == 404
    path = f"/v1/customers/{customer_id}/conversations"
    assert kustomer.call("POST", path, {"custom": {"callDurationNum": 12}}).status_code == 201
    assert kustomer.call("POST", path, {"custom": {"callDurationNum": "12"}}).status_code == 400


def test_note_with_an_uploaded_attachment(kustomer: Kustomer, customer_id: str) -> None:
    conversation = kustomer.created(f"/v1/customers/{customer_id}/conversations", {})
    described = kustomer.call(
        "POST", "/v1/attachments", {"name": "a.txt", "contentType": "text/plain", "contentLength": 3}
    )
    assert described.status_code == 201
    attachment_id, upload = described.json()["data"]["id"], described.json()["meta"]["upload"]
    note_path = f"/v1/conversations/{conversation['id']}/notes"
    reference = {"_id": attachment_id, "name": "a.txt", "contentType": "text/plain", "contentLength": 3}

    before_upload = kustomer.call("POST", note_path, {"body": "x", "attachments": [reference]})
    wrong_size = requests.post(upload["url"], data=upload["fields"], files={"file": ("a.txt", b"toolong")}, timeout=5)
    uploaded = requests.post(upload["url"], data=upload["fields"], files={"file": ("a.txt", b"abc")}, timeout=5)
    note = kustomer.created(note_path, {"body": "Transcript", "attachments": [reference]})

    assert before_upload.status_code == 400
    assert wrong_size.status_code == 400
    assert uploaded.status_code == 204
    assert note["type"] == "note"
    assert note["attributes"]["attachments"] == [reference]
    assert note["relationships"]["conversation"]["data"]["id"] == conversation["id"]
    listed = kustomer.call("GET", note_path).json()["data"]
    assert [item["id"] for item in listed] == [note["id"]]
    related = kustomer.call("GET", f"/v1/attachments/{attachment_id}").json()["data"]["links"]["related"]
    assert requests.get(related, timeout=5).content == b"abc"
    assert kustomer.call("POST", note_path, {"body": ""}).status_code == 400


# -- Users, routing, webhooks ------------------------------------------------------------------------


def test_users_teams_and_statuses(kustomer: Kustomer) -> None:
    users = kustomer.call("GET", "/v1/users", params={"pageSize": 2}).json()
    teams = kustomer.call("GET", f"/v1/users/{ANA}/teams").json()["data"]
    statuses = kustomer.call("GET", "/v1/routing/statuses").json()["data"]

    assert users["meta"] == {"pageSize": 2, "page": 1, "total": 4, "totalPages": 2}
    assert users["links"]["next"] == "/v1/users?page=2&pageSize=2"
    assert [team["attributes"]["name"] for team in teams] == ["Voice Support"]
    assert [(s["attributes"]["name"], s["attributes"]["statusType"], s["attributes"]["system"]) for s in statuses] == [
        ("Available", "available", True),
        ("Busy", "busy", True),
        ("Email work", "unavailable", False),
        ("Lunch", "unavailable", False),
        ("Offline", "offline", True),
    ]
    assert kustomer.call("GET", "/v1/users/current").json()["data"]["attributes"]["userType"] == "machine"
    assert kustomer.call("GET", "/v1/users", params={"pageSize": 0}).status_code == 400


def test_work_session_control_and_api(kustomer: Kustomer) -> None:
    signed_in = kustomer.control("work-sessions", {"user": ANA, "status": AVAILABLE})
    assert signed_in.status_code == 201
    session = signed_in.json()["data"]
    session_id = session["id"]

    assert session["type"] == "work-session"
    assert session["relationships"] == {"user": {"data": {"type": "user", "id": ANA}}}
    assert set(session["attributes"]) == {"status", "statusType", "active", "signedInAt", "signedOutAt", "updatedAt"}
    assert (session["attributes"]["active"], session["attributes"]["signedOutAt"]) == (True, None)
    changed = kustomer.control(f"work-sessions/{session_id}", {"status": LUNCH}).json()["data"]["attributes"]
    assert (changed["status"], changed["statusType"]) == (LUNCH, "unavailable")
    put = kustomer.call("PUT", f"/v1/routing/work-sessions/{session_id}", {"status": BUSY})
    assert put.status_code == 200
    assert put.json()["data"]["attributes"]["statusType"] == "busy"
    active = kustomer.call("GET", "/v1/routing/work-sessions", params={"user": ANA, "active": "true"}).json()
    assert [item["id"] for item in active["data"]] == [session_id]
    signed_out = kustomer.control(f"work-sessions/{session_id}", {"active": False}).json()["data"]["attributes"]
    assert signed_out["active"] is False
    assert signed_out["signedOutAt"] is not None
    assert kustomer.call("PUT", f"/v1/routing/work-sessions/{session_id}", {"status": AVAILABLE}).status_code == 409
    assert (
        kustomer.call("GET", f"/v1/routing/users/{ANA}/work-sessions", params={"active": "true"}).json()["data"] == []
    )
    assert kustomer.control("work-sessions", {"user": ANA, "status": OFFLINE}).status_code == 400
    assert kustomer.control("work-sessions", {"user": "nobody", "status": AVAILABLE}).status_code == 400
    assert kustomer.control("work-sessions/5e4b1c5d0000000000000000", {"status": BUSY}).status_code == 404


def test_work_session_events_are_delivered_signed(
    sandbox: SandboxServer, kustomer: Kustomer, receiver: Receiver
) -> None:
    # given a webhook subscribed to work-session events (and one that is not)
    hook = kustomer.created(
        "/v1/outbound-webhooks",
        {
            "name": "Status sync",
            "url": receiver.url,
            "events": ["kustomer.work-session.create", "kustomer.work-session.update"],
            "headers": [{"name": "X-Source", "value": "kustomer"}],
        },
    )
    kustomer.created("/v1/outbound-webhooks", {"name": "Other", "url": receiver.url, "events": ["kustomer.tag.create"]})
    token = hook["attributes"]["token"]

    # when an agent signs in, changes status, is set through the API, then goes offline
    session_id = kustomer.control("work-sessions", {"user": ANA, "status": AVAILABLE}).json()["data"]["id"]
    kustomer.control(f"work-sessions/{session_id}", {"status": LUNCH})
    kustomer.call("PUT", f"/v1/routing/work-sessions/{session_id}", {"status": OFFLINE})
    assert kustomer_sandbox_of(sandbox).wait_for_deliveries(timeout=10)

    # then three signed deliveries arrived, in order
    assert len(receiver.received) == 3
    envelopes = [json.loads(body) for _, body in receiver.received]
    assert [envelope["name"] for envelope in envelopes] == [
        "kustomer.work-session.create",
        "kustomer.work-session.update",
        "kustomer.work-session.update",
    ]
    for (headers, body), envelope in zip(receiver.received, envelopes, strict=True):
        assert verify(token, headers, body)
        assert headers["x-kustomer-webhook-event"] == envelope["name"]
        assert headers["content-type"] == "application/json"
        assert headers["x-source"] == "kustomer"
        # Kustomer sends no timestamp header; the body is compact JSON, as its documented example shows.
        assert "x-kustomer-webhook-timestamp" not in headers
        assert body == json.dumps(json.loads(body), separators=(",", ":")).encode()
        assert (envelope["org"], envelope["partition"]) == (ORG, ORG)
        assert envelope["data"]["id"] == session_id
    assert len({envelope["id"] for envelope in envelopes}) == 3
    assert envelopes[0]["changes"] is None
    assert envelopes[1]["changes"]["attributes"]["status"] == {"op": "replace", "before": AVAILABLE, "after": LUNCH}
    assert envelopes[2]["changes"]["attributes"]["active"] == {"op": "replace", "before": True, "after": False}
    assert envelopes[2]["data"]["attributes"]["statusType"] == "offline"
    # A tampered body does not verify.
    headers, body = receiver.received[0]
    assert not verify(token, headers, body.replace(b"create", b"update"))
    stats = sandbox.stats()["webhook_deliveries"]
    assert stats == {
        "by_event": {"kustomer.work-session.create": 1, "kustomer.work-session.update": 2},
        "failed": 0,
        "pending": 0,
    }


def test_failed_deliveries_are_counted_and_not_retried(
    sandbox: SandboxServer, kustomer: Kustomer, receiver: Receiver
) -> None:
    receiver.status = 500
    kustomer.created(
        "/v1/outbound-webhooks", {"name": "h", "url": receiver.url, "events": ["kustomer.work-session.create"]}
    )
    kustomer.created(
        "/v1/outbound-webhooks",
        {"name": "gone", "url": "http://127.0.0.1:9/nothing", "events": ["kustomer.work-session.create"]},
    )

    kustomer.control("work-sessions", {"user": ANA, "status": AVAILABLE})
    assert kustomer_sandbox_of(sandbox).wait_for_deliveries(timeout=10)

    assert len(receiver.received) == 1
    assert sandbox.stats()["webhook_deliveries"]["failed"] == 2


def test_webhook_validation(kustomer: Kustomer) -> None:
    base = {"name": "h", "url": "https://hooks.example.com/k", "events": ["kustomer.conversation.update"]}

    assert kustomer.call("POST", "/v1/outbound-webhooks", {**base, "url": "ftp://x"}).status_code == 400
    assert kustomer.call("POST", "/v1/outbound-webhooks", {**base, "events": []}).status_code == 400
    assert kustomer.call("POST", "/v1/outbound-webhooks", {**base, "events": ["kustomer.x"]}).status_code == 400
    created = kustomer.created("/v1/outbound-webhooks", base)
    assert kustomer.call("DELETE", f"/v1/outbound-webhooks/{created['id']}").status_code == 204
    events = kustomer.call("GET", "/v1/outbound-webhooks/events").json()["data"]
    assert {"kustomer.work-session.update", "kustomer.conversation.create"} <= {event["id"] for event in events}


# -- Auth, rate limits, faults, control --------------------------------------------------------------


def test_requests_without_the_api_key_are_401(sandbox: SandboxServer) -> None:
    missing = requests.get(f"{sandbox.base_url}/v1/users", timeout=5)
    wrong = requests.get(f"{sandbox.base_url}/v1/users", headers={"Authorization": "Bearer nope"}, timeout=5)

    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["errors"][0]["code"] == "unauthorized"


def test_rate_limit_headers_and_429(sandbox: SandboxServer, kustomer: Kustomer) -> None:
    first = kustomer.call("GET", "/v1/users")
    assert first.headers["x-ratelimit-limit"] == "1000"
    assert int(first.headers["x-ratelimit-reset"]) > time.time()
    kustomer.control("config", {"rate_limit_per_minute": 2})
    kustomer.call("GET", "/v1/users")

    limited = kustomer.call("GET", "/v1/users")

    assert limited.status_code == 429
    assert "Retry-After" not in limited.headers
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert 0 < int(limited.headers["x-ratelimit-reset"]) - time.time() <= 61
    assert limited.json()["errors"][0]["status"] == "429"
    assert sandbox.stats()["rate_limited"] == 1


def test_fault_injection_and_control_endpoints(sandbox: SandboxServer, kustomer: Kustomer) -> None:
    kustomer.control("config", {"fail_rate": 1.0})
    failed = kustomer.call("POST", "/v1/customers", {"name": "x"})
    kustomer.control("config", {"fail_rate": 0.0, "lost_response_rate": 1.0})
    lost = kustomer.call("POST", "/v1/customers", {"name": "y", "externalId": "y"})
    kustomer.control("config", {"lost_response_rate": 0.0})

    assert failed.status_code == 503
    assert failed.json()["errors"][0]["status"] == "503"
    # The lost answer's write was applied.
    assert lost.status_code == 500
    assert kustomer.call("GET", "/v1/customers/externalId=y").status_code == 200
    stats = sandbox.stats()
    assert (stats["injected_failures"], stats["lost_responses"]) == (1, 1)
    assert stats["requests"]["GET /v1/customers/externalId={externalId}"] == 1
    assert requests.post(f"{sandbox.base_url}/__sandbox/reset", timeout=5).json() == {"reset": True}
    assert kustomer.call("GET", "/v1/customers/externalId=y").status_code == 404
    assert requests.get(f"{sandbox.base_url}/__sandbox/nothing", timeout=5).status_code == 404
