"""Stemming in the ticket's language (T4): each ticket is indexed in its CRM language, searched in all."""

from typing import Any

import pytest
from django.db import connection as db_connection
from rest_framework.test import APIClient

from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from tests.ticketsearch.support import ZOE, iso_days_ago, seed, seed_salesforce, zendesk_users
from tests.ticketsearch.test_search_api import SEARCH, client_for, make_user
from ticketsearch.backends import TicketQuery
from ticketsearch.backends.postgres import PostgresTicketSearch, text_tsquery
from ticketsearch.models import ImportRun, SearchLanguage, Ticket
from ticketsearch.services.importing import tickets_import
from ticketsearch.services.retention import partition_name

pytestmark = pytest.mark.django_db

HANS, KEIKO = 911, 912


def ticket(ticket_id: int, subject: str, requester: int) -> dict[str, Any]:
    return {
        "id": ticket_id,
        "subject": subject,
        "description": subject,
        "status": "solved",
        "assignee_id": ZOE,
        "requester_id": requester,
        "created_at": iso_days_ago(3),
        "updated_at": iso_days_ago(2),
        "comments": [{"body": subject, "author_id": ZOE}],
    }


@pytest.fixture
def languages(zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer) -> None:
    """English (Zoe's requester Dana, the account's en-US), German and Japanese requesters' tickets."""
    users = [
        *zendesk_users(),
        {"id": HANS, "name": "Hans Kunde", "email": "hans@example.de", "role": "end-user", "locale": "de"},
        {"id": KEIKO, "name": "Keiko Kyaku", "email": "keiko@example.jp", "role": "end-user", "locale": "ja"},
    ]
    seed(
        zendesk_sandbox,
        {
            "users": users,
            "tickets": [
                ticket(41, "Refunded twice for the routers", 905),
                ticket(42, "Rechnungen doppelt bezahlt, Router defekt", HANS),
                ticket(43, "refunded router", KEIKO),
            ],
        },
    )
    tickets_import(connection=zendesk_connection, trigger=ImportRun.Trigger.COMMAND)


def found(client: APIClient, q: str) -> list[str]:
    response = client.get(SEARCH, {"q": q})
    assert response.status_code == 200, response.json()
    return sorted(result["crm_ticket_id"] for result in response.json()["results"])


def test_T4_each_ticket_is_indexed_in_its_requesters_language(languages: None) -> None:
    configs = dict(Ticket.objects.values_list("crm_ticket_id", "search_config"))

    assert configs == {"41": "english", "42": "german", "43": "simple"}  # no Japanese stemmer: as written
    assert set(SearchLanguage.objects.values_list("config", flat=True)) == {"english", "german", "simple"}


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("refund", ["41"]),  # the English stem; the Japanese requester's 'refunded' is a word as written
        ("refunding routers", ["41"]),
        ("Rechnung", ["42"]),  # German: Rechnungen -> rechnung
        ("router", ["41", "42", "43"]),  # the same search across the three languages
        ("refunded", ["41", "43"]),
        ("router -refunds", ["42", "43"]),  # excluded by the English stem only in the English ticket
        ('"refunded twice"', ["41"]),
    ],
)
def test_T4_words_are_stemmed_in_each_tickets_language(languages: None, q: str, expected: list[str]) -> None:
    assert found(client_for(make_user("qa")), q) == expected


def test_T4_highlights_mark_the_stemmed_matches(languages: None) -> None:
    response = client_for(make_user("qa")).get(SEARCH, {"q": "refund"})

    (result,) = response.json()["results"]
    assert result["highlights"]["subject"] == "<mark>Refunded</mark> twice for the routers"


def test_T4_tickets_without_a_crm_language_take_the_default_setting(
    settings: Any, salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer
) -> None:
    settings.TICKETSEARCH_DEFAULT_LANGUAGE = "en-GB"
    seed_salesforce(salesforce_sandbox)
    tickets_import(connection=salesforce_connection, trigger=ImportRun.Trigger.COMMAND)

    assert set(Ticket.objects.values_list("search_config", flat=True)) == {"english"}
    client = client_for(make_user("qa"))
    # The case comment says "Refunded the duplicate charge".
    response = client.get(SEARCH, {"q": "refund duplicates"})
    assert [r["subject"] for r in response.json()["results"]] == ["Invoice charged twice"]


def test_T4_the_multilingual_search_uses_the_search_index(languages: None) -> None:
    queryset = PostgresTicketSearch().restrict(
        Ticket.objects.all(), TicketQuery(text="router", channels=("other",), statuses=("solved",))
    )
    with db_connection.cursor() as cursor:
        # Three rows: the planner would read the table; told not to, it shows whether the index can serve.
        cursor.execute("SET LOCAL enable_seqscan = off")
        # Nor may it walk the (created_at, id) index for the ORDER BY and filter each row, which on a
        # never-analyzed partition of three rows it may price lower: the question is the GIN index.
        cursor.execute("SET LOCAL enable_indexscan = off")
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    # The partition holding the three tickets.
    holding = partition_name(Ticket.objects.get(crm_ticket_id="41").created_at.date())
    lines = [line.strip() for line in plan.splitlines()]
    scan = lines.index(next(line for line in lines if line.startswith(f"->  Bitmap Index Scan on {holding}_")))
    assert "_search_vector_tags_channel_st" in lines[scan], plan
    condition = lines[scan + 1]
    # The three languages' parses in one tsquery, intersected with the filters inside the index.
    assert condition.startswith("Index Cond: ((search_vector @@"), plan
    for part in ("'lang ", "'rout'", "'router'", "(channel)::text = 'other'", "(status)::text = 'solved'"):
        assert part in condition, plan


def test_T4_words_every_language_reads_alike_are_one_plain_query(languages: None) -> None:
    # "router" stems differently in German; a number reads the same in all three.
    assert "'lang " in (text_tsquery("router") or "")
    assert text_tsquery("12345") == "'12345'"
    assert text_tsquery("!!!") is None
