"""Status sync against the sandbox Kustomer over loopback: statuses, webhook registration, user
matching and the push executor's retries."""

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from agentstatus.models import (
    Agent,
    CrmStatus,
    PlatformStatus,
    Source,
    StatusChange,
    StatusPush,
    StatusSyncSettings,
    SyncDirection,
)
from agentstatus.selectors import sync_settings_get
from agentstatus.services.changes import agent_status_set
from agentstatus.services.inbound import webhook_event_apply_pending
from agentstatus.services.push import status_push_execute
from agentstatus.services.setup import crm_statuses_refresh
from integrations.circuit import CIRCUIT_NOTE
from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from integrations.services import circuit_breaker
from records.models import Team
from tests.agentstatus.support import WEBHOOK_PATH, work_session_event
from tests.support import sandbox_config, sandbox_stats

pytestmark = pytest.mark.django_db

ANA = "5f0a00000000000000000011"
CARLA = "5f0a00000000000000000013"
# Kustomer status name -> platform status name; Email work and Lunch both mean Away.
BY_NAME = {"Available": "Available", "Busy": "Busy", "Email work": "Away", "Lunch": "Away", "Offline": "Offline"}


@pytest.fixture
def kustomer_sync(
    kustomer_connection: CrmConnection, platform_statuses: dict[str, PlatformStatus]
) -> StatusSyncSettings:
    """Inheritance on for the sandbox Kustomer, its statuses read from it and mapped by name."""
    settings = sync_settings_get()
    settings.inheritance_enabled = True
    settings.connection = kustomer_connection
    settings.set_webhook_secret("whsec-test-secret")
    settings.save()
    crm_statuses_refresh(settings=settings)
    for status in CrmStatus.objects.all():
        status.platform_status = platform_statuses[BY_NAME[status.name]]
        status.save(update_fields=["platform_status"])
    return settings


def crm_status_id(name: str) -> str:
    return CrmStatus.objects.get(name=name).crm_id


def sign_in(sandbox: SandboxServer, user: str, status: str) -> str:
    response = requests.post(
        f"{sandbox.base_url}/__sandbox/work-sessions", json={"user": user, "status": crm_status_id(status)}, timeout=5
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def session_status(kustomer_api: requests.Session, sandbox: SandboxServer, session_id: str) -> str:
    body = kustomer_api.get(f"{sandbox.base_url}/v1/routing/work-sessions/{session_id}", timeout=5).json()
    return str(body["data"]["attributes"]["status"])


def test_A1_refresh_reads_the_kustomer_statuses_and_keeps_the_mapping(
    kustomer_sync: StatusSyncSettings, platform_statuses: dict[str, PlatformStatus]
) -> None:
    assert list(CrmStatus.objects.order_by("position").values_list("name", "status_type")) == [
        ("Available", "available"),
        ("Busy", "busy"),
        ("Email work", "unavailable"),
        ("Lunch", "unavailable"),
        ("Offline", "offline"),
    ]

    result = crm_statuses_refresh(settings=kustomer_sync)

    assert (result.created, result.updated, result.gone) == (0, 5, 0)
    assert CrmStatus.objects.get(name="Lunch").platform_status == platform_statuses["Away"]


def test_admin_actions_refresh_statuses_and_register_the_webhook(
    kustomer_sync: StatusSyncSettings,
    kustomer_sandbox: SandboxServer,
    kustomer_api: requests.Session,
    client: Client,
    settings: object,
) -> None:
    settings.PUBLIC_BASE_URL = "https://bridge.example.com"  # type: ignore[attr-defined]
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    CrmStatus.objects.filter(name="Lunch").delete()

    refreshed = client.post(
        "/admin/agentstatus/statussyncsettings/",
        {"action": "refresh_statuses", "_selected_action": [kustomer_sync.pk]},
        follow=True,
    )
    registered = client.post(
        "/admin/agentstatus/statussyncsettings/",
        {"action": "register_webhook", "_selected_action": [kustomer_sync.pk]},
        follow=True,
    )

    assert "CRM statuses refreshed: 1 new, 4 updated, 0 no longer in the CRM." in refreshed.content.decode()
    assert "Status webhook registered for https://bridge.example.com/api/v1/agentstatus/webhooks/kustomer" in (
        registered.content.decode()
    )
    [hook] = kustomer_api.get(f"{kustomer_sandbox.base_url}/v1/outbound-webhooks", timeout=5).json()["data"]
    assert hook["attributes"]["url"] == "https://bridge.example.com/api/v1/agentstatus/webhooks/kustomer"
    assert set(hook["attributes"]["events"]) == {"kustomer.work-session.create", "kustomer.work-session.update"}
    kustomer_sync.refresh_from_db()
    assert kustomer_sync.webhook_secret == hook["attributes"]["token"]
    assert hook["attributes"]["token"] not in kustomer_sync.encrypted_webhook_secret


def post_signed(client: Client, envelope: dict, *, expect: int = 200) -> dict:
    from tests.agentstatus.support import signed_headers

    body = json.dumps(envelope).encode()
    response = client.post(WEBHOOK_PATH, data=body, content_type="application/json", headers=signed_headers(body))
    assert response.status_code == expect, response.content
    answer: dict = response.json()
    return answer


def test_A3_agents_are_matched_by_email_once_and_unknown_emails_are_recorded(
    kustomer_sync: StatusSyncSettings, kustomer_sandbox: SandboxServer, client: Client
) -> None:
    ana = Agent.objects.create(email="Ana@Example.com")
    sign_in_event = work_session_event(name="kustomer.work-session.create", user_id=ANA, status=crm_status_id("Busy"))

    # An unknown user id is answered at once (Kustomer waits a few seconds only) and looked up after.
    queued = post_signed(client, sign_in_event, expect=202)
    assert queued["outcome"] == "queued"
    assert sandbox_stats(kustomer_sandbox)["requests"].get("GET /v1/users/{id}") is None
    assert webhook_event_apply_pending(event_id=sign_in_event["id"]) is None
    applied = post_signed(client, work_session_event(user_id=ANA, status=crm_status_id("Lunch")))
    carla_event = work_session_event(user_id=CARLA, status=crm_status_id("Lunch"))
    post_signed(client, carla_event, expect=202)
    assert webhook_event_apply_pending(event_id=carla_event["id"]) is None

    ana.refresh_from_db()
    assert ana.crm_user_id == ANA
    assert (applied["outcome"], applied["platform_status"]) == ("applied", "Away")
    # The user id was resolved once, by the first event: the second asked Kustomer nothing.
    assert sandbox_stats(kustomer_sandbox)["requests"].get("GET /v1/users/{id}") == 2  # ana once, carla once
    unmatched = StatusChange.objects.get(agent__isnull=True)
    assert unmatched.reason == f"no agent has the email carla@example.com of CRM user {CARLA} (A3): ignored"
    assert (unmatched.agent_email, unmatched.crm_user_id, unmatched.applied) == ("carla@example.com", CARLA, False)


@pytest.fixture
def two_way_ana(kustomer_sync: StatusSyncSettings, kustomer_sandbox: SandboxServer) -> Agent:
    kustomer_sync.direction = SyncDirection.TWO_WAY
    kustomer_sync.save()
    team = Team.objects.create(name="Voice Support", linked_to_external_queue=True)
    return Agent.objects.create(email="ana@example.com", crm_user_id=ANA, team=team)


def push_for(agent: Agent, platform_statuses: dict[str, PlatformStatus], name: str = "Away") -> StatusPush:
    result = agent_status_set(agent=agent, platform_status=platform_statuses[name], source=Source.ADAPTER)
    assert result.push is not None, result.change.reason
    return result.push


def test_A4_a_push_sets_the_status_of_the_agents_kustomer_session(
    two_way_ana: Agent,
    kustomer_sandbox: SandboxServer,
    kustomer_api: requests.Session,
    platform_statuses: dict[str, PlatformStatus],
) -> None:
    session_id = sign_in(kustomer_sandbox, ANA, "Available")
    push = push_for(two_way_ana, platform_statuses)

    assert status_push_execute(push_id=push.pk) is None

    push.refresh_from_db()
    assert (push.state, push.attempts, push.crm_status.name) == (StatusPush.State.SUCCEEDED, 1, "Email work")
    assert session_status(kustomer_api, kustomer_sandbox, session_id) == crm_status_id("Email work")
    assert "pushed to the CRM as 'Email work'" in StatusChange.objects.get(agent=two_way_ana).reason


def test_A4_a_rate_limited_push_waits_without_spending_an_attempt(
    two_way_ana: Agent, kustomer_sandbox: SandboxServer, platform_statuses: dict[str, PlatformStatus]
) -> None:
    sign_in(kustomer_sandbox, ANA, "Available")
    push = push_for(two_way_ana, platform_statuses)
    sandbox_config(kustomer_sandbox, throttle_rate=1.0, retry_after_seconds=7)

    retry_in = status_push_execute(push_id=push.pk)

    push.refresh_from_db()
    assert retry_in is not None
    # Kustomer says when its window resets (x-ratelimit-reset): about 7 s here, plus up to 1 s of jitter.
    assert 5 <= retry_in <= 9
    assert (push.state, push.attempts) == (StatusPush.State.PENDING, 0)
    assert "429" in push.last_error
    # Not due yet: a second message for it does nothing.
    assert status_push_execute(push_id=push.pk) == pytest.approx(retry_in, abs=1)


def test_A4_a_failing_push_backs_off_then_fails_visibly_once_the_retry_budget_is_spent(
    two_way_ana: Agent, kustomer_sandbox: SandboxServer, platform_statuses: dict[str, PlatformStatus]
) -> None:
    sign_in(kustomer_sandbox, ANA, "Available")
    push = push_for(two_way_ana, platform_statuses)
    sandbox_config(kustomer_sandbox, fail_rate=1.0)

    delays = []
    for attempt in range(3):
        if attempt == 2:
            # The CRM has failed the push for longer than CRM_RETRY_BUDGET_SECONDS (a day).
            StatusPush.objects.filter(pk=push.pk).update(created_at=timezone.now() - timedelta(days=1, seconds=1))
        StatusPush.objects.filter(pk=push.pk).update(next_attempt_at=None)
        delays.append(status_push_execute(push_id=push.pk))

    push.refresh_from_db()
    assert delays[0] is not None
    assert delays[1] is not None
    assert delays[2] is None
    assert (push.state, push.attempts) == (StatusPush.State.FAILED, 3)
    assert push.last_error.startswith("gave up after 3 attempts")
    assert push.last_error.endswith("(the CRM kept failing for 1 day)")


@pytest.fixture
def open_circuit(settings: object, kustomer_connection: CrmConnection) -> Iterator[float]:
    """The sandbox Kustomer's circuit opened (three failures, as the workers would feed it); its cool-down."""
    settings.CRM_CIRCUIT_FAILURES = 3  # type: ignore[attr-defined]
    settings.CRM_CIRCUIT_COOL_DOWN_SECONDS = 30.0  # type: ignore[attr-defined]
    settings.CRM_CIRCUIT_MIN_RUN_SECONDS = 0  # type: ignore[attr-defined]
    circuit_breaker.cache_clear()
    for _ in range(3):
        circuit_breaker().record_failure(kustomer_connection.base_url)
    yield 30.0
    circuit_breaker().record_success(kustomer_connection.base_url)
    circuit_breaker.cache_clear()


def test_A4_an_open_circuit_pauses_a_push_without_an_attempt_or_budget(
    two_way_ana: Agent,
    kustomer_sandbox: SandboxServer,
    platform_statuses: dict[str, PlatformStatus],
    open_circuit: float,
) -> None:
    sign_in(kustomer_sandbox, ANA, "Available")
    push = push_for(two_way_ana, platform_statuses)
    before = sandbox_stats(kustomer_sandbox)["total"]

    retry_in = status_push_execute(push_id=push.pk)

    # then: nothing was sent; the push waits out the pause, its attempt given back, its budget clock stopped
    push.refresh_from_db()
    assert retry_in is not None
    assert open_circuit - 1 <= retry_in <= open_circuit + 1
    assert (push.state, push.attempts) == (StatusPush.State.PENDING, 0)
    assert push.last_error.endswith(CIRCUIT_NOTE)
    assert push.paused_seconds == pytest.approx(open_circuit, abs=1)
    assert sandbox_stats(kustomer_sandbox)["total"] == before


def test_A4_a_push_for_an_agent_signed_out_of_kustomer_fails_visibly(
    two_way_ana: Agent, platform_statuses: dict[str, PlatformStatus]
) -> None:
    push = push_for(two_way_ana, platform_statuses)

    status_push_execute(push_id=push.pk)

    push.refresh_from_db()
    assert push.state == StatusPush.State.FAILED
    assert "no active CRM session" in push.last_error


def test_A4_only_the_team_linked_to_the_external_queue_is_pushed(
    two_way_ana: Agent, platform_statuses: dict[str, PlatformStatus]
) -> None:
    Team.objects.update(linked_to_external_queue=False)
    two_way_ana.refresh_from_db()

    result = agent_status_set(agent=two_way_ana, platform_status=platform_statuses["Away"], source=Source.ADAPTER)

    assert result.push is None
    assert result.change.reason.endswith(
        "not pushed to the CRM: the agent's team is not linked to the CRM's external queue (A4)"
    )


def test_A4_a_later_change_supersedes_a_waiting_push(
    two_way_ana: Agent, platform_statuses: dict[str, PlatformStatus]
) -> None:
    first = push_for(two_way_ana, platform_statuses, "Away")
    StatusPush.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=1))

    second = push_for(two_way_ana, platform_statuses, "Busy")

    first.refresh_from_db()
    assert first.state == StatusPush.State.SUPERSEDED
    assert status_push_execute(push_id=first.pk) is None
    assert second.state == StatusPush.State.PENDING
