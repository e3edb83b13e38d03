"""Agent ids cached for every worker (issue 10): looked up once, refreshed when the CRM refuses a stale one."""

import pytest
import requests

from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from integrations.services import agent_id_cache, agent_id_find, connection_provider
from records.services.execution import session_run_actions
from tests.support import EXAMPLE_CALL, ingest_and_process, sandbox_stats

pytestmark = pytest.mark.django_db

USER_SEARCH = "GET /api/v2/users/search.json"


def user_searches(sandbox: SandboxServer) -> int:
    return int(sandbox_stats(sandbox)["requests"].get(USER_SEARCH, 0))


def test_an_agent_is_looked_up_in_the_crm_once_then_read_from_the_shared_cache(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    provider = connection_provider(zendesk_connection)
    before = user_searches(zendesk_sandbox)

    first = agent_id_find(provider, email="ana@example.com")
    second = agent_id_find(provider, email="Ana@Example.com ")

    assert first is not None
    assert second == first
    assert user_searches(zendesk_sandbox) - before == 1
    # fresh: the CRM is asked again (what a refused write does)
    assert agent_id_find(provider, email="ana@example.com", fresh=True) == first
    assert user_searches(zendesk_sandbox) - before == 2


def test_an_unknown_agent_is_not_cached(zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer) -> None:
    provider = connection_provider(zendesk_connection)
    before = user_searches(zendesk_sandbox)

    assert agent_id_find(provider, email="nobody@example.com") is None
    assert agent_id_find(provider, email="nobody@example.com") is None

    assert user_searches(zendesk_sandbox) - before == 2


def test_a_stale_cached_agent_id_refused_by_the_crm_is_refreshed_and_the_ticket_assigned(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    provider = connection_provider(zendesk_connection)
    ana = agent_id_find(provider, email="ana@example.com")
    assert ana is not None
    # given: the cache holds an id the CRM no longer has (the agent was deleted and made again)
    agent_id_cache().put(zendesk_sandbox.base_url, "ana@example.com", "999999")

    session = ingest_and_process(EXAMPLE_CALL["events"])
    session_run_actions(session_id=session.pk)

    [ticket] = zendesk_api.get(f"{zendesk_sandbox.base_url}/api/v2/tickets.json", params={"external_id": "c-1"}).json()[
        "tickets"
    ]
    assert str(ticket["assignee_id"]) == ana
    assert agent_id_cache().get(zendesk_sandbox.base_url, "ana@example.com") == ana
    assert not session.actions.exclude(status="succeeded").exists()
