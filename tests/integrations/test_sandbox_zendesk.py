"""The sandbox Zendesk over loopback HTTP: Zendesk's shapes and errors, the control endpoints, injected faults.

No database: a module-wide sandbox, reset before each test, read with plain `requests`.
"""

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from integrations.sandbox import SandboxServer, start_sandbox

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "integrations" / "sandbox" / "fixtures" / "zendesk_demo.json"
AUTH = ("admin@example.com/token", "sandbox-token")
FIXTURE_USERS = 6
ANA, BEN = 360000000001, 360000000002
CALLER_PHONE = "+14155550101"


def keys(names: str) -> set[str]:
    return set(names.split())


# crm-api-shapes.md §1.3 and §1.4.
USER_KEYS = keys(
    "id url name email created_at updated_at time_zone iana_time_zone phone shared_phone_number photo locale_id "
    "locale organization_id role verified external_id tags alias active shared shared_agent last_login_at "
    "two_factor_auth_enabled signature details notes role_type custom_role_id moderator ticket_restriction "
    "only_private_comments restricted_agent suspended default_group_id report_csv user_fields"
)
TICKET_KEYS = keys(
    "url id external_id via created_at updated_at type subject raw_subject description priority status recipient "
    "requester_id submitter_id assignee_id organization_id group_id collaborator_ids follower_ids email_cc_ids "
    "forum_topic_id problem_id has_incidents is_public due_at tags custom_fields satisfaction_rating "
    "sharing_agreement_ids custom_status_id fields followup_ids ticket_form_id brand_id allow_channelback "
    "allow_attachments from_messaging_channel"
)
COMMENT_KEYS = keys("id type body html_body plain_body public author_id attachments audit_id via metadata created_at")
DEFAULT_CONFIG: dict[str, Any] = {
    "rate_limit_per_minute": None,
    "fail_rate": 0.0,
    "fail_next": 0,
    "fail_next_writes": 0,
    "throttle_rate": 0.0,
    "retry_after_seconds": 1,
    "lost_response_rate": 0.0,
    "latency_ms": 0,
    "seed": 0,
    "endpoint_rate_limits": {},
}
ALREADY_USED = "is already being used by another user"
NOT_FOUND = {"error": "RecordNotFound", "description": "Not found"}


class Zendesk:
    """A client of the sandbox's Zendesk API, authenticated as an integration would be."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.auth = AUTH

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=5, **kwargs)

    def post(self, path: str, body: Any) -> requests.Response:
        return self.session.post(self.base_url + path, json=body, timeout=5)

    def put(self, path: str, body: Any) -> requests.Response:
        return self.session.put(self.base_url + path, json=body, timeout=5)

    def create_user(self, **user: Any) -> dict[str, Any]:
        response = self.post("/api/v2/users.json", {"user": user})
        assert response.status_code == 201, response.text
        user_json: dict[str, Any] = response.json()["user"]
        return user_json

    def create_ticket(self, **ticket: Any) -> dict[str, Any]:
        response = self.post("/api/v2/tickets.json", {"ticket": ticket})
        assert response.status_code == 201, response.text
        ticket_json: dict[str, Any] = response.json()["ticket"]
        return ticket_json

    def create_ticket_field(self, title: str, field_type: str = "text") -> int:
        response = self.post("/api/v2/ticket_fields.json", {"ticket_field": {"type": field_type, "title": title}})
        assert response.status_code == 201, response.text
        field_id: int = response.json()["ticket_field"]["id"]
        return field_id

    def search_users(self, query: str) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = self.get("/api/v2/users/search.json", params={"query": query}).json()["users"]
        return users

    def comments(self, ticket_id: int) -> list[dict[str, Any]]:
        comments: list[dict[str, Any]] = self.get(f"/api/v2/tickets/{ticket_id}/comments.json").json()["comments"]
        return comments


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    server = start_sandbox("zendesk", fixture=FIXTURE)
    yield server
    server.stop()


@pytest.fixture
def sandbox(server: SandboxServer) -> Iterator[SandboxServer]:
    server.reset()
    yield server
    assert server.stats()["unexpected_errors"] == 0


@pytest.fixture
def zendesk(sandbox: SandboxServer) -> Zendesk:
    return Zendesk(sandbox.base_url)


def control(sandbox: SandboxServer, action: str, body: Any = None) -> requests.Response:
    if action == "stats":
        return requests.get(f"{sandbox.base_url}/__sandbox/stats", timeout=5)
    return requests.post(f"{sandbox.base_url}/__sandbox/{action}", json=body, timeout=5)


def configure(sandbox: SandboxServer, **config: Any) -> None:
    control(sandbox, "config", config).raise_for_status()


def new_ticket(zendesk: Zendesk, **fields: Any) -> dict[str, Any]:
    requester = zendesk.search_users(f"phone:{CALLER_PHONE}")[0]
    ticket = {"subject": "IVR Call", "comment": {"body": "Call ID: c-1", "public": False}}
    return zendesk.create_ticket(**(ticket | {"requester_id": requester["id"]} | fields))


# -- Auth ----------------------------------------------------------------------------------------


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": basic("admin@example.com:password")},
        {"Authorization": basic("admin@example.com/token:")},
        {"Authorization": "Basic not*base64"},
        {"Authorization": "Bearer "},
        {"Authorization": "Token abc"},
    ],
)
def test_auth_missing_or_malformed_credentials_answer_401(sandbox: SandboxServer, headers: dict[str, str]) -> None:
    response = requests.post(
        f"{sandbox.base_url}/api/v2/users.json", json={"user": {"name": "X"}}, headers=headers, timeout=5
    )

    assert response.status_code == 401
    assert response.json() == {"error": "Couldn't authenticate you"}
    assert Zendesk(sandbox.base_url).get("/api/v2/users.json").json()["count"] == FIXTURE_USERS


@pytest.mark.parametrize("authorization", [basic("someone@example.org/token:abc"), "Bearer oauth-token"])
def test_auth_accepts_any_well_formed_credentials(sandbox: SandboxServer, authorization: str) -> None:
    response = requests.get(
        f"{sandbox.base_url}/api/v2/users.json", headers={"Authorization": authorization}, timeout=5
    )

    assert response.status_code == 200


# -- Users ---------------------------------------------------------------------------------------


def test_users_create_answers_201_with_location_and_the_full_user(zendesk: Zendesk) -> None:
    response = zendesk.post("/api/v2/users.json", {"user": {"name": "Caller", "phone": "+1 415-555-0199"}})

    assert response.status_code == 201
    user = response.json()["user"]
    assert set(user) == USER_KEYS
    assert response.headers["Location"] == user["url"] == f"{zendesk.base_url}/api/v2/users/{user['id']}.json"
    assert (user["name"], user["phone"], user["role"], user["email"]) == ("Caller", "+1 415-555-0199", "end-user", None)
    assert user["id"] == ANA + FIXTURE_USERS
    assert user["created_at"].endswith("Z")
    time.strptime(user["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert zendesk.get(f"/api/v2/users/{user['id']}").json() == {"user": user}


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("phone:*4155550199", True),
        ("phone:*14155550199", True),
        ("phone:14155550199", True),
        ("phone:+1-415-555-0199", True),
        ("role:end-user phone:*4155550199", True),
        ("phone:4155550199", False),
        ("role:agent phone:*4155550199", False),
        ("phone:*4155550100", False),
    ],
)
def test_users_search_matches_phone_by_digits(zendesk: Zendesk, query: str, found: bool) -> None:
    caller = zendesk.create_user(name="Caller", phone="+1 (415) 555-0199")

    users = zendesk.search_users(query)

    assert [user["id"] for user in users] == ([caller["id"]] if found else [])


def test_users_search_by_email_is_case_insensitive_and_by_external_id(zendesk: Zendesk) -> None:
    caller = zendesk.create_user(name="Caller", email="Caller@Example.net", external_id="crm-7")

    body = zendesk.get("/api/v2/users/search.json", params={"query": "email:CALLER@example.NET"}).json()

    assert caller["email"] == "caller@example.net"
    assert body == {"users": [caller], "next_page": None, "previous_page": None, "count": 1}
    assert [u["name"] for u in zendesk.search_users("email:ana@example.com")] == ["Ana Agent"]
    assert [u["id"] for u in zendesk.get("/api/v2/users/search", params={"external_id": "crm-7"}).json()["users"]] == [
        caller["id"]
    ]
    assert zendesk.search_users("email:nobody@example.com") == []


@pytest.mark.parametrize(
    ("user", "field", "description"),
    [
        ({"email": "x@example.net"}, "name", "Name: is too short (minimum one character)"),
        ({"name": "D", "email": "ANA@example.com"}, "email", f"Email: ana@example.com {ALREADY_USED}"),
        ({"name": "D", "phone": "+1 415 555 0101"}, "phone", f"Phone: +1 415 555 0101 {ALREADY_USED}"),
        ({"name": "X", "email": "not-an-email"}, "email", "Email: not-an-email is not properly formatted"),
        ({"name": "X", "role": "boss"}, "role", "Role: boss is not valid"),
    ],
)  # fmt: skip
def test_users_create_invalid_user_is_422_record_invalid(
    zendesk: Zendesk, user: dict[str, Any], field: str, description: str
) -> None:
    response = zendesk.post("/api/v2/users.json", {"user": user})

    assert response.status_code == 422
    body = response.json()
    assert (body["error"], body["description"]) == ("RecordInvalid", "Record validation errors")
    assert [detail["description"] for detail in body["details"][field]] == [description]
    assert zendesk.get("/api/v2/users.json").json()["count"] == FIXTURE_USERS


def test_search_global_finds_users_by_phone_with_result_type(zendesk: Zendesk) -> None:
    body = zendesk.get("/api/v2/search.json", params={"query": "role:end-user phone:*4155550101"}).json()

    assert list(body) == ["results", "facets", "next_page", "previous_page", "count"]
    assert body["count"] == 1
    [result] = body["results"]
    assert (result["phone"], result["result_type"]) == (CALLER_PHONE, "user")
    assert set(result) == USER_KEYS | {"result_type"}


def test_users_list_pages_with_cursor_and_filters_by_role(zendesk: Zendesk) -> None:
    first = zendesk.get("/api/v2/users.json", params={"page[size]": 4}).json()
    second = requests.get(first["links"]["next"], auth=AUTH, timeout=5).json()

    assert len(first["users"]) == 4
    assert first["meta"]["has_more"] is True
    assert [u["id"] for u in first["users"] + second["users"]] == list(range(ANA, ANA + FIXTURE_USERS))
    assert second["meta"]["has_more"] is False
    back = requests.get(second["links"]["prev"], auth=AUTH, timeout=5).json()
    assert [u["id"] for u in back["users"]] == [u["id"] for u in first["users"]]
    agents = zendesk.get("/api/v2/users.json", params={"role": "agent", "page[size]": 100}).json()["users"]
    assert [u["name"] for u in agents] == ["Ana Agent", "Ben Agent", "Carla Agent"]
    either = zendesk.get("/api/v2/users.json", params=[("role[]", "agent"), ("role[]", "admin")]).json()
    assert either["count"] == 3
    too_big = zendesk.get("/api/v2/users.json", params={"page[size]": 101})
    assert too_big.status_code == 400
    assert too_big.json()["error"] == "InvalidPaginationParameter"


def test_users_concurrent_creates_get_distinct_ids(zendesk: Zendesk) -> None:
    ids: list[int] = []

    def create(index: int) -> None:
        ids.append(Zendesk(zendesk.base_url).create_user(name=f"Caller {index}", phone=f"+1415555{index:04d}")["id"])

    threads = [threading.Thread(target=create, args=(index,)) for index in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(ids) == list(range(ANA + FIXTURE_USERS, ANA + FIXTURE_USERS + 20))


# -- Tickets -------------------------------------------------------------------------------------


def test_tickets_create_answers_201_with_location_ticket_and_audit(zendesk: Zendesk) -> None:
    requester = zendesk.search_users(f"phone:{CALLER_PHONE}")[0]
    field_id = zendesk.create_ticket_field("Call ID")
    body = {
        "ticket": {
            "subject": "IVR Call from +14155550101",
            "comment": {"body": "Call ID: c-1", "public": False},
            "requester_id": requester["id"],
            "assignee_id": ANA,
            "priority": "normal",
            "type": "incident",
            "tags": ["Voice Inbound", "vip", "VIP"],
            "custom_fields": [{"id": field_id, "value": "abc"}],
            "external_id": "c-1",
        }
    }

    response = zendesk.post("/api/v2/tickets.json", body)

    assert response.status_code == 201
    ticket, audit = response.json()["ticket"], response.json()["audit"]
    assert set(ticket) == TICKET_KEYS
    assert response.headers["Location"] == ticket["url"] == f"{zendesk.base_url}/api/v2/tickets/{ticket['id']}.json"
    assert ticket["id"] == 1
    assert ticket["status"] == "open"  # an assigned ticket is never "new"
    assert ticket["description"] == "Call ID: c-1"
    assert ticket["tags"] == ["voice_inbound", "vip"]
    assert ticket["custom_fields"] == ticket["fields"] == [{"id": field_id, "value": "abc"}]
    assert (ticket["requester_id"], ticket["assignee_id"], ticket["is_public"]) == (requester["id"], ANA, False)
    assert ticket["via"]["channel"] == "api"
    assert (audit["ticket_id"], audit["via"]["channel"]) == (ticket["id"], "api")
    comment_event, *create_events = audit["events"]
    assert comment_event["type"] == "Comment"
    assert (comment_event["body"], comment_event["public"]) == ("Call ID: c-1", False)
    assert comment_event["audit_id"] == audit["id"]
    assert {event["type"] for event in create_events} == {"Create"}
    assert {event["field_name"]: event["value"] for event in create_events}["status"] == "open"
    assert zendesk.get(f"/api/v2/tickets/{ticket['id']}.json").json() == {"ticket": ticket}


def test_tickets_create_defaults_to_new_and_takes_description_as_first_comment(zendesk: Zendesk) -> None:
    ticket = new_ticket(zendesk, comment=None, description="Left a voicemail")

    assert ticket["status"] == "new"
    assert ticket["is_public"] is True
    assert [(c["body"], c["public"]) for c in zendesk.comments(ticket["id"])] == [("Left a voicemail", True)]


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"requester_id": 42}, "requester"),
        ({"assignee_id": ANA + 3}, "assignee_id"),  # an end-user
        ({"assignee_id": 42}, "assignee_id"),
        ({"comment": {"body": "  "}}, "description"),
        ({"status": "archived"}, "status"),
        ({"priority": "asap"}, "priority"),
    ],
)
def test_tickets_create_invalid_ticket_is_422_and_writes_nothing(
    zendesk: Zendesk, fields: dict[str, Any], detail: str
) -> None:
    requester = zendesk.search_users(f"phone:{CALLER_PHONE}")[0]
    ticket = {"subject": "S", "comment": {"body": "B"}, "requester_id": requester["id"]} | fields

    response = zendesk.post("/api/v2/tickets.json", {"ticket": ticket})

    assert response.status_code == 422
    assert response.json()["error"] == "RecordInvalid"
    assert list(response.json()["details"]) == [detail]
    assert zendesk.get("/api/v2/tickets.json").json()["count"] == 0


def test_tickets_list_filters_by_external_id(zendesk: Zendesk) -> None:
    first = new_ticket(zendesk, external_id="c-1")
    new_ticket(zendesk, external_id="c-2")

    found = zendesk.get("/api/v2/tickets.json", params={"external_id": "c-1"}).json()

    assert found == {"tickets": [first], "next_page": None, "previous_page": None, "count": 1}
    assert zendesk.get("/api/v2/tickets", params={"external_id": "c-3"}).json()["count"] == 0
    assert zendesk.get("/api/v2/tickets.json").json()["count"] == 2


def test_tickets_update_applies_comment_tags_assignee_status_and_custom_fields(zendesk: Zendesk) -> None:
    one, two, three = (zendesk.create_ticket_field(title) for title in ("One", "Two", "Three"))
    custom_fields = [{"id": one, "value": "a"}, {"id": two, "value": "b"}]
    ticket = new_ticket(zendesk, tags=["voice", "new_call"], custom_fields=custom_fields)
    update = {
        "ticket": {
            "status": "pending",
            "assignee_id": BEN,
            "additional_tags": ["Call Back"],
            "remove_tags": ["new_call"],
            "custom_fields": [{"id": two, "value": "answered"}, {"id": three, "value": "x"}],
            "comment": {"body": "Called back"},
        }
    }

    response = zendesk.put(f"/api/v2/tickets/{ticket['id']}.json", update)

    assert response.status_code == 200
    updated, audit = response.json()["ticket"], response.json()["audit"]
    assert (updated["status"], updated["assignee_id"]) == ("pending", BEN)
    assert updated["tags"] == ["voice", "call_back"]
    assert [(f["id"], f["value"]) for f in updated["custom_fields"]] == [(one, "a"), (two, "answered"), (three, "x")]
    assert updated["is_public"] is True  # the new comment is public by default
    changes = {event["field_name"]: (event["previous_value"], event["value"]) for event in audit["events"][1:]}
    assert changes["status"] == ("new", "pending")
    assert changes["assignee_id"] == (None, BEN)
    assert changes[str(two)] == ("b", "answered")
    assert audit["events"][0]["type"] == "Comment"
    assert [(c["body"], c["public"]) for c in zendesk.comments(ticket["id"])] == [
        ("Call ID: c-1", False),
        ("Called back", True),
    ]
    replaced = zendesk.put(f"/api/v2/tickets/{ticket['id']}", {"ticket": {"tags": ["Only", "only"]}}).json()["ticket"]
    assert replaced["tags"] == ["only"]


def test_tickets_update_of_a_closed_ticket_is_422_with_zendesk_body(zendesk: Zendesk) -> None:
    ticket = new_ticket(zendesk)
    assert zendesk.put(f"/api/v2/tickets/{ticket['id']}.json", {"ticket": {"status": "closed"}}).status_code == 200

    response = zendesk.put(f"/api/v2/tickets/{ticket['id']}.json", {"ticket": {"comment": {"body": "late"}}})

    assert response.status_code == 422
    assert response.json() == {
        "error": "RecordInvalid",
        "description": "Record validation errors",
        "details": {"status": [{"description": "Status: closed prevents ticket update"}]},
    }
    assert len(zendesk.comments(ticket["id"])) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v2/tickets/999.json"),
        ("PUT", "/api/v2/tickets/999.json"),
        ("GET", "/api/v2/tickets/999/comments.json"),
        ("GET", "/api/v2/users/999.json"),
        ("GET", "/api/v2/tickets/abc.json"),
    ],
)
def test_records_unknown_id_is_404_record_not_found(zendesk: Zendesk, method: str, path: str) -> None:
    response = zendesk.session.request(method, zendesk.base_url + path, json={"ticket": {"status": "open"}}, timeout=5)

    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/v2/widgets.json"), ("DELETE", "/api/v2/users/1.json")])
def test_unknown_endpoint_is_404_invalid_endpoint(zendesk: Zendesk, method: str, path: str) -> None:
    response = zendesk.session.request(method, zendesk.base_url + path, timeout=5)

    assert response.status_code == 404
    assert response.json() == {"error": "InvalidEndpoint", "description": "Not found"}


def test_comments_list_in_creation_order_with_public_flags(zendesk: Zendesk) -> None:
    ticket = new_ticket(zendesk)
    zendesk.put(f"/api/v2/tickets/{ticket['id']}.json", {"ticket": {"comment": {"body": "second"}}})
    zendesk.put(f"/api/v2/tickets/{ticket['id']}.json", {"ticket": {"comment": {"body": "third", "public": False}}})

    body = zendesk.get(f"/api/v2/tickets/{ticket['id']}/comments.json").json()

    assert (body["next_page"], body["previous_page"], body["count"]) == (None, None, 3)
    comments = body["comments"]
    assert [(c["body"], c["public"]) for c in comments] == [("Call ID: c-1", False), ("second", True), ("third", False)]
    assert all(set(comment) == COMMENT_KEYS and comment["type"] == "Comment" for comment in comments)
    assert [c["id"] for c in comments] == sorted(c["id"] for c in comments)
    assert comments[1]["html_body"] == '<div class="zd-comment" dir="auto"><p dir="auto">second</p></div>'


def test_bad_request_bodies_are_400(zendesk: Zendesk) -> None:
    not_json = zendesk.session.post(
        zendesk.base_url + "/api/v2/users.json", data="{not json", headers={"Content-Type": "application/json"}
    )
    no_root = zendesk.post("/api/v2/tickets.json", {"subject": "no ticket key"})

    assert not_json.status_code == 400
    assert set(not_json.json()) == {"error", "description"}
    assert no_root.status_code == 400
    assert no_root.json()["error"] == "ParameterMissing"
    assert no_root.json()["description"] == "param is missing or the value is empty: ticket"


# -- Requested tickets, ticket fields, uploads, merges --------------------------------------------

# crm-api-shapes.md §1.5 (recorded create).
TICKET_FIELD_KEYS = keys(
    "url id type title raw_title description raw_description position active required collapsed_for_agents "
    "regexp_for_validation title_in_portal raw_title_in_portal visible_in_portal editable_in_portal "
    "required_in_portal tag created_at updated_at removable key agent_description"
)
# zenpy cassette TestAttachmentUpload.test_upload_with_bytes_io-upload-single.json.
ATTACHMENT_KEYS = keys(
    "url id file_name content_url mapped_content_url content_type size width height inline deleted "
    "malware_access_override malware_scan_result thumbnails"
)
SYSTEM_FIELD_TYPES = ["subject", "description", "status", "tickettype", "priority", "group", "assignee"]


def upload(zendesk: Zendesk, content: bytes, filename: str, content_type: str | None) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return zendesk.session.post(
        zendesk.base_url + "/api/v2/uploads.json", params={"filename": filename}, data=content, headers=headers
    )


def test_requested_tickets_lists_the_users_tickets_by_id_in_offset_pages(zendesk: Zendesk) -> None:
    caller = zendesk.search_users(f"phone:{CALLER_PHONE}")[0]
    first, second, third = (new_ticket(zendesk, subject=f"Call {n}") for n in range(3))
    zendesk.create_ticket(subject="Other caller", comment={"body": "x"}, requester_id=BEN + 3)
    path = f"/api/v2/users/{caller['id']}/tickets/requested.json"

    page_one = zendesk.get(path, params={"per_page": 2}).json()
    page_two = zendesk.session.get(page_one["next_page"], timeout=5).json()

    assert [t["id"] for t in page_one["tickets"]] == [first["id"], second["id"]]
    assert page_one["count"] == 3
    assert [t["id"] for t in page_two["tickets"]] == [third["id"]]
    assert page_two["next_page"] is None
    assert page_two["tickets"][0] == zendesk.get(f"/api/v2/tickets/{third['id']}.json").json()["ticket"]
    assert zendesk.get("/api/v2/users/999/tickets/requested").json() == NOT_FOUND


def test_ticket_fields_list_system_fields_then_created_ones(zendesk: Zendesk) -> None:
    body = {"ticket_field": {"type": "integer", "title": "Wait (s)", "description": "Seconds in queue"}}

    response = zendesk.post("/api/v2/ticket_fields.json", body)

    assert response.status_code == 201
    field = response.json()["ticket_field"]
    assert set(field) == TICKET_FIELD_KEYS
    assert response.headers["Location"] == field["url"] == f"{zendesk.base_url}/api/v2/ticket_fields/{field['id']}.json"
    assert (field["type"], field["title"], field["description"], field["active"]) == (
        "integer",
        "Wait (s)",
        "Seconds in queue",
        True,
    )
    assert (field["position"], field["removable"]) == (9999, True)
    listed = zendesk.get("/api/v2/ticket_fields.json").json()
    assert [f["type"] for f in listed["ticket_fields"]] == [*SYSTEM_FIELD_TYPES, "integer"]
    assert (listed["next_page"], listed["count"]) == (None, len(SYSTEM_FIELD_TYPES) + 1)
    assert not any(f["removable"] for f in listed["ticket_fields"] if f["type"] in ("subject", "status"))
    assert zendesk.get(f"/api/v2/ticket_fields/{field['id']}").json() == {"ticket_field": field}
    assert zendesk.get("/api/v2/ticket_fields/1.json").json() == NOT_FOUND


def test_ticket_fields_create_dropdown_gives_its_options_ids(zendesk: Zendesk) -> None:
    options = [{"name": "Answered", "value": "answered"}, {"name": "Missed", "value": "missed"}]
    body = {"ticket_field": {"type": "tagger", "title": "Outcome", "custom_field_options": options}}

    field = zendesk.post("/api/v2/ticket_fields.json", body).json()["ticket_field"]

    assert [(o["name"], o["raw_name"], o["value"], o["default"]) for o in field["custom_field_options"]] == [
        ("Answered", "Answered", "answered", False),
        ("Missed", "Missed", "missed", False),
    ]
    assert all(isinstance(option["id"], int) for option in field["custom_field_options"])


@pytest.mark.parametrize(
    ("field", "detail"),
    [
        ({"type": "text"}, "title"),
        ({"type": "text", "title": "  "}, "title"),
        ({"title": "No type"}, "type"),
        ({"type": "string", "title": "Bad type"}, "type"),
        ({"type": "tagger", "title": "No options"}, "custom_field_options"),
    ],
)
def test_ticket_fields_create_invalid_field_is_422_and_writes_nothing(
    zendesk: Zendesk, field: dict[str, Any], detail: str
) -> None:
    response = zendesk.post("/api/v2/ticket_fields.json", {"ticket_field": field})

    assert response.status_code == 422
    assert (response.json()["error"], list(response.json()["details"])) == ("RecordInvalid", [detail])
    assert zendesk.get("/api/v2/ticket_fields.json").json()["count"] == len(SYSTEM_FIELD_TYPES)


def test_tickets_custom_fields_drop_unknown_ids_and_list_every_field(zendesk: Zendesk) -> None:
    call_id, outcome = zendesk.create_ticket_field("Call ID"), zendesk.create_ticket_field("Outcome")
    subject_field = zendesk.get("/api/v2/ticket_fields.json").json()["ticket_fields"][0]["id"]
    unknown = [{"id": 25356371, "value": "lost"}, {"id": subject_field, "value": "not custom"}]

    ticket = new_ticket(zendesk, custom_fields=[{"id": call_id, "value": "c-1"}, *unknown])
    updated = zendesk.put(f"/api/v2/tickets/{ticket['id']}.json", {"ticket": {"custom_fields": unknown}}).json()
    later = zendesk.create_ticket_field("Added later")

    assert ticket["custom_fields"] == [{"id": call_id, "value": "c-1"}, {"id": outcome, "value": None}]
    assert updated["ticket"]["custom_fields"] == ticket["custom_fields"]
    assert [event["type"] for event in updated["audit"]["events"]] == []
    shown = zendesk.get(f"/api/v2/tickets/{ticket['id']}.json").json()["ticket"]
    assert shown["custom_fields"] == shown["fields"] == [*ticket["custom_fields"], {"id": later, "value": None}]


def test_uploads_answer_201_with_a_token_and_serve_the_file(zendesk: Zendesk) -> None:
    content = b"\x89PNG\r\n\x1a\n\x00\x01binary"

    response = upload(zendesk, content, "screen shot.png", "image/png")

    assert response.status_code == 201
    body = response.json()["upload"]
    assert set(body) == {"token", "expires_at", "attachments", "attachment"}
    attachment = body["attachment"]
    assert body["attachments"] == [attachment]
    assert set(attachment) == ATTACHMENT_KEYS
    assert response.headers["Location"] == attachment["url"]
    assert (attachment["file_name"], attachment["content_type"], attachment["size"]) == (
        "screen shot.png",
        "image/png",
        len(content),
    )
    assert (attachment["width"], attachment["inline"], attachment["deleted"], attachment["thumbnails"]) == (
        None,
        False,
        False,
        [],
    )
    assert attachment["mapped_content_url"] == attachment["content_url"]
    assert time.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    file = zendesk.session.get(attachment["content_url"], timeout=5)
    assert (file.status_code, file.content, file.headers["Content-Type"]) == (200, content, "image/png")
    assert zendesk.get(f"/api/v2/attachments/{attachment['id']}.json").json() == {"attachment": attachment}


def test_uploads_type_a_generic_file_by_name_and_refuse_a_missing_type(zendesk: Zendesk) -> None:
    typed = upload(zendesk, b"hello", "notes.txt", "application/octet-stream").json()["upload"]["attachment"]
    untyped = upload(zendesk, b"hello", "notes.txt", None)
    unnamed = upload(zendesk, b"hello", "", "text/plain")

    assert typed["content_type"] == "text/plain"
    assert (untyped.status_code, list(untyped.json()["details"])) == (422, ["content_type"])
    assert (unnamed.status_code, list(unnamed.json()["details"])) == (422, ["filename"])


def test_comment_uploads_attach_the_files_once(zendesk: Zendesk) -> None:
    token = upload(zendesk, b"summary", "summary.txt", "text/plain").json()["upload"]["token"]
    ticket = new_ticket(zendesk)
    comment = {"body": "See the summary", "uploads": [token]}

    updated = zendesk.put(f"/api/v2/tickets/{ticket['id']}.json", {"ticket": {"comment": comment}})
    reused = zendesk.put(f"/api/v2/tickets/{ticket['id']}.json", {"ticket": {"comment": comment}})

    attachments = zendesk.comments(ticket["id"])[-1]["attachments"]
    assert [(a["file_name"], a["content_type"], a["size"]) for a in attachments] == [("summary.txt", "text/plain", 7)]
    assert updated.json()["audit"]["events"][0]["attachments"] == attachments
    assert zendesk.session.get(attachments[0]["content_url"], timeout=5).content == b"summary"
    # The comment took the token: using it again is an unknown token.
    assert reused.status_code == 422
    assert list(reused.json()["details"]) == ["uploads"]
    assert len(zendesk.comments(ticket["id"])) == 2


def test_comment_unknown_upload_token_is_422_and_writes_nothing(zendesk: Zendesk) -> None:
    requester = zendesk.search_users(f"phone:{CALLER_PHONE}")[0]
    comment = {"body": "Call ID: c-1", "uploads": ["no-such-token"]}

    response = zendesk.post("/api/v2/tickets.json", {"ticket": {"comment": comment, "requester_id": requester["id"]}})

    assert response.status_code == 422
    assert response.json()["error"] == "RecordInvalid"
    assert list(response.json()["details"]) == ["uploads"]
    assert zendesk.get("/api/v2/tickets.json").json()["count"] == 0


def test_merge_closes_the_source_with_zendesk_comments_and_a_completed_job(zendesk: Zendesk) -> None:
    token = upload(zendesk, b"rec", "call.txt", "text/plain").json()["upload"]["token"]
    target = new_ticket(zendesk, subject="First call")
    source = new_ticket(zendesk, subject="Second call", tags=["voice"], comment={"body": "c-2", "uploads": [token]})

    response = zendesk.post(f"/api/v2/tickets/{target['id']}/merge.json", {"ids": [source["id"]]})

    assert response.status_code == 200
    job = response.json()["job_status"]
    assert (job["status"], job["total"], job["progress"]) == ("completed", 1, 1)
    assert job["results"] == [{"action": "update", "id": source["id"], "status": "Updated", "success": True}]
    assert zendesk.get(f"/api/v2/job_statuses/{job['id']}.json").json() == {"job_status": job}
    closed = zendesk.get(f"/api/v2/tickets/{source['id']}.json").json()["ticket"]
    assert (closed["status"], closed["tags"]) == ("closed", ["voice", "closed_by_merge"])
    source_note = zendesk.comments(source["id"])[-1]
    expected = f'This request was closed and merged into request #{target["id"]} "First call".'
    assert (source_note["body"], source_note["public"]) == (expected, False)
    target_note = zendesk.comments(target["id"])[-1]
    expected = f'Request #{source["id"]} "Second call" was closed and merged into this request.'
    assert (target_note["body"], target_note["public"]) == (expected, False)
    assert [a["file_name"] for a in target_note["attachments"]] == ["call.txt"]
    assert zendesk.get(f"/api/v2/tickets/{target['id']}.json").json()["ticket"]["status"] == "new"
    late = zendesk.put(f"/api/v2/tickets/{source['id']}.json", {"ticket": {"comment": {"body": "late"}}})
    assert late.status_code == 422


def test_merge_takes_the_given_comments_and_privacy(zendesk: Zendesk) -> None:
    target, first, second = (new_ticket(zendesk, subject=f"Call {n}") for n in range(3))
    body = {
        "ids": [first["id"], second["id"]],
        "target_comment": "Combining calls",
        "source_comment": "Closing in favour of the first call",
        "target_comment_is_public": True,
    }

    response = zendesk.post(f"/api/v2/tickets/{target['id']}/merge", body)

    assert response.status_code == 200
    assert [(c["body"], c["public"]) for c in zendesk.comments(target["id"])[1:]] == [("Combining calls", True)]
    for source in (first, second):
        assert [(c["body"], c["public"]) for c in zendesk.comments(source["id"])[1:]] == [
            ("Closing in favour of the first call", False)
        ]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({}, 400, "ParameterMissing"),
        ({"ids": []}, 400, "ParameterMissing"),
        ({"ids": [999]}, 422, "RecordInvalid"),
        ({"ids": ["target"]}, 422, "RecordInvalid"),
        ({"ids": ["closed"]}, 422, "RecordInvalid"),
        ({"ids": ["source"], "source_comment_is_public": "yes"}, 422, "RecordInvalid"),
    ],
)
def test_merge_invalid_request_is_refused_and_changes_nothing(
    zendesk: Zendesk, body: dict[str, Any], status: int, error: str
) -> None:
    target, source, closed = (new_ticket(zendesk) for _ in range(3))
    zendesk.put(f"/api/v2/tickets/{closed['id']}.json", {"ticket": {"status": "closed"}})
    names = {"target": target["id"], "source": source["id"], "closed": closed["id"]}
    body = {key: [names.get(i, i) for i in value] if key == "ids" else value for key, value in body.items()}

    response = zendesk.post(f"/api/v2/tickets/{target['id']}/merge.json", body)

    assert (response.status_code, response.json()["error"]) == (status, error)
    assert [len(zendesk.comments(ticket["id"])) for ticket in (target, source)] == [1, 1]
    assert zendesk.post("/api/v2/tickets/999/merge.json", {"ids": [source["id"]]}).json() == NOT_FOUND


# -- Control endpoints ---------------------------------------------------------------------------


def test_stats_count_api_requests_by_path_template(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    ticket = new_ticket(zendesk)
    zendesk.get(f"/api/v2/tickets/{ticket['id']}.json")
    zendesk.get(f"/api/v2/tickets/{ticket['id']}")
    zendesk.put(f"/api/v2/tickets/{ticket['id']}.json", {"ticket": {"status": "open"}})
    zendesk.get("/api/v2/nothing-here.json")
    control(sandbox, "config", {"seed": 1})

    stats = control(sandbox, "stats").json()

    assert stats == {
        "requests": {
            "GET /api/v2/tickets/{id}.json": 2,
            "GET /api/v2/users/search.json": 1,
            "POST /api/v2/tickets.json": 1,
            "PUT /api/v2/tickets/{id}.json": 1,
        },
        "total": 6,  # the unknown path counts in the total only; control endpoints not at all
        "rate_limited": 0,
        "rate_limited_by_endpoint": {},
        "injected_failures": 0,
        "lost_responses": 0,
        "unexpected_errors": 0,
    }


def test_config_answers_the_whole_config(sandbox: SandboxServer) -> None:
    response = control(sandbox, "config", {"fail_rate": 0.25, "rate_limit_per_minute": 100})

    assert response.status_code == 200
    assert response.json() == DEFAULT_CONFIG | {"fail_rate": 0.25, "rate_limit_per_minute": 100}
    assert control(sandbox, "config", {"rate_limit_per_minute": None}).json()["rate_limit_per_minute"] is None


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"fail_rate": 1.5}, "fail_rate"),
        ({"fail_rate": "0.5"}, "fail_rate"),
        ({"lost_response_rate": True}, "lost_response_rate"),
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"seed": 1.5}, "seed"),
        ({"fail_rate": 0.5, "latency_ms": "slow"}, "latency_ms"),
        ({"fail_rte": 0.5}, "fail_rte"),
        ({"endpoint_rate_limits": {"tickets-update": 0}}, "endpoint_rate_limits"),
        ({"endpoint_rate_limits": {"tickets-index": 5}}, "tickets-index"),
        ({"endpoint_rate_limits": [5]}, "endpoint_rate_limits"),
        ([1, 2], "JSON object"),
    ],
)
def test_config_invalid_value_is_400_and_changes_nothing(sandbox: SandboxServer, body: Any, key: str) -> None:
    response = control(sandbox, "config", body)

    assert response.status_code == 400
    assert response.json()["error"] == "InvalidConfig"
    assert key in response.json()["description"]
    assert requests.get(f"{sandbox.base_url}/__sandbox/config", timeout=5).json() == DEFAULT_CONFIG


def test_rate_limit_answers_429_with_retry_after_until_reset(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    configure(sandbox, rate_limit_per_minute=2)
    assert [zendesk.get("/api/v2/users.json").status_code for _ in range(2)] == [200, 200]

    limited = zendesk.get("/api/v2/users.json")

    assert limited.status_code == 429
    assert limited.text == "Too Many Requests"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["x-rate-limit-remaining"] == "0"
    stats = control(sandbox, "stats").json()  # control endpoints are never limited
    assert (stats["rate_limited"], stats["total"]) == (1, 3)
    control(sandbox, "reset").raise_for_status()
    assert zendesk.get("/api/v2/users.json").status_code == 200


def test_throttle_rate_answers_429_with_the_configured_retry_after(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    configure(sandbox, throttle_rate=1.0, retry_after_seconds=7)

    response = zendesk.post("/api/v2/users.json", {"user": {"name": "Caller"}})

    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
    configure(sandbox, throttle_rate=0.0)
    assert zendesk.search_users("name:Caller") == []


def test_fail_rate_answers_5xx_and_writes_nothing(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    configure(sandbox, fail_rate=1.0)

    responses = [zendesk.post("/api/v2/users.json", {"user": {"name": "Caller"}}) for _ in range(3)]

    assert [response.status_code for response in responses] == [503, 500, 503]
    assert all(set(response.json()) == {"error", "description"} for response in responses)
    configure(sandbox, fail_rate=0.0)
    assert zendesk.search_users("name:Caller") == []
    assert control(sandbox, "stats").json()["injected_failures"] == 3


def test_fail_next_answers_exactly_the_next_requests_500(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    configure(sandbox, fail_next=2)

    statuses = [zendesk.get("/api/v2/users.json").status_code for _ in range(3)]

    assert statuses == [500, 500, 200]
    assert control(sandbox, "config").json()["fail_next"] == 0


def test_fail_next_writes_fails_writes_and_lets_reads_pass(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    configure(sandbox, fail_next_writes=1)

    read = zendesk.get("/api/v2/users.json")
    write = zendesk.post("/api/v2/users.json", {"user": {"name": "Caller"}})
    again = zendesk.post("/api/v2/users.json", {"user": {"name": "Caller"}})

    assert (read.status_code, write.status_code, again.status_code) == (200, 500, 201)
    assert len(zendesk.search_users("name:Caller")) == 1


def test_fail_rate_draws_are_reproducible_with_a_seed(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    def run() -> list[int]:
        configure(sandbox, seed=7, fail_rate=0.5)
        return [zendesk.get("/api/v2/users.json").status_code for _ in range(12)]

    first = run()
    control(sandbox, "reset")
    second = run()

    assert first == second
    assert {200} < set(first)


def test_lost_response_rate_answers_500_but_applies_the_write(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    configure(sandbox, lost_response_rate=1.0)

    lost = zendesk.post("/api/v2/users.json", {"user": {"name": "Caller", "phone": "+14155550199"}})
    read = zendesk.get("/api/v2/users/search.json", params={"query": "phone:*4155550199"})

    assert lost.status_code == 500
    assert read.status_code == 200  # reads are never "lost"
    assert [user["name"] for user in read.json()["users"]] == ["Caller"]
    assert control(sandbox, "stats").json()["lost_responses"] == 1


def test_latency_delays_api_answers_but_not_control(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    configure(sandbox, latency_ms=300)

    started = time.monotonic()
    assert zendesk.get("/api/v2/users.json").status_code == 200
    elapsed = time.monotonic() - started

    assert elapsed >= 0.3
    with pytest.raises(requests.ReadTimeout):
        zendesk.session.get(zendesk.base_url + "/api/v2/users.json", timeout=0.1)
    started = time.monotonic()
    control(sandbox, "stats")
    assert time.monotonic() - started < 0.3


def test_reset_reloads_the_fixture_and_forgets_everything_else(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    new_ticket(zendesk)
    zendesk.create_user(name="Caller", email="caller@example.net")
    configure(sandbox, latency_ms=5, fail_rate=0.1)

    response = control(sandbox, "reset")

    assert response.status_code == 200
    assert control(sandbox, "stats").json()["total"] == 0
    assert requests.get(f"{sandbox.base_url}/__sandbox/config", timeout=5).json() == DEFAULT_CONFIG
    users = zendesk.get("/api/v2/users.json").json()["users"]
    assert [user["email"] for user in users[:3]] == ["ana@example.com", "ben@example.com", "carla@example.com"]
    assert [user["phone"] for user in users[3:]] == ["+14155550101", "+14155550102", "+442071838750"]
    assert zendesk.get("/api/v2/tickets.json").json()["count"] == 0
    assert zendesk.create_user(name="Again")["id"] == ANA + FIXTURE_USERS
    assert new_ticket(zendesk)["id"] == 1


def test_rate_limit_headers_on_every_api_response(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    unlimited = zendesk.get("/api/v2/users.json")
    configure(sandbox, rate_limit_per_minute=5)
    limited = zendesk.get("/api/v2/users/999.json")

    assert unlimited.headers["x-rate-limit"] == unlimited.headers["ratelimit-limit"] == "700"
    assert unlimited.headers["x-rate-limit-remaining"] == unlimited.headers["ratelimit-remaining"] == "699"
    assert 1 <= int(unlimited.headers["ratelimit-reset"]) <= 60
    assert limited.status_code == 404
    assert (limited.headers["x-rate-limit"], limited.headers["x-rate-limit-remaining"]) == ("5", "3")
    assert "x-rate-limit" not in control(sandbox, "stats").headers


# -- Starting it ---------------------------------------------------------------------------------


def test_start_sandbox_unknown_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="known kinds: freshdesk, kustomer, salesforce, zendesk"):
        start_sandbox("hubspot")


def test_sandbox_crm_command_serves_until_interrupted() -> None:
    command = [sys.executable, "manage.py", "sandbox_crm", "zendesk", "--port", "0", "--fixture", str(FIXTURE)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        connect = process.stdout.readline().strip()
        line = process.stdout.readline().strip()
        base_url = line.removeprefix("sandbox zendesk listening on ")
        users = requests.get(f"{base_url}/api/v2/users.json", auth=AUTH, timeout=5).json()

        process.send_signal(signal.SIGINT)

        assert process.wait(timeout=10) == 0
        assert line.startswith("sandbox zendesk listening on http://127.0.0.1:")
        assert connect.startswith(".venv/bin/python manage.py add_crm_connection --provider zendesk --base-url ")
        assert users["count"] == FIXTURE_USERS
        assert process.stderr is not None
        assert process.stderr.read() == ""
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def test_sandbox_crm_command_unknown_kind_lists_the_known_kinds() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "sandbox_crm", "hubspot"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 1
    assert "unknown sandbox kind 'hubspot'; known kinds: freshdesk, kustomer, salesforce, zendesk" in result.stderr


def test_creating_users_after_a_seed_works_like_before_it(zendesk: Zendesk, sandbox: SandboxServer) -> None:
    # docs/ticketsearch.md seeds the sandbox; the demo's calls then create end users through the API.
    seeded = control(sandbox, "seed", {"count": 5, "seed": 1})
    assert seeded.status_code == 200, seeded.text

    caller = zendesk.create_user(name="New caller", phone="+14155550177", role="end-user")
    taken = zendesk.post("/api/v2/users.json", {"user": {"name": "Twin", "phone": "+1 415 555 0177"}})

    assert caller["shared_phone_number"] is False
    assert taken.status_code == 422
    assert ALREADY_USED in taken.text
    assert sandbox.stats()["unexpected_errors"] == 0


# -- Bulk updates and the Update Ticket endpoint's own limit (crm-api-shapes.md §1.2, §1.6) --------


def update_many(zendesk: Zendesk, body: Any, query: str = "") -> requests.Response:
    return zendesk.put(f"/api/v2/tickets/update_many.json{query}", body)


def finished_job(zendesk: Zendesk, job: dict[str, Any]) -> dict[str, Any]:
    polled = zendesk.get(f"/api/v2/job_statuses/{job['id']}.json")
    assert polled.status_code == 200
    finished: dict[str, Any] = polled.json()["job_status"]
    return finished


def test_update_many_queues_a_job_whose_results_name_each_ticket(zendesk: Zendesk) -> None:
    first, second = new_ticket(zendesk), new_ticket(zendesk, subject="Chat")
    field_id = zendesk.create_ticket_field("Call duration")
    body = {
        "tickets": [
            {"id": first["id"], "comment": {"body": "Call finished", "public": False}, "additional_tags": ["voice"]},
            {
                "id": second["id"],
                "status": "solved",
                "assignee_id": ANA,
                "custom_fields": [{"id": field_id, "value": "95"}],
            },
            {"id": first["id"], "comment": {"body": "Recording: https://rec/1", "public": False}},
        ]
    }

    response = update_many(zendesk, body)

    assert response.status_code == 200
    job = response.json()["job_status"]
    assert (job["status"], job["total"], job["progress"], job["results"]) == ("queued", 3, None, None)
    assert job["url"].endswith(f"/api/v2/job_statuses/{job['id']}.json")
    finished = finished_job(zendesk, job)
    assert (finished["status"], finished["progress"], finished["job_type"]) == ("completed", 3, "bulk_update")
    assert finished["results"] == [
        {"index": 0, "id": first["id"], "action": "update", "success": True, "status": "Updated"},
        {"index": 1, "id": second["id"], "action": "update", "success": True, "status": "Updated"},
        {"index": 2, "id": first["id"], "action": "update", "success": True, "status": "Updated"},
    ]
    # Two items for one ticket apply in the order sent.
    assert [c["body"] for c in zendesk.comments(first["id"])][-2:] == ["Call finished", "Recording: https://rec/1"]
    solved = zendesk.get(f"/api/v2/tickets/{second['id']}.json").json()["ticket"]
    assert (solved["status"], solved["assignee_id"]) == ("solved", ANA)
    assert {"id": field_id, "value": "95"} in solved["custom_fields"]
    assert "voice" in zendesk.get(f"/api/v2/tickets/{first['id']}.json").json()["ticket"]["tags"]


def test_update_many_with_ids_applies_one_change_to_every_ticket(zendesk: Zendesk) -> None:
    tickets = [new_ticket(zendesk) for _ in range(3)]
    ids = ",".join(str(ticket["id"]) for ticket in tickets)

    response = update_many(zendesk, {"ticket": {"status": "pending", "additional_tags": ["csat"]}}, f"?ids={ids}")

    assert response.status_code == 200
    results = finished_job(zendesk, response.json()["job_status"])["results"]
    assert [(r["id"], r["success"]) for r in results] == [(t["id"], True) for t in tickets]
    for ticket in tickets:
        shown = zendesk.get(f"/api/v2/tickets/{ticket['id']}.json").json()["ticket"]
        assert shown["status"] == "pending"
        assert "csat" in shown["tags"]


def test_update_many_items_fail_alone_and_change_nothing(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    open_ticket, closed = new_ticket(zendesk), new_ticket(zendesk)
    zendesk.put(f"/api/v2/tickets/{closed['id']}.json", {"ticket": {"status": "closed"}}).raise_for_status()
    comments_before = len(zendesk.comments(closed["id"]))
    body = {
        "tickets": [
            {"id": closed["id"], "comment": {"body": "late note", "public": False}},
            {"id": 999999, "status": "solved"},
            {"id": open_ticket["id"], "status": "bogus"},
            {"id": open_ticket["id"], "comment": {"body": "kept", "public": False}},
        ]
    }

    results = finished_job(zendesk, update_many(zendesk, body).json()["job_status"])["results"]

    assert [(r["index"], r["success"], r["status"]) for r in results] == [
        (0, False, "Failed"),
        (1, False, "Failed"),
        (2, False, "Failed"),
        (3, True, "Updated"),
    ]
    assert (results[0]["error"], results[0]["details"]) == (
        "RecordInvalid",
        {"status": [{"description": "Status: closed prevents ticket update"}]},
    )
    assert results[1]["error"] == "RecordNotFound"
    assert results[2]["error"] == "RecordInvalid"
    assert len(zendesk.comments(closed["id"])) == comments_before
    shown = zendesk.get(f"/api/v2/tickets/{open_ticket['id']}.json").json()["ticket"]
    assert shown["status"] == "new"
    assert zendesk.comments(open_ticket["id"])[-1]["body"] == "kept"


def test_job_faults_fail_items_in_the_result_and_apply_none_of_them(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    ticket = new_ticket(zendesk)
    assert control(sandbox, "job_faults", {"item_fail_rate": 1.0}).json()["item_fail_rate"] == 1.0

    body = {"tickets": [{"id": ticket["id"], "comment": {"body": "not written", "public": False}}]}
    result = finished_job(zendesk, update_many(zendesk, body).json()["job_status"])["results"][0]

    assert (result["success"], result["error"]) == (False, "TicketUpdateFailed")
    assert [c["body"] for c in zendesk.comments(ticket["id"])] == ["Call ID: c-1"]
    assert requests.get(f"{sandbox.base_url}/__sandbox/job_faults", timeout=5).json() == {
        "item_fail_rate": 1.0,
        "item_failures": 1,
    }
    assert control(sandbox, "job_faults", {"item_fail_rate": 2}).status_code == 400


def test_a_lost_job_id_is_found_in_the_job_list(zendesk: Zendesk) -> None:
    ticket = new_ticket(zendesk)
    job = update_many(zendesk, {"tickets": [{"id": ticket["id"], "status": "open"}]}).json()["job_status"]

    listed = zendesk.get("/api/v2/job_statuses.json").json()

    assert listed["job_statuses"][0]["id"] == job["id"]
    assert listed["job_statuses"][0]["results"][0] == {
        "index": 0,
        "id": ticket["id"],
        "action": "update",
        "success": True,
        "status": "Updated",
    }


@pytest.mark.parametrize(
    ("body", "query", "error"),
    [
        ({}, "", "ParameterMissing"),
        ({"tickets": []}, "", "ParameterMissing"),
        ({"tickets": ["1"]}, "", "ParameterMissing"),
        ({"tickets": [{"id": n, "status": "open"} for n in range(101)]}, "", "InvalidValue"),
        ({}, "?ids=1,2", "ParameterMissing"),
    ],
)
def test_update_many_bad_requests_are_400_and_make_no_job(zendesk: Zendesk, body: Any, query: str, error: str) -> None:
    response = update_many(zendesk, body, query)

    assert response.status_code == 400
    assert response.json()["error"] == error
    assert zendesk.get("/api/v2/job_statuses.json").json()["job_statuses"] == []


def test_ticket_updates_have_their_own_limit_and_header(sandbox: SandboxServer, zendesk: Zendesk) -> None:
    ticket = new_ticket(zendesk)
    path = f"/api/v2/tickets/{ticket['id']}.json"
    first = zendesk.put(path, {"ticket": {"status": "open"}})
    assert first.headers["zendesk-rate-limit-tickets-update"].startswith("total=100; remaining=99; resets=")
    configure(sandbox, endpoint_rate_limits={"tickets-update": 2})
    assert zendesk.put(path, {"ticket": {"status": "pending"}}).status_code == 200

    limited = zendesk.put(path, {"ticket": {"status": "solved"}})

    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["zendesk-rate-limit-tickets-update"].startswith("total=2; remaining=0; resets=")
    assert zendesk.get(path).json()["ticket"]["status"] == "pending"
    # Other endpoints, bulk updates among them, are not held by the ticket-update limit.
    assert zendesk.get(path).status_code == 200
    assert "zendesk-rate-limit-tickets-update" not in zendesk.get(path).headers
    assert update_many(zendesk, {"tickets": [{"id": ticket["id"], "status": "solved"}]}).status_code == 200
    stats = control(sandbox, "stats").json()
    assert (stats["rate_limited"], stats["rate_limited_by_endpoint"]) == (1, {"tickets-update": 1})
    assert stats["requests"]["PUT /api/v2/tickets/update_many.json"] == 1
