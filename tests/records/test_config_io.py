"""Configuration as code: export_config, import_config and the validation behind them."""

import io
import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from integrations.models import CrmConnection
from records.models import CustomDataMapping, CustomField, OperationSettings, Queue, Team
from records.services.config_io import ConfigError, config_validate
from tests.support import ROOT

EXAMPLE_CONFIG = ROOT / "docs" / "examples" / "config.json"


def run(*args: str, stdin: str | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> str:
    out = io.StringIO()
    if stdin is not None:
        assert monkeypatch is not None
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    call_command(*args, stdout=out)
    return out.getvalue()


def export() -> dict[str, Any]:
    exported: dict[str, Any] = json.loads(run("export_config"))
    return exported


@pytest.fixture
def connection(db: None) -> CrmConnection:
    return CrmConnection.objects.create(name="Acme Zendesk", kind="zendesk", base_url="https://acme.zendesk.com")


@pytest.fixture
def configured(connection: CrmConnection) -> None:
    settings = OperationSettings.load()
    settings.append_to_recently_closed = True
    settings.closed_within_days = 5
    settings.title_template = "{CALL_TYPE} {CALL_ID}"
    settings.add_product_tag = True
    settings.product_tag = "acme"
    settings.abandoned_chat_records = "min_messages"
    settings.voicemail_default_user_email = "vm@acme.com"
    settings.save()
    billing = Team.objects.create(name="Billing", enable_ticket_id=True, ticket_id_required=True)
    sales = Team.objects.create(name="Sales")
    queue = Queue.objects.create(
        platform_id="q-1", name="Billing", path=["Support", "Billing"], default_outbound_number="+14155550100"
    )
    queue.teams.set([billing, sales])
    Queue.objects.create(platform_id="q-2", name="Sales")
    CustomDataMapping.objects.create(connection=connection, sdk_key="plan", crm_field_id="9001")
    CustomField.objects.create(connection=connection, key="call_id", crm_field_id="777")
    CustomField.objects.create(connection=connection, key="csat_rating", crm_field_id="778")


def wipe() -> None:
    for model in (Queue, Team, CustomDataMapping, CustomField, OperationSettings):
        model.objects.all().delete()


@pytest.mark.django_db
@pytest.mark.usefixtures("configured")
def test_config_round_trip_export_wipe_import_export_is_equal(tmp_path: Any) -> None:
    # given
    before = export()
    path = tmp_path / "config.json"
    path.write_text(json.dumps(before))
    wipe()

    # when
    summary = run("import_config", str(path))

    # then
    assert export() == before
    assert before["settings"]["title_template"] == "{CALL_TYPE} {CALL_ID}"
    assert before["queues"][0]["teams"] == ["Billing", "Sales"]
    assert before["custom_data_mappings"] == [{"connection": "Acme Zendesk", "sdk_key": "plan", "crm_field_id": "9001"}]
    assert "team 'Billing': added" in summary
    assert "settings.title_template:" in summary


@pytest.mark.django_db
@pytest.mark.usefixtures("configured")
def test_config_reimport_is_idempotent(tmp_path: Any) -> None:
    path = tmp_path / "config.json"
    path.write_text(run("export_config"))

    summary = run("import_config", str(path))

    assert summary.strip().endswith("No changes.")


@pytest.mark.django_db
@pytest.mark.usefixtures("configured")
def test_config_invalid_file_changes_nothing_and_names_each_path(tmp_path: Any) -> None:
    # given: a good change and several bad ones in the same file
    config = export()
    config["settings"]["closed_within_days"] = 30
    config["settings"]["title_template"] = "{CALL_TYPE} {AGENT}"
    config["settings"]["never_append"] = "yes"
    config["settings"]["colour"] = "blue"
    config["queues"].append({"platform_id": "q-3", "teams": ["Billing", "Nobody"]})
    config["custom_data_mappings"][0]["connection"] = "Old Zendesk"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    before = export()

    # when
    with pytest.raises(CommandError) as raised:
        run("import_config", str(path))

    # then
    message = str(raised.value)
    assert "nothing was changed" in message
    assert "settings.title_template: Unknown variable(s): AGENT." in message
    assert 'settings.never_append: must be true or false, not "yes"' in message
    assert "settings.colour: unknown setting" in message
    assert "queues[2].teams[1]: unknown team 'Nobody'" in message
    assert "custom_data_mappings[0].connection: unknown CRM connection 'Old Zendesk'; known: Acme Zendesk" in message
    assert export() == before


@pytest.mark.django_db
def test_config_import_reads_stdin(connection: CrmConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"settings": {"never_append": True}, "teams": [{"name": "Support"}]}

    summary = run("import_config", "-", stdin=json.dumps(config), monkeypatch=monkeypatch)

    assert OperationSettings.load().never_append is True
    assert list(Team.objects.values_list("name", flat=True)) == ["Support"]
    assert "settings.never_append: false -> true" in summary
    assert "2 item(s) changed." in summary


@pytest.mark.django_db
def test_config_import_dry_run_reports_and_writes_nothing(connection: CrmConnection, tmp_path: Any) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"teams": [{"name": "Support"}]}))

    summary = run("import_config", str(path), "--dry-run")

    assert "team 'Support': added" in summary
    assert "1 item(s) would change." in summary
    assert not Team.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("configured")
def test_config_sections_replace_what_they_cover_and_leave_the_others(tmp_path: Any) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"settings": {"title_template": "{CALL_ID}"}, "teams": [{"name": "Billing"}]}))

    summary = run("import_config", str(path))

    settings = OperationSettings.load()
    assert settings.title_template == "{CALL_ID}"
    # Left out of the settings: back to the default.
    assert settings.append_to_recently_closed is False
    assert "team 'Sales': removed" in summary
    assert "team 'Billing': enable_ticket_id -> false" in summary
    # No queues section: the queues stay, without the removed team.
    assert list(Queue.objects.get(platform_id="q-1").teams.values_list("name", flat=True)) == ["Billing"]
    assert CustomField.objects.count() == 2


@pytest.mark.django_db
def test_config_import_explains_unreadable_input(tmp_path: Any) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"settings": {')

    with pytest.raises(CommandError, match=r"not valid JSON: .* at line 1, column 15"):
        run("import_config", str(broken))
    with pytest.raises(CommandError, match="Cannot read"):
        run("import_config", str(tmp_path / "missing.json"))


@pytest.mark.django_db
def test_config_example_in_the_docs_imports_cleanly() -> None:
    CrmConnection.objects.create(name="Acme Zendesk", kind="zendesk", base_url="https://acme.zendesk.com")

    run("import_config", str(EXAMPLE_CONFIG))

    again = run("import_config", str(EXAMPLE_CONFIG))
    assert again.strip() == "No changes."
    example = json.loads(EXAMPLE_CONFIG.read_text())
    exported = export()
    for section in ("teams", "queues", "custom_data_mappings", "custom_fields"):
        assert exported[section] == example[section]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ([], "(file): must be a JSON object"),
        ({"version": 2}, "version: must be 1, not 2"),
        ({"extras": {}}, "extras: unknown section"),
        ({"settings": {"closed_within_days": 0}}, "settings.closed_within_days: Ensure this value is greater than"),
        ({"settings": {"closed_within_days": True}}, "settings.closed_within_days: must be an integer, not true"),
        (
            {"settings": {"abandoned_chat_records": "some"}},
            "settings.abandoned_chat_records: Value 'some' is not a valid",
        ),
        ({"settings": {"add_product_tag": True, "product_tag": ""}}, "settings.product_tag: Enter the product tag"),
        ({"settings": {"voicemail_default_user_email": "nobody"}}, "settings.voicemail_default_user_email: Enter a"),
        ({"settings": {"title_template": ""}}, "settings.title_template: This field cannot be blank."),
        ({"teams": [{"name": "A"}, {"name": "A"}]}, "teams[1].name: team 'A' is already in teams[0].name"),
        ({"teams": [{"name": "A", "lead": "x"}]}, "teams[0].lead: unknown key"),
        ({"teams": [{"enable_ticket_id": True}]}, "teams[0].name: required"),
        ({"queues": [{"platform_id": "q", "path": ["A", 3]}]}, "queues[0].path[1]: must be a non-empty string, not 3"),
        ({"queues": [{"platform_id": "q", "teams": ["Ops"]}]}, "queues[0].teams[0]: unknown team 'Ops'"),
        ({"queues": [{"platform_id": "q", "default_outbound_number": "555"}]}, "queues[0].default_outbound_number"),
        ({"custom_fields": [{"connection": "Z", "key": "mood", "crm_field_id": "1"}]}, "custom_fields[0].key: unknown"),
        (
            {"custom_fields": [{"connection": "Twin", "key": "call_id", "crm_field_id": "1"}]},
            "custom_fields[0].connection: 2 CRM",
        ),
        (
            {"custom_data_mappings": [{"connection": "Z", "sdk_key": " ", "crm_field_id": "1"}]},
            "custom_data_mappings[0].sdk_key: cannot be empty",
        ),
    ],
)
def test_config_validate_names_the_path_of_each_error(data: Any, error: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_validate(data, connection_names=["Z", "Twin", "Twin"], team_names=["Billing"])

    assert any(line.startswith(error) for line in raised.value.errors), raised.value.errors


def test_config_validate_queues_may_name_existing_teams_when_the_file_has_none() -> None:
    config = config_validate(
        {"queues": [{"platform_id": "q", "teams": ["Billing"]}]}, connection_names=[], team_names=["Billing"]
    )

    assert config.queues is not None
    assert config.queues[0].teams == ("Billing",)
    assert config.settings is None
    assert config.teams is None


@pytest.mark.django_db
def test_connections_carry_their_declared_non_secret_settings_never_the_secrets() -> None:
    from integrations.services import connection_create

    connection = connection_create(
        name="Acme Salesforce",
        kind="salesforce",
        base_url="https://login.salesforce.com",
        settings={"client_id": "key-1", "client_secret": "s3cret", "password": "pw"},
    )
    exported = export()

    [row] = exported["connections"]
    assert row == {
        "name": "Acme Salesforce",
        "kind": "salesforce",
        "base_url": "https://login.salesforce.com",
        "settings": {"client_id": "key-1", "username": "", "case_external_id_field": ""},
    }
    assert "s3cret" not in json.dumps(exported)

    row["settings"]["username"] = "api@acme.com"
    row["base_url"] = "https://acme.my.salesforce.com"
    output = run("import_config", "-", stdin=json.dumps({"connections": [row]}), monkeypatch=pytest.MonkeyPatch())
    connection.refresh_from_db()
    assert "connection 'Acme Salesforce': settings updated" in output
    assert (connection.base_url, connection.config["username"]) == ("https://acme.my.salesforce.com", "api@acme.com")
    assert connection.secrets == {"client_secret": "s3cret", "password": "pw"}

    with pytest.raises(ConfigError) as caught:
        config_validate(
            {"connections": [{**row, "settings": {"client_secret": "x", "colour": "red"}}, {**row, "name": "Other"}]},
            connection_names=["Acme Salesforce"],
        )
    assert caught.value.errors == [
        "connections[0].settings.client_secret: a secret; set it in the admin, never in the file",
        "connections[0].settings.colour: unknown setting for salesforce; known: case_external_id_field, client_id, "
        "username",
        "connections[1].name: unknown CRM connection 'Other'; known: Acme Salesforce",
    ]


@pytest.mark.django_db
def test_connections_carry_the_batching_settings_as_json_values() -> None:
    from integrations.services import connection_create

    connection = connection_create(
        name="Acme Zendesk",
        kind="zendesk",
        base_url="https://acme.zendesk.com",
        settings={"email": "bot@acme.com", "api_token": "t0ken"},
    )

    [row] = export()["connections"]
    assert row["settings"] == {
        "email": "bot@acme.com",
        "batching_enabled": False,
        "batched_services": ["add_comment", "update_record"],
        "batch_interval_seconds": 10,
    }

    row["settings"] |= {"batching_enabled": True, "batched_services": ["add_comment"], "batch_interval_seconds": 5}
    output = run("import_config", "-", stdin=json.dumps({"connections": [row]}), monkeypatch=pytest.MonkeyPatch())
    connection.refresh_from_db()
    assert "connection 'Acme Zendesk': settings updated" in output
    assert {
        key: connection.config[key] for key in ("batching_enabled", "batched_services", "batch_interval_seconds")
    } == {
        "batching_enabled": True,
        "batched_services": ["add_comment"],
        "batch_interval_seconds": 5,
    }
    assert connection.secrets == {"api_token": "t0ken"}
    assert "No changes." in run(
        "import_config", "-", stdin=json.dumps({"connections": [row]}), monkeypatch=pytest.MonkeyPatch()
    )

    bad = {"batching_enabled": "sometimes", "batch_interval_seconds": 90, "batched_services": ["tag"]}
    with pytest.raises(ConfigError) as caught:
        config_validate({"connections": [{**row, "settings": bad}]}, connection_names=["Acme Zendesk"])
    assert caught.value.errors == [
        'connections[0].settings.batching_enabled: must be true or false, not "sometimes"',
        "connections[0].settings.batch_interval_seconds: must be from 1 to 60, not 90",
        'connections[0].settings.batched_services: must be a list of: add_comment, update_record, not ["tag"]',
    ]
