"""Simulate a settings change over stored sessions: the differences, and that nothing changes."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from records.models import OperationSettings, Session
from records.rules import RuleSet
from records.services.simulation import settings_simulate
from tests.records.scenario import T0, Call
from tests.support import ingest_and_process, run_actions_until_settled, sandbox_stats

pytestmark = pytest.mark.django_db

CHANGE = {"append_to_open_records": False, "abandoned_call_records": False, "title_template": "{CALL_TYPE} {CALL_ID}"}


@pytest.fixture
def stored_sessions(zendesk_connection: CrmConnection) -> dict[str, Session]:
    """c-1 makes a record, c-2 (same caller and queue, an hour later) is appended to it, c-3 is abandoned."""
    sessions = {}
    for call in (
        Call("c-1").answered().ended(),
        Call("c-2", start=T0.replace(hour=10)).answered().ended(),
        Call("c-3", phone="+14155550199", start=T0.replace(hour=11)).created().add("session.abandoned", wait_time=30),
    ):
        session = ingest_and_process(call.events, session_id=call.session_id)
        run_actions_until_settled(session)
        session.refresh_from_db()
        sessions[call.session_id] = session
    assert sessions["c-2"].crm_record_id == sessions["c-1"].crm_record_id
    assert sessions["c-3"].crm_record_id
    return sessions


def changed_rules() -> RuleSet:
    settings = OperationSettings.load()
    for key, value in CHANGE.items():
        setattr(settings, key, value)
    return settings.ruleset()


def by_session(result_changed: list) -> dict[str, dict[str, tuple[str, str]]]:
    return {item.session_id: {d.what: (d.before, d.after) for d in item.differences} for item in result_changed}


def test_simulate_shows_r1_r5_and_title_changes_per_session(
    stored_sessions: dict[str, Session], zendesk_sandbox: SandboxServer
) -> None:
    # given
    record = stored_sessions["c-1"].crm_record_id
    requests_before = sandbox_stats(zendesk_sandbox)["total"]

    # when
    result = settings_simulate(changed=changed_rules(), days=7)

    # then
    differences = by_session(result.changed)
    assert result.sessions_checked == 3
    assert differences["c-1"] == {"Title": ("IVR Call from +14155550100", "IVR Call c-1")}
    assert differences["c-2"]["Record"] == (f"appended to record {record}", "new record")
    assert differences["c-2"]["Title"] == ("IVR Call from +14155550100", "IVR Call c-2")
    assert differences["c-3"] == {"Record": ("new record", "no record")}
    # and nothing changed: no request to the CRM, settings and sessions as they were
    assert sandbox_stats(zendesk_sandbox)["total"] == requests_before
    assert OperationSettings.load().append_to_open_records is True
    assert Session.objects.get(external_id="c-2").crm_record_id == record


def test_simulate_with_the_settings_in_force_finds_no_difference(stored_sessions: dict[str, Session]) -> None:
    result = settings_simulate(changed=OperationSettings.load().ruleset(), days=7)

    assert result.sessions_checked == 3
    assert result.changed == []


def test_the_command_gives_the_same_answer_as_text_and_json(
    stored_sessions: dict[str, Session], tmp_path: Path
) -> None:
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"settings": CHANGE}))
    as_text, as_json = StringIO(), StringIO()

    call_command("simulate_settings", str(settings_file), "--days", "7", stdout=as_text)
    call_command("simulate_settings", str(settings_file), "--days", "7", "--format", "json", stdout=as_json)

    expected = by_session(settings_simulate(changed=changed_rules(), days=7).changed)
    body = json.loads(as_json.getvalue())
    assert {
        item["session_id"]: {d["what"]: (d["before"], d["after"]) for d in item["differences"]}
        for item in body["sessions"]
    } == expected
    assert "3 session(s) of the last 7 day(s) checked; 3 would differ." in as_text.getvalue()
    assert "  Record: new record -> no record" in as_text.getvalue()


def test_the_command_names_a_bad_setting(tmp_path: Path) -> None:
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps({"title_template": "{NOPE}"}))

    with pytest.raises(Exception, match=r"settings.title_template: Unknown variable\(s\): NOPE"):
        call_command("simulate_settings", str(settings_file), stdout=StringIO())


def test_simulate_in_the_admin_shows_the_differences_and_saves_nothing(stored_sessions: dict[str, Session]) -> None:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    url = f"/admin/records/operationsettings/{OperationSettings.load().pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {key: value for key, value in data.items() if value not in (None, False)}
    data |= {key: "on" if value is True else value for key, value in CHANGE.items() if value is not False}
    for key, value in CHANGE.items():
        if value is False:
            data.pop(key, None)

    response = client.post(url, {**data, "_simulate": "Simulate", "simulate_days": "7"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "3 sessions of the last 7 days decided again" in html
    assert "would differ" in html
    assert "IVR Call c-2" in html
    assert "no record" in html
    assert OperationSettings.load().title_template == RuleSet.title_template
