"""The admin screens of status sync: settings, the mapping, agents with their audit trail, pushes."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from agentstatus.models import (
    Agent,
    AgentToken,
    CrmStatus,
    PlatformStatus,
    StatusChange,
    StatusPush,
    StatusSyncSettings,
)
from integrations.models import CrmConnection
from tests.agentstatus.support import WEBHOOK_SECRET, Deliver, work_session_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def test_settings_page_shows_the_toggles_and_never_the_secret(
    admin_client: Client, sync_settings: StatusSyncSettings
) -> None:
    response = admin_client.get(f"/admin/agentstatus/statussyncsettings/{sync_settings.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    for text in ("Status inheritance", "The latest change wins", "CRM always overrides", "Two-way", "Manage mapping"):
        assert text in html
    assert "/api/v1/agentstatus/webhooks/kustomer" in html
    assert WEBHOOK_SECRET not in html


def test_settings_save_keeps_the_secret_unless_one_is_pasted(
    admin_client: Client, sync_settings: StatusSyncSettings
) -> None:
    url = f"/admin/agentstatus/statussyncsettings/{sync_settings.pk}/change/"
    form = {
        "inheritance_enabled": "on",
        "priority": "crm_overrides",
        "direction": "two_way",
        "connection": str(sync_settings.connection_id),
        "webhook_secret": "",
    }

    admin_client.post(url, form)
    sync_settings.refresh_from_db()
    assert (sync_settings.priority, sync_settings.direction, sync_settings.webhook_secret) == (
        "crm_overrides",
        "two_way",
        WEBHOOK_SECRET,
    )

    admin_client.post(url, {**form, "webhook_secret": "pasted-by-hand"})
    sync_settings.refresh_from_db()
    assert sync_settings.webhook_secret == "pasted-by-hand"
    assert "pasted-by-hand" not in sync_settings.encrypted_webhook_secret


def test_A1_manage_mapping_screen_maps_any_crm_status_to_any_platform_status(
    admin_client: Client, mapping: dict[str, CrmStatus], platform_statuses: dict[str, PlatformStatus]
) -> None:
    # given: the changelist is the "Manage mapping" screen, each CRM status with a platform-status menu
    listing = admin_client.get("/admin/agentstatus/crmstatus/")
    html = listing.content.decode()
    assert "Manage mapping" in html
    rows = list(CrmStatus.objects.order_by("connection", "position", "name"))
    assert all(f'name="form-{i}-platform_status"' in html for i in range(len(rows)))

    # when: every status is mapped to Busy, Meeting included (many-to-one, no other restriction)
    busy = platform_statuses["Busy"]
    form = {"form-TOTAL_FORMS": str(len(rows)), "form-INITIAL_FORMS": str(len(rows)), "_save": "Save"}
    for i, row in enumerate(rows):
        form[f"form-{i}-id"] = str(row.pk)
        form[f"form-{i}-platform_status"] = str(busy.pk)
    response = admin_client.post("/admin/agentstatus/crmstatus/", form)

    # then
    assert response.status_code == 302
    assert set(CrmStatus.objects.values_list("platform_status__name", flat=True)) == {"Busy"}


def test_agent_page_shows_the_audit_trail_and_a_stopped_sync(
    admin_client: Client, ana: Agent, deliver: Deliver
) -> None:
    deliver(work_session_event(name="kustomer.work-session.create", session_id="ws-1", status="st-busy"))
    deliver(work_session_event(name="kustomer.work-session.create", session_id="ws-2", status="st-busy"))

    response = admin_client.get(f"/admin/agentstatus/agent/{ana.pk}/change/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Stopped" in html
    assert "Signed in to Kustomer in 2 places at once (ws-1, ws-2)" in html
    assert "no status is applied at login" in html
    assert "sync stopped:" in html
    listing = admin_client.get("/admin/agentstatus/agent/?sync=stopped").content.decode()
    assert "ana@example.com" in listing


def test_status_change_list_filters_by_source_and_outcome(admin_client: Client, ana: Agent, deliver: Deliver) -> None:
    deliver(work_session_event(name="kustomer.work-session.create", status="st-busy"))
    deliver(work_session_event(status="st-meeting"))

    ignored = admin_client.get("/admin/agentstatus/statuschange/?source__exact=crm&applied__exact=0").content.decode()

    assert "is not mapped to a platform status" in ignored
    assert "ana@example.com" in ignored


def test_admin_status_change_is_audited_as_admin(
    admin_client: Client, ana: Agent, platform_statuses: dict[str, PlatformStatus]
) -> None:
    form = {
        "email": ana.email,
        "name": ana.name,
        "team": "",
        "platform_status": str(platform_statuses["Away"].pk),
        "status_changes-TOTAL_FORMS": "0",
        "status_changes-INITIAL_FORMS": "0",
    }

    response = admin_client.post(f"/admin/agentstatus/agent/{ana.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[:2000]
    ana.refresh_from_db()
    assert (ana.platform_status, ana.status_source) == (platform_statuses["Away"], "admin")
    change = StatusChange.objects.get(agent=ana)
    assert (change.source, change.applied, change.from_status, change.to_status) == (
        "admin",
        True,
        None,
        platform_statuses["Away"],
    )


def test_issue_adapter_token_shows_it_once_and_it_works(admin_client: Client, ana: Agent) -> None:
    response = admin_client.post(
        "/admin/agentstatus/agent/", {"action": "issue_adapter_token", "_selected_action": [ana.pk]}, follow=True
    )

    found = re.search(r"Adapter token for ana@example.com: (\S+) ", response.content.decode())
    assert found is not None
    key = found.group(1)
    assert AgentToken.objects.get_from_key(key).agent_id == ana.pk  # type: ignore[attr-defined]
    again = admin_client.get("/admin/agentstatus/agent/").content.decode()
    assert key not in again


def test_resume_sync_action_forgets_the_instances(admin_client: Client, ana: Agent, deliver: Deliver) -> None:
    for session in ("ws-1", "ws-2"):
        deliver(work_session_event(name="kustomer.work-session.create", session_id=session, status="st-busy"))

    admin_client.post("/admin/agentstatus/agent/", {"action": "resume_sync", "_selected_action": [ana.pk]})

    ana.refresh_from_db()
    assert (ana.sync_stopped, ana.work_sessions) == (False, {})
    assert StatusChange.objects.filter(agent=ana, source="admin", reason__contains="ws-1, ws-2").exists()


def test_push_list_shows_attempts_and_errors_and_retries(
    admin_client: Client, ana: Agent, mapping: dict[str, CrmStatus], platform_statuses: dict[str, PlatformStatus]
) -> None:
    push = StatusPush.objects.create(
        agent=ana,
        platform_status=platform_statuses["Away"],
        crm_status=mapping["st-lunch"],
        state=StatusPush.State.FAILED,
        attempts=8,
        last_error="gave up after 8 attempts: 503",
    )

    listing = admin_client.get("/admin/agentstatus/statuspush/?state__exact=failed").content.decode()
    response = admin_client.post(
        "/admin/agentstatus/statuspush/", {"action": "retry", "_selected_action": [push.pk]}, follow=True
    )

    assert "gave up after 8 attempts: 503" in listing
    assert "1 push(es) queued to run again." in response.content.decode()
    push.refresh_from_db()
    assert push.state == StatusPush.State.PENDING


def test_status_inheritance_is_refused_against_a_crm_without_user_statuses(
    admin_client: Client, sync_settings: StatusSyncSettings, zendesk_connection: CrmConnection
) -> None:
    url = f"/admin/agentstatus/statussyncsettings/{sync_settings.pk}/change/"
    form = {"inheritance_enabled": "on", "priority": "crm_overrides", "direction": "one_way", "connection": ""}
    sync_settings.connection = None
    sync_settings.save()

    response = admin_client.post(url, form)

    html = response.content.decode()
    assert response.status_code == 200
    assert "has no user statuses to inherit: choose a connection whose CRM has them (Kustomer)." in html
    # The connection list offers only CRMs with user statuses.
    assert f'value="{zendesk_connection.pk}"' not in html
    sync_settings.refresh_from_db()
    assert sync_settings.priority == "latest_change_wins"


def test_agent_page_names_the_crm_status_of_each_active_instance(
    admin_client: Client, kustomer_connection: CrmConnection
) -> None:
    status = CrmStatus.objects.create(connection=kustomer_connection, crm_id="rs-busy", name="On a break")
    agent = Agent.objects.create(email="ana@example.com", work_sessions={"ws-1": status.crm_id, "ws-2": "rs-unknown"})

    html = admin_client.get(f"/admin/agentstatus/agent/{agent.pk}/change/").content.decode()

    assert "ws-1 (On a break)" in html
    assert "ws-2 (status rs-unknown)" in html
