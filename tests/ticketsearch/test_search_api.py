"""The QA search API (T4) and evaluations (T6) over tickets imported from both sandbox CRMs."""

import re
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.test import APIClient

from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from tests.ticketsearch.support import DANA, ZOE, iso_days_ago, seed, seed_salesforce, seed_zendesk
from ticketsearch.models import Agent, Evaluation, ImportRun, QaToken, Ticket
from ticketsearch.selectors import ticket_search
from ticketsearch.services.evaluations import evaluation_create
from ticketsearch.services.importing import tickets_import

pytestmark = pytest.mark.django_db

SEARCH = "/api/v1/tickets/search"


def make_user(username: str, *, staff: bool = True, perms: tuple[str, ...] = ("search_tickets",)) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="ticketsearch", codename__in=perms))
    return user


def client_for(user: User) -> APIClient:
    client = APIClient()
    _, key = QaToken.objects.create_key(name=user.username, user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def tickets(
    zendesk_connection: CrmConnection,
    zendesk_sandbox: SandboxServer,
    salesforce_connection: CrmConnection,
    salesforce_sandbox: SandboxServer,
) -> dict[str, Ticket]:
    """Zendesk tickets 1 (voice, vip+billing) and 6 (chat); Salesforce 'Invoice' (voice) and 'Warranty' (chat)."""
    seed_zendesk(zendesk_sandbox)
    seed_salesforce(salesforce_sandbox)
    for connection in (zendesk_connection, salesforce_connection):
        tickets_import(connection=connection, trigger=ImportRun.Trigger.COMMAND)
    by_key = {t.crm_ticket_id: t for t in Ticket.objects.filter(crm_kind="zendesk")}
    by_key |= {t.subject.split()[0].lower(): t for t in Ticket.objects.filter(crm_kind="salesforce")}
    assert set(by_key) == {"1", "6", "invoice", "warranty"}
    return by_key


@pytest.fixture
def qa() -> APIClient:
    return client_for(make_user("qa", perms=("search_tickets", "evaluate_tickets")))


def found(client: APIClient, **params: Any) -> list[str]:
    response = client.get(SEARCH, params)
    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    return [r["crm_ticket_id"] if r["crm"] == "zendesk" else r["subject"].split()[0].lower() for r in results]


# -- Auth ------------------------------------------------------------------------------------------


def test_T4_unauthenticated_calls_get_401() -> None:
    assert APIClient().get(SEARCH).status_code == 401


@pytest.mark.parametrize(
    ("staff", "perms"), [(True, ()), (False, ("search_tickets",)), (True, ("evaluate_tickets",))]
)  # fmt: skip
def test_T4_users_without_the_qa_permission_or_not_staff_get_403(staff: bool, perms: tuple[str, ...]) -> None:
    client = client_for(make_user("someone", staff=staff, perms=perms))

    assert client.get(SEARCH).status_code == 403
    assert client.get("/api/v1/tickets/1").status_code == 403


def test_T4_session_auth_works_for_staff_qa_users(tickets: dict[str, Ticket]) -> None:
    client = APIClient()
    client.force_login(make_user("qa-session"))

    assert client.get(SEARCH).status_code == 200


# -- Full text and filters -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("refund", ["1"]),  # description and comments
        ("refunded duplicate", ["invoice"]),  # a Salesforce case comment; 'simple': no stemming
        ("router", ["1"]),  # subject
        ("parcel damaged", ["1"]),  # only in the call transcript
        ("warranty screen", ["warranty"]),  # only in the chat transcript
        ('"password reset"', ["6"]),
        ("refund or duplicate", ["1", "invoice"]),
        ("refund -router", []),
        ("nothingmatches", []),
    ],
)
def test_T4_full_text_over_subject_description_comments_and_transcript(
    qa: APIClient, tickets: dict[str, Ticket], q: str, expected: list[str]
) -> None:
    assert sorted(found(qa, q=q)) == sorted(expected)


def test_T4_results_highlight_the_matching_text(qa: APIClient, tickets: dict[str, Ticket]) -> None:
    (result,) = qa.get(SEARCH, {"q": "router"}).json()["results"]

    assert result["highlights"]["subject"] == "Refund for a broken <mark>router</mark>"
    assert "<mark>router</mark>" in result["highlights"]["text"]
    assert qa.get(SEARCH).json()["results"][0]["highlights"] is None


def test_T4_a_full_text_page_is_two_statements_with_its_agents_and_highlights(
    tickets: dict[str, Ticket], django_assert_num_queries: Any
) -> None:
    # The language parses of the words, then the page with its agents and highlights: no query per
    # language, none for the agents (docs/benchmarks.md, the profile of a full-text search).
    with django_assert_num_queries(2):
        page = ticket_search(params={"q": "refund or duplicate", "page_size": "1"})

    (hit,) = page.tickets
    assert page.next_cursor is not None
    assert hit.highlights is not None
    assert "<mark>" in hit.highlights["text"]
    assert hit.agent is not None
    assert hit.agent.email in {"zoe@example.com", "sam@example.com"}


def test_T4_highlights_escape_customer_html_and_keep_only_the_mark_tags(
    qa: APIClient, zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    seed_zendesk(zendesk_sandbox)
    seed(
        zendesk_sandbox,
        {
            "tickets": [
                {
                    "id": 40,
                    "subject": "<b>Router</b> <script>alert(1)</script>",
                    "description": (
                        'router <img src=x onerror="alert(2)"> & \ue000 fake mark \ue001 <svg onload=alert(4) router'
                    ),
                    "status": "solved",
                    "assignee_id": ZOE,
                    "requester_id": DANA,
                    "created_at": iso_days_ago(1),
                    "updated_at": iso_days_ago(1),
                    "comments": [{"body": "<a href='javascript:alert(3)'>router</a>", "author_id": ZOE}],
                }
            ]
        },
    )
    tickets_import(connection=zendesk_connection, trigger=ImportRun.Trigger.COMMAND)

    (result,) = [r for r in qa.get(SEARCH, {"q": "router"}).json()["results"] if r["crm_ticket_id"] == "40"]

    subject, text = result["highlights"]["subject"], result["highlights"]["text"]
    assert subject == "&lt;b&gt;<mark>Router</mark>&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt;"
    # ts_headline drops what it parses as a tag from fragments, but not a tag left unclosed.
    assert "&lt;svg onload=alert(4) <mark>router</mark>" in text
    # The only tags left are the marks, and every one is closed.
    for fragment in (subject, text):
        assert re.sub(r"</?mark>", "", fragment).count("<") == 0
        assert fragment.count("<mark>") == fragment.count("</mark>") >= 1
    assert "fake mark" in text
    assert "\ue000" not in text


def test_T4_results_show_recordings_the_crm_link_agent_and_requester(qa: APIClient, tickets: dict[str, Ticket]) -> None:
    (result,) = qa.get(SEARCH, {"q": "router"}).json()["results"]

    assert result["recording_urls"] == ["https://acme.zendesk.com/recordings/r1.mp3"]
    assert result["crm_url"].endswith("/agent/tickets/1")
    assert result["agent"]["email"] == "zoe@example.com"
    assert result["requester"]["email"] == "dana@example.net"
    assert (result["channel"], result["tags"]) == ("voice", ["vip", "billing"])


def test_T4_filters(qa: APIClient, tickets: dict[str, Ticket]) -> None:
    zoe = Agent.objects.get(email="zoe@example.com")
    zendesk_id = tickets["1"].connection_id
    first, last = tickets["1"].created_at, tickets["6"].created_at
    cases: list[tuple[dict[str, Any], set[str]]] = [
        ({"crm": "salesforce"}, {"invoice", "warranty"}),
        ({"crm": "zendesk,salesforce"}, {"1", "6", "invoice", "warranty"}),
        ({"connection": zendesk_id}, {"1", "6"}),
        ({"channel": "voice"}, {"1", "invoice"}),
        ({"channel": "chat,email"}, {"6", "warranty"}),
        ({"status": "closed"}, {"6"}),
        ({"status": "solved,Closed"}, {"1", "invoice", "warranty"}),
        ({"agent": zoe.pk}, {"1", "6"}),
        ({"agent_email": "SAM@example.com"}, {"invoice"}),
        ({"requester": "Dana@Example.net"}, {"1", "6"}),
        ({"requester_phone": "0101"}, {"1", "6"}),
        ({"requester_phone": "555-0101"}, {"1", "6"}),
        ({"requester_phone": "838750"}, {"invoice", "warranty"}),
        ({"requester_phone": "9999"}, set()),
        ({"created_from": first.isoformat(), "created_to": last.isoformat()}, {"1", "warranty"}),
        ({"created_from": last.date().isoformat(), "crm": "zendesk"}, {"6"}),
        ({"tags": "vip"}, {"1"}),
        ({"tags": "vip,billing"}, {"1"}),
        ({"tags": "vip,technical"}, set()),
        ({"q": "refund or duplicate", "crm": "zendesk", "channel": "voice"}, {"1"}),
    ]
    for params, expected in cases:
        assert set(found(qa, **params)) == expected, params


def test_T4_repeated_list_parameters_combine(qa: APIClient, tickets: dict[str, Ticket]) -> None:
    assert set(found(qa, channel=["voice", "chat"], crm="zendesk")) == {"1", "6"}


def test_T4_keyset_pagination_returns_each_ticket_once_newest_first(qa: APIClient, tickets: dict[str, Ticket]) -> None:
    seen, cursor = [], None
    while True:
        body = qa.get(SEARCH, {"page_size": 1, **({"cursor": cursor} if cursor else {})}).json()
        seen += [(r["created_at"], r["id"]) for r in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == len(set(seen)) == 4
    assert seen == sorted(seen, reverse=True)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"channel": "fax"}, "channel"),
        ({"crm": "hubspot"}, "crm"),
        ({"created_from": "last tuesday"}, "created_from"),
        ({"created_to": "2026-13-45"}, "created_to"),
        ({"requester_phone": "12"}, "requester_phone"),
        ({"requester_phone": "abcd"}, "requester_phone"),
        ({"requester_phone": "1" * 16}, "requester_phone"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "101"}, "page_size"),
        ({"page_size": "ten"}, "page_size"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJjIjoxfQ"}, "cursor"),
        ({"agent": "zoe"}, "agent"),
        ({"connection": "0"}, "connection"),
        ({"q": "x" * 501}, "q"),
        ({"tags": ",".join(f"t{n}" for n in range(21))}, "tags"),
        ({"page_size": ["1", "2"]}, "page_size"),
    ],
)
def test_T4_bad_parameters_get_400_naming_them(qa: APIClient, params: dict[str, Any], field: str) -> None:
    response = qa.get(SEARCH, params)

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {field}


def test_T4_text_with_nul_or_only_punctuation_is_not_a_500(qa: APIClient, tickets: dict[str, Ticket]) -> None:
    assert qa.get(SEARCH, {"q": "!!! &&& :*"}).status_code == 200
    assert qa.get(SEARCH, {"q": "a\x00b"}).status_code in (200, 400)


# -- Detail ----------------------------------------------------------------------------------------


def test_T4_ticket_detail_has_transcript_recordings_comments_and_crm_link(
    qa: APIClient, tickets: dict[str, Ticket]
) -> None:
    body = qa.get(f"/api/v1/tickets/{tickets['1'].id}").json()

    assert body["transcript"] == "Caller says the parcel was damaged in transit"
    assert body["recording_urls"] == ["https://acme.zendesk.com/recordings/r1.mp3"]
    assert body["crm_url"].endswith("/agent/tickets/1")
    assert [(c["author"], c["body"]) for c in body["comments"]] == [
        (None, "My router arrived broken, I want a refund"),  # the customer
        ("Zoe Quality", "Refund issued to the card on file"),
        ("Zoe Quality", "Inbound call"),
    ]
    assert body["evaluations"] == []


@pytest.mark.parametrize("ticket_id", ["999999", str(2**63), str(10**30)])
def test_T4_unknown_ticket_is_404(qa: APIClient, ticket_id: str) -> None:
    assert qa.get(f"/api/v1/tickets/{ticket_id}").status_code == 404


# -- Evaluations (T6) ------------------------------------------------------------------------------


def test_T6_a_qa_reviewer_records_an_evaluation(qa: APIClient, tickets: dict[str, Ticket]) -> None:
    ticket = tickets["1"]
    url = f"/api/v1/tickets/{ticket.id}/evaluations"
    answer = {"score": 85, "answers": {"Greeting used": True, "Resolution": "refund"}, "comment": "Polite, quick"}

    response = qa.post(url, answer, format="json")

    assert response.status_code == 201, response.json()
    evaluation = Evaluation.objects.get()
    assert (evaluation.crm_ticket_id, evaluation.score, evaluation.reviewer.username) == ("1", 85, "qa")
    assert evaluation.answers == {"Greeting used": True, "Resolution": "refund"}
    assert [e["score"] for e in qa.get(url).json()] == [85]
    assert qa.get(f"/api/v1/tickets/{ticket.id}").json()["evaluations"][0]["comment"] == "Polite, quick"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"score": 101}, "score"),
        ({"score": -1}, "score"),
        ({}, "score"),
        ({"score": 50, "answers": ["yes"]}, "answers"),
        ({"score": 50, "answers": {"q": {"nested": 1}}}, "answers"),
    ],
)
def test_T6_bad_evaluations_get_400_naming_the_field(
    qa: APIClient, tickets: dict[str, Ticket], body: dict[str, Any], field: str
) -> None:
    response = qa.post(f"/api/v1/tickets/{tickets['1'].id}/evaluations", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_T6_recording_an_evaluation_needs_the_evaluate_permission(tickets: dict[str, Ticket]) -> None:
    reader = client_for(make_user("reader"))
    url = f"/api/v1/tickets/{tickets['1'].id}/evaluations"

    assert reader.get(url).status_code == 200
    assert reader.post(url, {"score": 10}, format="json").status_code == 403


def test_T4_reviewed_filter_finds_tickets_with_or_without_an_evaluation(
    qa: APIClient, tickets: dict[str, Ticket]
) -> None:
    reviewer = User.objects.get(username="qa")
    evaluation_create(ticket=tickets["6"], reviewer=reviewer, score=80, answers={})
    evaluation_create(ticket=tickets["invoice"], reviewer=reviewer, score=60, answers={})

    assert sorted(found(qa, reviewed="true")) == ["6", "invoice"]
    assert sorted(found(qa, reviewed="false")) == ["1", "warranty"]
    assert sorted(found(qa, reviewed="false", q="refund")) == ["1"]
    response = qa.get(SEARCH, {"reviewed": "maybe"})
    assert response.status_code == 400
    assert "reviewed" in response.json()["errors"]
