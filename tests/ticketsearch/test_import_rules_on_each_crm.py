"""Every T1-T2 import rule on each of the four CRMs, through its sandbox over loopback HTTP.

The same data set (tests/ticketsearch/scenarios.py) is seeded into each CRM in its own shapes, and
each test reads the outcome from the product's database.
"""

import pytest

from integrations.exceptions import CrmRateLimited
from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from tests.support import sandbox_config
from tests.ticketsearch.scenarios import (
    AGENT_REPLY,
    CHAT_ANSWER,
    CUSTOMER_MESSAGE,
    SCENARIOS,
    SUBJECTS,
    SYSTEM_ENTRY,
    Scenario,
)
from tests.ticketsearch.support import DANA_PHONE
from ticketsearch.models import Agent, AgentOrigin, ImportRun, Ticket
from ticketsearch.services.importing import tickets_import

pytestmark = pytest.mark.django_db

CRMS = sorted(SCENARIOS)


def run_import(connection: CrmConnection) -> ImportRun:
    return tickets_import(connection=connection, trigger=ImportRun.Trigger.COMMAND)


@pytest.fixture(params=CRMS)
def crm(request: pytest.FixtureRequest) -> tuple[Scenario, CrmConnection]:
    """A CRM's connection, its sandbox seeded with the data set."""
    kind = request.param
    sandbox: SandboxServer = request.getfixturevalue(f"{kind}_sandbox")
    connection: CrmConnection = request.getfixturevalue(f"{kind}_connection")
    scenario = SCENARIOS[kind](sandbox)
    scenario.seed()
    return scenario, connection


def subjects(connection: CrmConnection) -> set[str]:
    return set(Ticket.objects.filter(connection=connection).values_list("subject", flat=True))


def test_T1_only_agents_with_first_and_last_name_and_an_email_are_imported(
    crm: tuple[Scenario, CrmConnection],
) -> None:
    scenario, connection = crm

    run = run_import(connection)

    zoe = Agent.objects.get(email="zoe@example.com")
    assert (zoe.first_name, zoe.last_name, zoe.crm_user_id, zoe.origin) == ("Zoe", "Quality", scenario.zoe, "crm")
    assert not Agent.objects.filter(email__in=["mono@example.com", "zed@example.com"]).exists()
    assert run.skipped["user_missing_first_or_last_name"] == 1
    assert run.skipped["user_email_as_name"] == 1
    assert run.skipped.get("user_missing_email", 0) == (1 if scenario.agent_without_email else 0)
    # Customers (Dana) are never agents.
    assert not Agent.objects.filter(email="dana@example.net").exists()


def test_T2_only_solved_tickets_of_imported_agents_within_90_days_are_imported(
    crm: tuple[Scenario, CrmConnection],
) -> None:
    _, connection = crm

    run = run_import(connection)

    assert subjects(connection) == {SUBJECTS["refund"], SUBJECTS["chat"]}
    assert (run.tickets_fetched, run.tickets_imported) == (6, 2)
    assert run.skipped["ticket_not_solved"] == 1
    # T1: the agent was not created (no email, or one name), so their ticket is not imported.
    assert run.skipped["ticket_agent_not_imported"] == 1
    assert run.skipped["ticket_without_agent"] == 1
    assert run.skipped["ticket_older_than_90_days"] == 1


def test_T2_only_interactions_carrying_user_information_are_imported(crm: tuple[Scenario, CrmConnection]) -> None:
    scenario, connection = crm

    run = run_import(connection)

    refund = Ticket.objects.get(connection=connection, subject=SUBJECTS["refund"])
    bodies = [comment["body"] for comment in refund.comments]
    assert bodies.index(CUSTOMER_MESSAGE) < bodies.index(AGENT_REPLY)
    assert SYSTEM_ENTRY not in bodies
    assert SYSTEM_ENTRY not in refund.comments_text
    assert run.comments_skipped == (1 if scenario.entry_without_user else 0)
    assert all(comment["author_id"] for comment in refund.comments)
    assert (refund.channel, refund.status) == ("voice", scenario.status_words["refund"])
    assert (refund.requester_email, refund.requester_phone) == ("dana@example.net", DANA_PHONE)
    assert refund.agent is not None
    assert refund.agent.email == "zoe@example.com"
    assert refund.crm_ticket_id == scenario.crm_id("refund")
    assert refund.crm_url.endswith(scenario.web_url_suffix("refund"))
    chat = Ticket.objects.get(connection=connection, subject=SUBJECTS["chat"])
    assert (chat.channel, chat.status) == ("chat", scenario.status_words["chat"])
    assert CHAT_ANSWER in [comment["body"] for comment in chat.comments]
    if scenario.kind != "salesforce":  # Salesforce has no tags
        assert refund.tags == ["vip", "billing"]


def test_T2_a_second_run_reads_only_what_changed_and_never_duplicates(crm: tuple[Scenario, CrmConnection]) -> None:
    scenario, connection = crm
    run_import(connection)

    second = run_import(connection)

    # The cursor's own last change may be read again (`>=` it); nothing is stored twice.
    assert second.tickets_fetched <= 1
    assert (second.tickets_imported, second.tickets_updated) == (0, 0)
    # The open ticket is solved in the CRM: the next run reads it (and the cursor's) and imports it.
    scenario.set_solved("open", True)
    third = run_import(connection)

    assert third.tickets_imported == 1
    assert 1 <= third.tickets_fetched <= 2
    assert subjects(connection) == {SUBJECTS["refund"], SUBJECTS["chat"], SUBJECTS["open"]}
    assert Ticket.objects.filter(connection=connection).count() == 3


def test_T2_a_changed_ticket_is_updated_in_place_and_a_reopened_one_leaves_the_search(
    crm: tuple[Scenario, CrmConnection],
) -> None:
    scenario, connection = crm
    run_import(connection)

    scenario.rename("refund", "Refund (router)")
    updated = run_import(connection)
    scenario.set_solved("refund", False)
    reopened = run_import(connection)

    assert (updated.tickets_imported, updated.tickets_updated) == (0, 1)
    assert reopened.tickets_removed == 1
    assert subjects(connection) == {SUBJECTS["chat"]}


def test_T1_a_user_made_by_another_channel_is_linked_once_then_not_reimported(
    crm: tuple[Scenario, CrmConnection],
) -> None:
    scenario, connection = crm
    Agent.objects.create(
        email="Zoe@Example.com", first_name="Z", last_name="Recorder", origin=AgentOrigin.OTHER_CHANNEL
    )

    first = run_import(connection)
    zoe = Agent.objects.get(email__iexact="zoe@example.com")
    assert (zoe.first_name, zoe.last_name, zoe.crm_user_id) == ("Zoe", "Quality", scenario.zoe)
    assert zoe.linked_at is not None
    assert first.users_updated == 1
    Agent.objects.filter(pk=zoe.pk).update(last_name="Changed by the QA team")

    second = run_import(connection)

    zoe.refresh_from_db()
    assert zoe.last_name == "Changed by the QA team"
    assert second.skipped["user_created_by_other_channel"] == 1
    # Still the agent of her tickets: they are imported.
    assert Ticket.objects.filter(agent=zoe).count() == 2


# Zoe, and the demo fixture's agents ana, ben and carla where the CRM's fixture has them too.
@pytest.mark.parametrize(("kind", "duplicates"), [("kustomer", 4), ("freshdesk", 4), ("salesforce", 1)])
def test_T1_email_is_unique_across_crms_and_inactive_users(
    kind: str, duplicates: int, zendesk_connection: CrmConnection, request: pytest.FixtureRequest
) -> None:
    """Zendesk's demo agents are imported first; the same emails in another CRM are skipped."""
    scenario = SCENARIOS[kind](request.getfixturevalue(f"{kind}_sandbox"))
    connection: CrmConnection = request.getfixturevalue(f"{kind}_connection")
    scenario.seed()
    SCENARIOS["zendesk"](request.getfixturevalue("zendesk_sandbox")).seed()
    run_import(zendesk_connection)
    Agent.objects.filter(email="zoe@example.com").update(is_active=False)

    run = run_import(connection)

    assert run.skipped["user_duplicate_email"] == duplicates
    assert not Agent.objects.filter(connection=connection).exists()
    # The duplicate agent's tickets are not imported either.
    assert not Ticket.objects.filter(connection=connection).exists()


def test_a_rate_limited_import_fails_visibly_and_keeps_what_it_saved(crm: tuple[Scenario, CrmConnection]) -> None:
    scenario, connection = crm
    sandbox_config(scenario.sandbox, throttle_rate=1.0)

    with pytest.raises(CrmRateLimited):
        run_import(connection)

    run = ImportRun.objects.get(connection=connection)
    assert run.status == ImportRun.Status.FAILED
    assert run.error
