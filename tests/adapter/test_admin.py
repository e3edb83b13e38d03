"""The admin screens of the outbound settings (O1, O3) and the screen pops (O4)."""

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.forms.models import model_to_dict
from django.test import Client

from integrations.models import CrmConnection
from records.models import OperationSettings, Queue, ScreenPop, Session, Team

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/admin/records/operationsettings/1/change/"


@pytest.fixture
def admin_client(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def settings_form(**changes: Any) -> dict[str, Any]:
    values = model_to_dict(OperationSettings.load(), exclude=["id", "updated_at"])
    values.update(changes)
    return {key: value for key, value in values.items() if value is not False}


def test_outbound_settings_are_one_section_with_plain_labels_and_the_recordings_warning(admin_client: Client) -> None:
    OperationSettings.load()

    html = admin_client.get(SETTINGS_URL).content.decode()

    assert "Outbound calls" in html
    assert "Prompt the agent to choose an open record from a list" in html
    assert "Allow the agent to choose &quot;Create new record&quot; for outbound calls" in html
    assert "Allow the agent to choose &quot;Do not create a record&quot; for outbound calls" in html
    assert "recordings of calls without a record cannot be reached" in html
    assert "Allow &quot;Use the entered number to make the call&quot;" in html
    assert "Outbound ticket settings" in html
    assert "Contact field with the number to dial" in html


def test_outbound_settings_save_and_warn_about_recordings(admin_client: Client) -> None:
    response = admin_client.post(
        SETTINGS_URL,
        settings_form(
            outbound_prompt_record_choice=True,
            outbound_allow_create_new=True,
            outbound_allow_no_record=True,
            outbound_allow_entered_number=True,
            outbound_ticket_phone_field="site_phone",
        ),
        follow=True,
    )

    assert response.status_code == 200
    saved = OperationSettings.load()
    assert saved.outbound_prompt_record_choice
    assert saved.outbound_allow_create_new
    assert saved.outbound_allow_no_record
    assert saved.outbound_allow_entered_number
    assert saved.outbound_ticket_phone_field == "site_phone"
    assert "the recordings of those calls cannot be reached" in response.content.decode()


def test_create_new_needs_the_prompt_and_nothing_is_saved_without_it(admin_client: Client) -> None:
    response = admin_client.post(SETTINGS_URL, settings_form(outbound_allow_create_new=True, closed_within_days=9))

    assert response.status_code == 200
    assert "is offered only when the agent is prompted to choose" in response.content.decode()
    saved = OperationSettings.load()
    assert saved.outbound_allow_create_new is False
    assert saved.closed_within_days == 3


def test_team_screen_sets_ticket_id_entry_and_shows_its_queues_numbers(admin_client: Client) -> None:
    team = Team.objects.create(name="Escalations")
    queue = Queue.objects.create(platform_id="q-esc", name="Escalations", default_outbound_number="+18005550199")
    queue.teams.add(team)

    refused = admin_client.post(
        f"/admin/records/team/{team.pk}/change/", {"name": "Escalations", "ticket_id_required": "on"}
    )
    assert refused.status_code == 200
    assert "Turn ticket ID on first" in refused.content.decode()

    saved = admin_client.post(
        f"/admin/records/team/{team.pk}/change/",
        {"name": "Escalations", "enable_ticket_id": "on", "ticket_id_required": "on"},
    )
    assert saved.status_code == 302
    team.refresh_from_db()
    assert team.enable_ticket_id
    assert team.ticket_id_required
    assert "Escalations (+18005550199)" in admin_client.get("/admin/records/team/").content.decode()


def test_screen_pops_list_links_the_record_into_the_crm(
    admin_client: Client, zendesk_connection: CrmConnection
) -> None:
    session = Session.objects.create(external_id="c-1", crm_connection=zendesk_connection, crm_record_id="5")
    ScreenPop.objects.create(
        session=session,
        agent_email="ana@example.com",
        record_id="5",
        record_url="https://acme.zendesk.com/agent/tickets/5",
    )

    html = admin_client.get("/admin/records/screenpop/").content.decode()

    assert 'href="https://acme.zendesk.com/agent/tickets/5"' in html
    assert "ana@example.com" in html


def test_outbound_settings_travel_in_the_configuration_file() -> None:
    from records.services.config_io import ConfigError, config_export, config_validate

    OperationSettings.objects.create(outbound_prompt_record_choice=True, outbound_ticket_phone_field="site_phone")
    exported = config_export()["settings"]
    assert exported["outbound_prompt_record_choice"] is True
    assert exported["outbound_ticket_phone_field"] == "site_phone"
    assert {"outbound_allow_create_new", "outbound_allow_no_record", "outbound_allow_entered_number"} <= set(exported)

    with pytest.raises(ConfigError) as refused:
        config_validate({"version": 1, "settings": {"outbound_allow_create_new": True}}, connection_names=[])
    assert any(error.startswith("settings.outbound_allow_create_new:") for error in refused.value.errors)
