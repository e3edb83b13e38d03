"""The Salesforce provider against the sandbox Salesforce over loopback HTTP."""

from datetime import UTC, datetime, timedelta

import pytest
import requests

from integrations.exceptions import CrmAuthError, CrmRateLimited, CrmUnsupported
from integrations.providers.base import ConnectionSettings
from integrations.providers.salesforce import SalesforceProvider, soql_string
from integrations.sandbox import SandboxServer
from integrations.sandbox.salesforce import SANDBOX_LOGIN
from tests.support import sandbox_config, sandbox_stats

SINCE = datetime.now(UTC) - timedelta(days=100)


def provider_for(sandbox: SandboxServer, **config: str) -> SalesforceProvider:
    settings = ConnectionSettings(
        kind="salesforce",
        base_url=sandbox.base_url,
        config={"client_id": "c", **config},
        secrets={"client_secret": "s", "password": "pw"},
        timeout=5,
    )
    return SalesforceProvider(settings)


@pytest.fixture
def salesforce(salesforce_sandbox: SandboxServer) -> SalesforceProvider:
    return provider_for(salesforce_sandbox)


def test_test_connection_logs_in_with_client_credentials(salesforce: SalesforceProvider) -> None:
    salesforce.test_connection()


def test_password_flow_is_used_when_a_username_is_configured(salesforce_sandbox: SandboxServer) -> None:
    username, password, security_token = SANDBOX_LOGIN
    settings = ConnectionSettings(
        kind="salesforce",
        base_url=salesforce_sandbox.base_url,
        config={"client_id": "c", "username": username},
        secrets={"client_secret": "s", "password": password, "security_token": security_token},
        timeout=5,
    )

    SalesforceProvider(settings).test_connection()


def test_bad_credentials_are_an_auth_error(salesforce_sandbox: SandboxServer) -> None:
    settings = ConnectionSettings(kind="salesforce", base_url=salesforce_sandbox.base_url, config={}, secrets={})

    with pytest.raises(CrmAuthError):
        SalesforceProvider(settings).test_connection()


def test_an_expired_token_is_refreshed_once(salesforce: SalesforceProvider, salesforce_sandbox: SandboxServer) -> None:
    salesforce.test_connection()
    requests.post(f"{salesforce_sandbox.base_url}/__sandbox/expire_tokens", timeout=5)

    salesforce.test_connection()

    assert sandbox_stats(salesforce_sandbox)["requests"]["POST /services/oauth2/token"] == 2


def test_request_limit_exceeded_is_rate_limited(
    salesforce: SalesforceProvider, salesforce_sandbox: SandboxServer
) -> None:
    salesforce.test_connection()
    sandbox_config(salesforce_sandbox, throttle_rate=1.0)

    with pytest.raises(CrmRateLimited) as caught:
        salesforce.test_connection()

    assert caught.value.retry_after > 0


def test_iter_tickets_follows_next_records_url_and_keeps_a_cursor(
    salesforce: SalesforceProvider, salesforce_sandbox: SandboxServer
) -> None:
    requests.post(f"{salesforce_sandbox.base_url}/__sandbox/seed", json={"count": 2100, "seed": 7}, timeout=30)

    pages = list(salesforce.iter_tickets(cursor=None, since=SINCE))

    assert [len(page.items) for page in pages] == [2000, 100]
    assert pages[0].total == 2100
    assert pages[-1].cursor >= pages[0].cursor
    assert all(ticket.web_url.endswith("/view") for ticket in pages[0].items)


def test_find_agent_escapes_the_email(salesforce: SalesforceProvider, salesforce_sandbox: SandboxServer) -> None:
    requests.post(f"{salesforce_sandbox.base_url}/__sandbox/seed", json={"users": [
        {"FirstName": "Sam", "LastName": "Force", "Email": "sam@example.com"}]}, timeout=5)  # fmt: skip

    agent = salesforce.find_agent(email="sam@example.com")

    assert agent is not None
    assert agent.name == "Sam Force"
    assert salesforce.find_agent(email="x' OR Email != '") is None
    assert soql_string("it's \\ here") == "'it\\'s \\\\ here'"


def test_record_methods_not_yet_used_by_the_salesforce_flow_raise_a_typed_error(salesforce: SalesforceProvider) -> None:
    with pytest.raises(CrmUnsupported):
        salesforce.find_contacts(phone="+15551234567")
