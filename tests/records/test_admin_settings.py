"""The admin screens where the record rules are set: operation management, queues, teams, fields."""

from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.forms.models import model_to_dict
from django.test import Client

from integrations.exceptions import CrmUnsupported
from integrations.models import CrmConnection
from integrations.providers.base import Capability
from integrations.providers.freshdesk import FreshdeskProvider
from integrations.providers.registry import PROVIDERS
from records.admin import TITLE_VARIABLE_HELP
from records.models import CustomDataMapping, CustomField, OperationSettings, Queue, Team
from records.rules import TITLE_VARIABLES
from records.services.custom_fields import custom_fields_create_enqueue
from records.vocabulary import RECORD_FIELDS

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/admin/records/operationsettings/1/change/"


@pytest.fixture
def admin_client(db: None) -> Client:
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def settings_form(**changes: Any) -> dict[str, Any]:
    """The settings screen's form as the browser posts it: current values, then the changes."""
    values = model_to_dict(OperationSettings.load(), exclude=["id", "updated_at"])
    values.update(changes)
    # An unticked checkbox is simply absent from the post.
    return {key: value for key, value in values.items() if value is not False}


def test_settings_list_goes_to_the_one_settings_row_creating_it(admin_client: Client) -> None:
    assert not OperationSettings.objects.exists()

    response = admin_client.get("/admin/records/operationsettings/")

    assert response.status_code == 302
    assert response["Location"] == SETTINGS_URL
    assert OperationSettings.objects.count() == 1


def test_settings_screen_groups_the_rules_and_lists_the_title_variables(admin_client: Client) -> None:
    OperationSettings.load()

    response = admin_client.get(SETTINGS_URL)

    html = response.content.decode()
    assert response.status_code == 200
    # Plain headings; the descriptions and help texts cite the rules.
    for heading in (
        "Appending sessions to existing records",
        "When records are created",
        "Abandoned sessions",
        "Record title",
        "Tags (Zendesk, Kustomer, Freshdesk)",
        "Voicemail",
        "Developer settings",
    ):
        assert f"<h2>{heading}" in html or f">{heading}<" in html, heading
    for rule in ("R1 adds", "(R3)", "(R5)", "(R7)", "(R8)", "(S4)", "(S15)"):
        assert rule in html, rule
    for variable in ("{CALL_TYPE}", "{CALL_ID}", "{MENU_PATH}", "{PHONE_NUMBER}", "{LANGUAGE}", "{TIMESTAMP}"):
        assert variable in html
    assert "IVR Call, Inbound Call (App)" in html
    # A variable the engine learns must be explained here too.
    assert set(TITLE_VARIABLE_HELP) == TITLE_VARIABLES
    # One row, no add or delete.
    assert "/admin/records/operationsettings/add/" not in html
    assert "/delete/" not in html


def test_settings_screen_saves(admin_client: Client) -> None:
    OperationSettings.load()

    response = admin_client.post(
        SETTINGS_URL,
        settings_form(
            append_to_recently_closed=True,
            closed_within_days=7,
            title_template="{CALL_TYPE} {CALL_ID} at {TIMESTAMP}",
            abandoned_chat_records="min_messages",
            abandoned_chat_min_messages=2,
        ),
    )

    assert response.status_code == 302
    saved = OperationSettings.load()
    assert saved.append_to_recently_closed is True
    assert saved.closed_within_days == 7
    assert saved.title_template == "{CALL_TYPE} {CALL_ID} at {TIMESTAMP}"
    assert saved.abandoned_chat_records == "min_messages"
    assert saved.ruleset().abandoned_chat_min_messages == 2


def test_settings_screen_refuses_an_unknown_title_variable_and_saves_nothing(admin_client: Client) -> None:
    before = OperationSettings.load().title_template

    response = admin_client.post(
        SETTINGS_URL, settings_form(title_template="{CALL_TYPE} for {CUSTOMER}", closed_within_days=9)
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert (
        "Unknown variable(s): CUSTOMER. Use only: CALL_ID, CALL_TYPE, LANGUAGE, MENU_PATH, PHONE_NUMBER, TIMESTAMP."
        in html
    )
    saved = OperationSettings.load()
    assert saved.title_template == before
    assert saved.closed_within_days == 3


def test_settings_screen_refuses_a_malformed_title(admin_client: Client) -> None:
    OperationSettings.load()

    response = admin_client.post(SETTINGS_URL, settings_form(title_template="{CALL_TYPE"))

    assert response.status_code == 200
    assert "Malformed template" in response.content.decode()


def test_settings_screen_requires_the_product_tag_when_it_is_on(admin_client: Client) -> None:
    OperationSettings.load()

    refused = admin_client.post(SETTINGS_URL, settings_form(add_product_tag=True, product_tag="  "))
    accepted = admin_client.post(SETTINGS_URL, settings_form(add_product_tag=True, product_tag="acme"))

    assert refused.status_code == 200
    assert "Enter the product tag, or turn the product tag off." in refused.content.decode()
    assert accepted.status_code == 302
    assert OperationSettings.load().ruleset().product_tag == "acme"


def test_queue_team_and_mapping_screens(admin_client: Client, zendesk_connection: CrmConnection) -> None:
    billing = Team.objects.create(name="Billing", enable_ticket_id=True)
    queue = Queue.objects.create(platform_id="q-7", name="Billing", path=["Support", "Billing"])
    queue.teams.add(billing)
    CustomDataMapping.objects.create(connection=zendesk_connection, sdk_key="plan", crm_field_id="9001")
    CustomField.objects.create(connection=zendesk_connection, key="call_id", crm_field_id="777")

    queues = admin_client.get("/admin/records/queue/?q=q-7").content.decode()
    queue_page = admin_client.get(f"/admin/records/queue/{queue.pk}/change/")
    teams = admin_client.get("/admin/records/team/").content.decode()
    mappings = admin_client.get(f"/admin/records/customdatamapping/?connection__id__exact={zendesk_connection.pk}")
    fields = admin_client.get("/admin/records/customfield/").content.decode()

    assert "Support &gt; Billing" in queues
    assert "Billing" in queues
    assert queue_page.status_code == 200
    assert "selectfilter" in queue_page.content.decode().lower()
    assert "Billing" in teams
    assert mappings.status_code == 200
    assert "plan" in mappings.content.decode()
    assert "Call/chat ID" in fields
    assert "777" in fields
    assert "/admin/records/customfield/add/" not in fields


def test_queue_screen_saves_teams_and_checks_the_outbound_number(admin_client: Client) -> None:
    team = Team.objects.create(name="Sales")
    queue = Queue.objects.create(platform_id="q-1", name="Sales")
    form = {"platform_id": "q-1", "name": "Sales", "path": "Sales", "teams": [team.pk]}

    refused = admin_client.post(f"/admin/records/queue/{queue.pk}/change/", {**form, "default_outbound_number": "555"})
    saved = admin_client.post(
        f"/admin/records/queue/{queue.pk}/change/", {**form, "default_outbound_number": "+14155550100"}
    )

    assert "E.164" in refused.content.decode()
    assert saved.status_code == 302
    queue.refresh_from_db()
    assert queue.default_outbound_number == "+14155550100"
    assert list(queue.teams.all()) == [team]


def test_create_custom_fields_action_enqueues_the_task_and_says_so(
    admin_client: Client, zendesk_connection: CrmConnection, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        mock.patch("records.tasks.create_custom_fields_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = admin_client.post(
            "/admin/integrations/crmconnection/",
            {"action": "create_custom_fields", "_selected_action": [zendesk_connection.pk]},
            follow=True,
        )

    html = response.content.decode()
    delay.assert_called_once_with(zendesk_connection.pk)
    assert f"Creating {len(RECORD_FIELDS)} custom fields in Sandbox Zendesk (Zendesk) in the background" in html
    assert "/admin/records/customfield/?connection__id__exact=" in html


class FreshdeskWithoutFieldsApi(FreshdeskProvider):
    """A CRM whose API cannot create fields: the same provider, declaring one capability less."""

    capabilities = FreshdeskProvider.capabilities - {Capability.CUSTOM_FIELDS}


def test_create_custom_fields_is_offered_and_run_only_where_the_crm_can(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(PROVIDERS, "freshdesk", FreshdeskWithoutFieldsApi)
    freshdesk = CrmConnection.objects.create(name="FD", kind="freshdesk", base_url="https://acme.freshdesk.com")

    listing = admin_client.get("/admin/integrations/crmconnection/").content.decode()
    with mock.patch("records.tasks.create_custom_fields_task.delay") as delay:
        response = admin_client.post(
            "/admin/integrations/crmconnection/",
            {"action": "create_custom_fields", "_selected_action": [freshdesk.pk]},
            follow=True,
        )

    assert 'value="create_custom_fields"' not in listing
    assert 'value="test_connection"' in listing
    delay.assert_not_called()
    assert "Creating" not in response.content.decode()
    with pytest.raises(CrmUnsupported, match="Freshdesk has no API for creating custom fields"):
        custom_fields_create_enqueue(connection=freshdesk)


def test_queue_path_is_typed_as_the_menu_reads(admin_client: Client) -> None:
    queue = Queue.objects.create(platform_id="q-9", name="Billing")
    form = {"platform_id": "q-9", "name": "Billing", "path": "Support > Billing ", "teams": []}

    page = admin_client.get(f"/admin/records/queue/{queue.pk}/change/").content.decode()
    refused = admin_client.post(f"/admin/records/queue/{queue.pk}/change/", {**form, "path": "Support > > Billing"})
    saved = admin_client.post(f"/admin/records/queue/{queue.pk}/change/", form)

    assert 'type="text" name="path"' in page
    assert "Leave no level empty" in refused.content.decode()
    assert saved.status_code == 302
    queue.refresh_from_db()
    assert queue.path == ["Support", "Billing"]


def test_settings_labels_are_plain_language_and_cite_the_rule_in_help(admin_client: Client) -> None:
    OperationSettings.load()
    html = admin_client.get(SETTINGS_URL).content.decode()

    assert "Add call or chat sessions to the last open record in the same leaf queue" in html
    assert "R1:" not in html
    assert "(R1)" in html


def test_branding_and_only_supported_crm_kinds(admin_client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every kind has a provider now: Freshdesk is taken out of the registry to stand for one without.
    monkeypatch.delitem(PROVIDERS, "freshdesk")
    html = admin_client.get("/admin/integrations/crmconnection/add/").content.decode()

    assert "CRM Bridge" in html
    assert "Django administration" not in html
    assert '<option value="zendesk"' in html
    assert '<option value="freshdesk"' not in html


def test_qa_reviewers_is_a_ready_group(db: None) -> None:
    from django.contrib.auth.models import Group

    codenames = set(Group.objects.get(name="QA reviewers").permissions.values_list("codename", flat=True))

    assert {"search_tickets", "evaluate_tickets", "view_ticket"} <= codenames


def test_a_queue_name_the_admin_entered_is_kept_when_sessions_name_the_queue(
    zendesk_connection: CrmConnection,
) -> None:
    from tests.support import EXAMPLE_CALL, ingest_and_process

    Queue.objects.create(platform_id="q-billing", name="Billing desk", path=["Help", "Billing"])

    ingest_and_process(EXAMPLE_CALL["events"])

    queue = Queue.objects.get(platform_id="q-billing")
    assert (queue.name, queue.path) == ("Billing desk", ["Help", "Billing"])
