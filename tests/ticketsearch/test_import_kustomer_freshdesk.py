"""The Kustomer and Freshdesk imports' request plans and paging, against their sandboxes over HTTP.

The rules themselves are tested on every CRM in test_import_rules_on_each_crm.py.
"""

from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.test import Client

from integrations.models import CrmConnection
from integrations.providers import freshdesk, kustomer
from integrations.providers.base import Capability
from integrations.providers.importing import TicketImportSource
from integrations.providers.registry import PROVIDERS
from integrations.sandbox import SandboxServer
from tests.support import sandbox_stats
from tests.ticketsearch.scenarios import CHAT_ANSWER, CUSTOMER_MESSAGE, SUBJECTS, FreshdeskScenario, KustomerScenario
from ticketsearch.models import CrmComment, ImportRun, ImportState, Ticket
from ticketsearch.services.importing import connections_to_import, tickets_import

pytestmark = pytest.mark.django_db

SEARCH = "POST /v1/customers/search"
MESSAGES = "GET /v1/conversations/{id}/messages"
NOTES = "GET /v1/conversations/{id}/notes"
TICKETS = "GET /api/v2/tickets"
CONVERSATIONS = "GET /api/v2/tickets/{id}/conversations"


def run_import(connection: CrmConnection) -> ImportRun:
    return tickets_import(connection=connection, trigger=ImportRun.Trigger.COMMAND)


def test_kustomer_import_reads_everything_with_four_searches_and_nothing_per_conversation(
    kustomer_connection: CrmConnection, kustomer_sandbox: SandboxServer
) -> None:
    KustomerScenario(kustomer_sandbox).seed()

    run = run_import(kustomer_connection)

    stats = sandbox_stats(kustomer_sandbox)["requests"]
    assert run.tickets_imported == 2
    # The page of six conversations, their customers, and the messages and notes of every
    # conversation (one search each, 100 a page); no list per conversation.
    assert stats[SEARCH] == 4
    assert MESSAGES not in stats
    assert NOTES not in stats
    assert stats["GET /v1/users"] == 1


def test_kustomer_comments_of_a_conversation_not_solved_yet_wait_for_it(
    kustomer_connection: CrmConnection, kustomer_sandbox: SandboxServer
) -> None:
    scenario = KustomerScenario(kustomer_sandbox)
    scenario.seed()
    run_import(kustomer_connection)
    note = {"body": "Looked into the outage", "createdBy": scenario.ZOE}
    requests.post(
        f"{kustomer_sandbox.base_url}/v1/conversations/{scenario.crm_id('open')}/notes",
        json=note,
        headers={"Authorization": "Bearer sandbox-api-key"},
        timeout=10,
    ).raise_for_status()
    second = run_import(kustomer_connection)
    assert CrmComment.objects.filter(crm_ticket_id=scenario.crm_id("open")).count() == 1
    assert second.tickets_imported == 0

    scenario.set_solved("open", True)
    third = run_import(kustomer_connection)

    assert third.tickets_imported == 1
    ticket = Ticket.objects.get(crm_ticket_id=scenario.crm_id("open"))
    assert [comment["body"] for comment in ticket.comments] == ["Looked into the outage"]
    assert ImportState.objects.get(connection=kustomer_connection).comments_cursor.startswith("{")


def test_kustomer_per_conversation_lists_read_only_what_its_counts_say_it_has(
    kustomer_connection: CrmConnection, kustomer_sandbox: SandboxServer
) -> None:
    """load_comments, the per-ticket way (the bench's baseline): messages and notes lists, none when empty."""
    from integrations.services import connection_provider

    scenario = KustomerScenario(kustomer_sandbox)
    scenario.seed()
    provider = connection_provider(kustomer_connection)
    assert isinstance(provider, kustomer.KustomerProvider)
    (page,) = list(provider.iter_tickets(cursor=None, since=datetime.now(UTC) - timedelta(days=90)))
    kept = [ticket for ticket in page.items if ticket.subject in (SUBJECTS["refund"], SUBJECTS["chat"])]

    loaded = {ticket.subject: ticket for ticket in provider.load_comments(kept)}

    stats = sandbox_stats(kustomer_sandbox)["requests"]
    assert (stats[MESSAGES], stats[NOTES]) == (2, 1)
    assert loaded[SUBJECTS["refund"]].comments[0].body == CUSTOMER_MESSAGE
    assert [c.body for c in loaded[SUBJECTS["chat"]].comments] == [CHAT_ANSWER]


def test_kustomer_import_starts_the_search_again_past_its_last_page(
    kustomer_connection: CrmConnection, kustomer_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kustomer serves 100 pages (10,000 results) of one query; here 1 page of 4.

    Six conversations take two or three queries (the message and note searches restart the same way).

    Three of them changed in the same moment: a query started at that moment reads them again.
    """
    KustomerScenario(kustomer_sandbox).seed()
    monkeypatch.setattr(kustomer, "SEARCH_PAGE_SIZE", 4)
    monkeypatch.setattr(kustomer, "SEARCH_MAX_PAGES", 1)

    run = run_import(kustomer_connection)

    assert run.status == ImportRun.Status.SUCCEEDED
    assert set(Ticket.objects.values_list("subject", flat=True)) == {SUBJECTS["refund"], SUBJECTS["chat"]}
    # Each new query starts at the last conversation read (`gte`): what changed then comes again.
    assert 7 <= run.tickets_fetched <= 10
    assert Ticket.objects.count() == 2


def test_the_sandbox_kustomer_search_serves_no_page_past_the_100th_or_the_10000th_result(
    kustomer_sandbox: SandboxServer, kustomer_api: requests.Session
) -> None:
    query = {"queryContext": "conversation", "and": [{"conversation_status": {"equals": "done"}}]}

    url = f"{kustomer_sandbox.base_url}/v1/customers/search"

    last = kustomer_api.post(f"{url}?page=100&pageSize=100", json=query, timeout=10)
    past = kustomer_api.post(f"{url}?page=101&pageSize=100", json=query, timeout=10)
    # 500 a page: the 20th page holds the 10,000th result.
    last_of_500 = kustomer_api.post(f"{url}?page=20&pageSize=500", json=query, timeout=10)
    past_10000 = kustomer_api.post(f"{url}?page=21&pageSize=500", json=query, timeout=10)
    too_big = kustomer_api.post(f"{url}?page=1&pageSize=501", json=query, timeout=10)

    assert (last.status_code, last_of_500.status_code) == (200, 200)
    assert last.json()["links"]["next"] is None
    assert last_of_500.json()["links"]["next"] is None
    assert (past.status_code, past_10000.status_code, too_big.status_code) == (400, 400, 400)
    assert past.json()["errors"][0]["code"] == "bad_request"


def test_freshdesk_import_lists_a_page_of_tickets_and_reads_conversations_only_of_the_kept_ones(
    freshdesk_connection: CrmConnection, freshdesk_sandbox: SandboxServer
) -> None:
    FreshdeskScenario(freshdesk_sandbox).seed()

    run = run_import(freshdesk_connection)

    stats = sandbox_stats(freshdesk_sandbox)["requests"]
    assert run.tickets_imported == 2
    assert stats[TICKETS] == 1
    assert stats[CONVERSATIONS] == 2
    assert stats["GET /api/v2/agents"] == 1


def test_freshdesk_import_lists_again_from_the_last_ticket_past_the_last_page(
    freshdesk_connection: CrmConnection, freshdesk_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Freshdesk lists 300 pages of tickets; here 1 page of 4, so six tickets take two or three lists.

    Three of them changed in the same second: a list started at that second reads them again.
    """
    FreshdeskScenario(freshdesk_sandbox).seed()
    monkeypatch.setattr(freshdesk, "PAGE_SIZE", 4)
    monkeypatch.setattr(freshdesk, "MAX_LIST_PAGES", 1)

    run = run_import(freshdesk_connection)

    assert run.status == ImportRun.Status.SUCCEEDED
    assert set(Ticket.objects.values_list("subject", flat=True)) == {SUBJECTS["refund"], SUBJECTS["chat"]}
    assert 7 <= run.tickets_fetched <= 10
    assert Ticket.objects.count() == 2


def test_the_sandbox_freshdesk_ticket_list_is_as_documented(
    freshdesk_sandbox: SandboxServer, freshdesk_api: requests.Session
) -> None:
    scenario = FreshdeskScenario(freshdesk_sandbox)
    scenario.seed()
    url = f"{freshdesk_sandbox.base_url}/api/v2/tickets"

    recent = freshdesk_api.get(url, timeout=10).json()
    since = {"updated_since": "2000-01-01T00:00:00Z", "order_by": "updated_at", "order_type": "asc"}
    embedded = freshdesk_api.get(url, params={**since, "include": "description,requester,stats"}, timeout=10)
    past = freshdesk_api.get(url, params={**since, "page": "301"}, timeout=10)

    # Without updated_since, only tickets created in the last 30 days (not the 100-day-old one).
    assert len(recent) == 5
    assert "description" not in recent[0]
    tickets = embedded.json()
    assert len(tickets) == 6
    assert [t["updated_at"] for t in tickets] == sorted(t["updated_at"] for t in tickets)
    refund = next(t for t in tickets if t["id"] == int(scenario.crm_id("refund")))
    assert refund["requester"]["email"] == "dana@example.net"
    assert refund["description_text"]
    assert refund["stats"]["resolved_at"]
    # Each embed costs two more credits.
    assert embedded.headers["X-RateLimit-Used-CurrentRequest"] == "7"
    assert past.status_code == 400
    assert past.json()["errors"][0]["field"] == "page"


def test_a_provider_declares_ticket_import_exactly_when_it_can_be_imported_from() -> None:
    for kind, provider in PROVIDERS.items():
        assert provider.can(Capability.TICKET_IMPORT) == issubclass(provider, TicketImportSource), kind


def test_the_schedule_imports_kustomer_and_freshdesk_connections(
    zendesk_connection: CrmConnection, kustomer_connection: CrmConnection, freshdesk_connection: CrmConnection
) -> None:
    assert connections_to_import() == sorted([zendesk_connection.pk, kustomer_connection.pk, freshdesk_connection.pk])


@pytest.mark.parametrize("kind", ["kustomer", "freshdesk"])
def test_import_now_is_offered_for_kustomer_and_freshdesk_connections(
    kind: str, admin_client: Client, request: pytest.FixtureRequest
) -> None:
    connection: CrmConnection = request.getfixturevalue(f"{kind}_connection")

    listing = admin_client.get("/admin/integrations/crmconnection/").content.decode()
    response = admin_client.post(
        "/admin/integrations/crmconnection/",
        {"action": "import_tickets_now", "_selected_action": [connection.pk]},
        follow=True,
    )

    assert "Import solved tickets now (QA search)" in listing
    assert "import queued" in response.content.decode()
