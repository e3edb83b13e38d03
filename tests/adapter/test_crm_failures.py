"""The adapter API when the CRM does not cooperate: a 5xx or 501 that says so, never a 500, nothing stored."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from agentstatus.models import Agent, AgentToken
from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from integrations.services import connection_activate
from records.models import Session
from tests.support import sandbox_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def adapter(db: None) -> APIClient:
    agent = Agent.objects.create(email="ben@example.com")
    _, key = AgentToken.objects.create_key(name="adapter", agent=agent)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Agent-Token {key}")
    return client


def test_a_rate_limited_crm_is_a_503_with_its_retry_after(
    adapter: APIClient, zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    sandbox_config(zendesk_sandbox, throttle_rate=1.0, retry_after_seconds=7)

    response: Any = adapter.post("/api/v1/adapter/outbound/prepare", {"phone_number": "+14155550100"}, format="json")

    assert response.status_code == 503
    assert response.json()["code"] == "crm_unavailable"
    assert int(response["Retry-After"]) >= 7


def test_no_crm_connection_is_a_503_saying_so(adapter: APIClient) -> None:
    response: Any = adapter.post("/api/v1/adapter/outbound/prepare", {"phone_number": "+14155550100"}, format="json")

    assert response.status_code == 503
    assert response.json()["code"] == "no_crm"


def test_a_crm_whose_provider_cannot_read_a_contact_yet_is_a_501(
    adapter: APIClient, salesforce_connection: CrmConnection
) -> None:
    # Salesforce finds contacts by phone and reads cases, but reading one contact by id (a click
    # to call from its contact card) is not built for it yet.
    connection_activate(connection=salesforce_connection)

    prepared: Any = adapter.post("/api/v1/adapter/outbound/prepare", {"contact_id": "003000000000001"}, format="json")

    assert prepared.status_code == 501
    assert prepared.json()["code"] == "crm_unsupported"
    assert not Session.objects.exists()
