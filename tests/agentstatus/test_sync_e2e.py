"""Status sync end to end: the sandbox Kustomer delivers signed webhooks to the product over real
HTTP, the adapter calls the product over real HTTP, and a real Celery worker pushes to Kustomer."""

from typing import Any

import pytest
import requests

from agentstatus.models import Agent, CrmStatus, PlatformStatus, StatusChange, StatusPush, StatusSyncSettings
from agentstatus.selectors import sync_settings_get
from agentstatus.services.setup import adapter_token_issue, crm_statuses_refresh, status_webhook_register
from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from records.models import Team
from tests.support import sandbox_stats, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

ANA = "5f0a00000000000000000011"
BY_NAME = {"Available": "Available", "Busy": "Busy", "Email work": "Away", "Lunch": "Away", "Offline": "Offline"}


@pytest.fixture
def synced(
    live_server: Any,
    settings: Any,
    kustomer_connection: CrmConnection,
    kustomer_sandbox: SandboxServer,
) -> StatusSyncSettings:
    """Two-way sync with the sandbox Kustomer, its webhook registered at the live server."""
    settings.PUBLIC_BASE_URL = live_server.url
    statuses = {
        name: PlatformStatus.objects.create(name=name, position=i)
        for i, name in enumerate(dict.fromkeys(BY_NAME.values()))
    }
    sync = sync_settings_get()
    sync.inheritance_enabled = True
    sync.direction = "two_way"
    sync.connection = kustomer_connection
    sync.save()
    crm_statuses_refresh(settings=sync)
    for status in CrmStatus.objects.all():
        status.platform_status = statuses[BY_NAME[status.name]]
        status.save(update_fields=["platform_status"])
    status_webhook_register(settings=sync)
    return sync


def control(sandbox: SandboxServer, path: str, body: dict) -> dict:
    response = requests.post(f"{sandbox.base_url}/__sandbox/{path}", json=body, timeout=5)
    assert response.status_code in (200, 201), response.text
    data: dict = response.json()["data"]
    return data


def crm_id(name: str) -> str:
    return CrmStatus.objects.get(name=name).crm_id


def platform_status(agent: Agent) -> str | None:
    agent.refresh_from_db()
    return agent.platform_status.name if agent.platform_status else None


def crm_status_puts(sandbox: SandboxServer) -> int:
    return int(sandbox_stats(sandbox)["requests"].get("PUT /v1/routing/work-sessions/{id}", 0))


def test_A2_A4_kustomer_drives_the_platform_and_adapter_changes_go_back_without_an_echo_loop(
    synced: StatusSyncSettings, kustomer_sandbox: SandboxServer, live_server: Any
) -> None:
    ana = Agent.objects.create(
        email="ana@example.com", team=Team.objects.create(name="Voice", linked_to_external_queue=True)
    )
    adapter = requests.Session()
    adapter.headers["Authorization"] = f"Agent-Token {adapter_token_issue(agent=ana)}"

    # given: ana signs in to Kustomer (nothing applied at login), then picks Lunch there
    session = control(kustomer_sandbox, "work-sessions", {"user": ANA, "status": crm_id("Available")})
    wait_until(lambda: Agent.objects.get(pk=ana.pk).work_sessions, message="the sign-in webhook")
    assert platform_status(ana) is None
    control(kustomer_sandbox, f"work-sessions/{session['id']}", {"status": crm_id("Lunch")})

    # then: the platform status follows at once (matched by email, mapped Lunch → Away)
    wait_until(lambda: platform_status(ana) == "Away", message="Lunch to become Away")
    assert ana.crm_user_id == ANA

    # when: ana sets Busy in the adapter
    answer = adapter.put(f"{live_server.url}/api/v1/adapter/status", json={"status": "Busy"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"]["name"] == "Busy"

    # then: the worker pushes it to Kustomer, whose webhook comes back and is recognised as the echo
    push = wait_until(
        lambda: StatusPush.objects.filter(agent=ana, echo_seen_at__isnull=False).first(), message="the push's echo"
    )
    assert push.state == StatusPush.State.SUCCEEDED
    assert crm_status_puts(kustomer_sandbox) == 1
    echo = StatusChange.objects.get(agent=ana, reason=f"the echo of our push #{push.pk}: not applied again")
    assert (echo.source, echo.applied) == ("crm", False)
    assert platform_status(ana) == "Busy"
    assert ana.status_source == "adapter"

    # when: ana changes status in Kustomer again
    control(kustomer_sandbox, f"work-sessions/{session['id']}", {"status": crm_id("Email work")})

    # then: it applies, and a change that came from the CRM is never pushed back
    wait_until(lambda: platform_status(ana) == "Away", message="Email work to become Away")
    assert kustomer_sandbox.sandbox.wait_for_deliveries(5)  # type: ignore[attr-defined]
    assert StatusPush.objects.filter(agent=ana).count() == 1
    assert crm_status_puts(kustomer_sandbox) == 1
    assert list(
        StatusChange.objects.filter(agent=ana, applied=True).order_by("id").values_list("source", flat=True)
    ) == [
        "crm",
        "adapter",
        "crm",
    ]
