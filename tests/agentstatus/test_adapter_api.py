"""The adapter's status endpoint (A5): per-agent token, read and set, and what the CRM overrides."""

import pytest
from rest_framework.test import APIClient

from agentstatus.models import Agent, AgentToken, PlatformStatus, Priority, StatusChange, StatusSyncSettings
from agentstatus.services.setup import adapter_token_issue

pytestmark = pytest.mark.django_db
URL = "/api/v1/adapter/status"


@pytest.fixture
def token(ana: Agent) -> str:
    return adapter_token_issue(agent=ana)


@pytest.fixture
def adapter(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Agent-Token {token}")
    return client


@pytest.mark.parametrize("header", [None, "Agent-Token ", "Agent-Token nope.nope", "Api-Key x", "Bearer x"])
@pytest.mark.parametrize("method", ["get", "put"])
def test_A5_unauthenticated_adapter_calls_are_refused(ana: Agent, header: str | None, method: str) -> None:
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)

    response = getattr(client, method)(URL, {"status": "Busy"}, format="json")

    assert response.status_code in (401, 403)
    assert "message" in response.json()
    ana.refresh_from_db()
    assert ana.platform_status is None
    assert not StatusChange.objects.exists()


def test_A5_a_revoked_token_no_longer_works(ana: Agent, token: str) -> None:
    adapter_token_issue(agent=ana)  # the new token revokes the old one
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Agent-Token {token}")

    assert client.get(URL).status_code == 401
    assert AgentToken.objects.filter(agent=ana, revoked=False).count() == 1


def test_A5_the_agent_reads_their_status(adapter: APIClient, platform_statuses: dict[str, PlatformStatus]) -> None:
    response = adapter.get(URL)

    assert response.status_code == 200
    assert response.json() == {
        "agent": "ana@example.com",
        "status": None,
        "status_source": "",
        "changed_at": None,
        "crm_overrides": False,
        "sync_stopped": False,
        "sync_stopped_reason": None,
        "statuses": [{"id": s.pk, "name": s.name} for s in platform_statuses.values()],
    }


@pytest.mark.parametrize("value", ["Away", "away", " AWAY "])
def test_A5_the_agent_sets_their_status_by_name(adapter: APIClient, ana: Agent, value: str) -> None:
    response = adapter.put(URL, {"status": value}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["status"]["name"], body["status_source"]) == ("Away", "adapter")
    change = StatusChange.objects.get(agent=ana)
    assert (change.source, change.applied, change.to_status.name if change.to_status else None) == (
        "adapter",
        True,
        "Away",
    )
    assert change.reason == "set on the platform; not pushed to the CRM: one-way sync"


def test_A5_the_agent_sets_their_status_by_id(adapter: APIClient, platform_statuses: dict[str, PlatformStatus]) -> None:
    response = adapter.put(URL, {"status": str(platform_statuses["Busy"].pk)}, format="json")

    assert response.json()["status"]["name"] == "Busy"


@pytest.mark.parametrize(
    ("body", "message_part"),
    [
        ({}, "This field is required."),
        ({"status": "Dancing"}, "Unknown platform status 'Dancing'; one of: Available, Busy, Away, Offline."),
        ({"status": ""}, "This field may not be blank."),
        ({"status": ["Busy"]}, "Not a valid string."),
    ],
)
def test_A5_a_bad_status_is_a_400_naming_the_field(
    adapter: APIClient, ana: Agent, body: dict, message_part: str
) -> None:
    response = adapter.put(URL, body, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["status"] == [message_part]
    assert not StatusChange.objects.exists()


def test_A5_a_body_that_is_not_json_is_a_400(adapter: APIClient) -> None:
    response = adapter.put(URL, data="{nope", content_type="application/json")

    assert response.status_code == 400
    assert "JSON" in response.json()["message"]


@pytest.mark.parametrize(
    ("priority", "inheritance", "stopped", "expected"),
    [
        (Priority.CRM_OVERRIDES, True, False, True),
        (Priority.CRM_OVERRIDES, True, True, False),
        (Priority.CRM_OVERRIDES, False, False, False),
        (Priority.LATEST_CHANGE_WINS, True, False, False),
    ],
)
def test_A5_the_answer_says_whether_the_crm_currently_overrides(
    adapter: APIClient,
    ana: Agent,
    sync_settings: StatusSyncSettings,
    priority: str,
    inheritance: bool,
    stopped: bool,
    expected: bool,
) -> None:
    sync_settings.priority = priority
    sync_settings.inheritance_enabled = inheritance
    sync_settings.save()
    Agent.objects.filter(pk=ana.pk).update(sync_stopped=stopped, work_sessions={"a": "x", "b": "y"} if stopped else {})

    answer = adapter.put(URL, {"status": "Busy"}, format="json").json()

    assert answer["crm_overrides"] is expected
    assert answer["status"]["name"] == "Busy"
