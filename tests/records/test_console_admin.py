"""The operations console in the admin: health panel, session states, the action log, Retry, replay."""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from integrations.http import usage_key
from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from integrations.services import connection_provider, rate_gate
from records.models import CrmAction, Replay, Session
from records.services.execution import OWN_LIMIT_NOTE, action_execute, sessions_needing_work
from records.services.processing import PROCESSING_MAX_ATTEMPTS, session_processing_failed
from tests.support import EXAMPLE_CALL, ingest_and_process, run_actions_until_settled, sandbox_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(db: None) -> Client:
    user = User.objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def session(zendesk_connection: CrmConnection) -> Session:
    return ingest_and_process(EXAMPLE_CALL["events"])


def fail_contact_lookup(session: Session, error: str = "POST /api/v2/users.json: 503 unavailable") -> CrmAction:
    action = session.actions.get(kind="ensure_contact")
    CrmAction.objects.filter(pk=action.pk).update(status=CrmAction.Status.FAILED, last_error=error, attempts=8)
    return action


def test_home_shows_failures_with_links_to_them_filtered(admin_client: Client, session: Session) -> None:
    # given a failed contact lookup that holds back the rest of the session
    fail_contact_lookup(session)

    # when
    html = admin_client.get("/admin/").content.decode()

    # then
    assert 'id="health-panel"' in html
    assert "/admin/records/crmaction/?status__exact=failed" in html
    assert "/admin/records/session/?state=blocked" in html
    assert "Sessions blocked by a failed action" in html
    assert "<svg" in html
    assert "CRM requests per minute" in html
    assert "Replay the failed actions" in html


def test_health_counts_requests_429s_and_faults_per_minute(
    admin_client: Client, zendesk_connection: CrmConnection
) -> None:
    gate = rate_gate()
    gate.record_usage(usage_key(zendesk_connection.base_url), "sent")
    gate.record_usage(usage_key(zendesk_connection.base_url), "sent", "rate_limited")
    gate.record_usage(usage_key(zendesk_connection.base_url), "sent", "fault")
    zendesk_connection.config = {**zendesk_connection.config, "rate_limit_per_minute": 3}
    zendesk_connection.save(update_fields=["config"])

    usage = gate.usage(usage_key(zendesk_connection.base_url))
    html = admin_client.get(f"/admin/integrations/crmconnection/{zendesk_connection.pk}/health/").content.decode()

    assert len(usage) == 60
    assert (usage[-1].sent, usage[-1].rate_limited, usage[-1].fault) == (3, 1, 1)
    assert "3 of 3 per minute" in html
    assert 'class="budget"' in html
    assert 'data-sent="3"' in html


def test_real_requests_are_counted_in_the_http_layer(zendesk_connection: CrmConnection) -> None:
    connection_provider(zendesk_connection).test_connection()

    usage = rate_gate().usage(usage_key(zendesk_connection.base_url), minutes=2)

    assert sum(minute.sent for minute in usage) == 1


def test_session_list_says_blocked_by_which_action_and_filters_on_it(admin_client: Client, session: Session) -> None:
    contact_lookup = fail_contact_lookup(session)
    other = ingest_and_process(
        [{**event, "event_id": f"o-{event['event_id']}", "session_id": "c-2"} for event in EXAMPLE_CALL["events"]],
        session_id="c-2",
    )
    run_actions_until_settled(other)

    blocked = admin_client.get("/admin/records/session/?state=blocked").content.decode()
    done = admin_client.get("/admin/records/session/?state=done").content.decode()

    assert f"Blocked by action #{contact_lookup.pk}" in blocked
    assert "c-2" not in blocked
    assert ">c-2<" in done
    assert ">c-1<" not in done


def test_a_blocked_action_says_what_it_waits_for(admin_client: Client, session: Session) -> None:
    contact_lookup = fail_contact_lookup(session)
    waiting = session.actions.get(kind="create_record")

    session_page = admin_client.get(f"/admin/records/session/{session.pk}/change/").content.decode()
    log = admin_client.get("/admin/records/crmaction/").content.decode()

    expected = f"Waits for action #{contact_lookup.pk} (Find or create contact), which failed"
    assert expected in session_page
    assert expected in log
    # newest first: the last action of the session is listed before its contact lookup
    assert log.index(f"/admin/records/crmaction/{waiting.pk}/change/") < log.index(
        f"/admin/records/crmaction/{contact_lookup.pk}/change/"
    )


def test_the_error_is_shown_whole(admin_client: Client, session: Session) -> None:
    long_error = "POST /api/v2/users.json: 503 " + "x" * 900 + " end-of-error"
    fail_contact_lookup(session, long_error)

    html = admin_client.get("/admin/records/crmaction/?status__exact=failed").content.decode()

    assert "end-of-error" in html


def test_an_action_page_is_a_view_page_with_a_retry_button(admin_client: Client, session: Session) -> None:
    action = fail_contact_lookup(session)

    page = admin_client.get(f"/admin/records/crmaction/{action.pk}/change/").content.decode()
    retried = admin_client.post(f"/admin/records/crmaction/{action.pk}/retry/", follow=True)

    assert "| View CRM action |" in page
    assert 'name="_save"' not in page
    assert 'id="retry-action"' in page
    assert "is queued to run again" in retried.content.decode()
    action.refresh_from_db()
    assert action.status == CrmAction.Status.PENDING


def test_retry_needs_a_post(admin_client: Client, session: Session) -> None:
    action = fail_contact_lookup(session)

    response = admin_client.get(f"/admin/records/crmaction/{action.pk}/retry/")

    assert response.status_code == 403
    action.refresh_from_db()
    assert action.status == CrmAction.Status.FAILED


def test_record_and_contact_ids_link_into_the_crm(admin_client: Client, session: Session) -> None:
    run_actions_until_settled(session)
    session.refresh_from_db()

    html = admin_client.get(f"/admin/records/session/{session.pk}/change/").content.decode()

    assert session.crm_connection is not None
    base = session.crm_connection.base_url.rstrip("/")
    assert f'href="{base}/agent/tickets/{session.crm_record_id}"' in html
    assert f'href="{base}/agent/users/{session.crm_contact_id}"' in html


def test_replay_groups_the_failures_and_retries_them_in_session_order(
    admin_client: Client, session: Session, zendesk_connection: CrmConnection
) -> None:
    contact_lookup = fail_contact_lookup(session, "POST /api/v2/users.json: 503 unavailable")
    comment = session.actions.filter(kind="add_comment").first()
    assert comment is not None
    CrmAction.objects.filter(pk=comment.pk).update(status=CrmAction.Status.FAILED, last_error="timed out after 15s")
    since = timezone.localtime() - timedelta(hours=1)
    until = timezone.localtime() + timedelta(minutes=1)
    query: dict[str, str | int] = {
        "connection": zendesk_connection.pk,
        "since_0": since.strftime("%Y-%m-%d"),
        "since_1": since.strftime("%H:%M:%S"),
        "until_0": until.strftime("%Y-%m-%d"),
        "until_1": until.strftime("%H:%M:%S"),
    }

    preview = admin_client.get("/admin/records/crmaction/replay/", query).content.decode()
    started = admin_client.post(
        "/admin/records/crmaction/replay/?" + "&".join(f"{k}={v}" for k, v in query.items()), {"_replay": "1"}
    )

    assert "2 failed actions in 1 session" in preview
    assert "POST /api/v2/users.json: 503 unavailable" in preview
    replay = Replay.objects.get()
    assert started.status_code == 302
    assert started["Location"].endswith(f"/replay/{replay.pk}/")
    assert sorted(replay.action_ids) == sorted([contact_lookup.pk, comment.pk])
    assert not session.actions.filter(status=CrmAction.Status.FAILED).exists()
    run_actions_until_settled(session)
    progress = admin_client.get(f"/admin/records/crmaction/replay/{replay.pk}/").content.decode()
    assert 'data-finished="yes"' in progress
    assert 'id="replay-succeeded">2<' in progress


def test_a_session_whose_processing_raises_is_shown_and_no_longer_swept(
    admin_client: Client, zendesk_connection: CrmConnection
) -> None:
    from records.api.serializers import EventSerializer
    from records.services.ingest import events_ingest

    serializers = [EventSerializer(data=event) for event in EXAMPLE_CALL["events"]]
    assert all(serializer.is_valid() for serializer in serializers)
    events_ingest(events=[serializer.validated_data for serializer in serializers])
    session = Session.objects.get(external_id="c-1")
    session.events.update(received_at=timezone.now() - timedelta(minutes=5))

    for attempt in range(PROCESSING_MAX_ATTEMPTS):
        assert session.pk in sessions_needing_work(stale_after=timedelta(minutes=2))[0], attempt
        session_processing_failed(session_id=session.pk, error="KeyError: 'queue'")

    html = admin_client.get("/admin/records/session/?state=failed").content.decode()
    page = admin_client.get(f"/admin/records/session/{session.pk}/change/").content.decode()
    assert session.pk not in sessions_needing_work(stale_after=timedelta(minutes=2))[0]
    assert "Failed: its events could not be applied" in html
    assert "KeyError: &#x27;queue&#x27;" in page
    assert str(PROCESSING_MAX_ATTEMPTS) in page


def test_the_real_error_is_kept_when_our_own_budget_also_refuses(
    session: Session, zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    # given a contact lookup the CRM answers with 503, on a connection allowed one request a minute
    zendesk_connection.config = {**zendesk_connection.config, "rate_limit_per_minute": 1}
    zendesk_connection.save(update_fields=["config"])
    sandbox_config(zendesk_sandbox, fail_rate=1.0)
    action = session.actions.get(kind="ensure_contact")

    # when it is tried again while the budget is spent
    action_execute(action=action)
    first_error = action.last_error
    action_execute(action=action)

    # then the 503 is still what it says, with the budget as the reason for waiting
    assert "503" in first_error
    assert action.last_error == f"{first_error}{OWN_LIMIT_NOTE}"
    action_execute(action=action)
    assert action.last_error == f"{first_error}{OWN_LIMIT_NOTE}"
    # Held back: the first attempt's in-place retry of its read (integrations.http), then both later attempts.
    assert rate_gate().usage(usage_key(zendesk_connection.base_url), minutes=1)[-1].held_back == 3


def test_replay_failed_command_shows_groups_and_replays(session: Session, zendesk_connection: CrmConnection) -> None:
    fail_contact_lookup(session, "POST /api/v2/users.json: 503 unavailable")
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    dry, real = StringIO(), StringIO()

    call_command("replay_failed", "--connection", str(zendesk_connection.pk), "--since", since, "--dry-run", stdout=dry)
    call_command(
        "replay_failed", "--connection", str(zendesk_connection.pk), "--since", since, "--wait", "0", stdout=real
    )

    assert "1 failed action(s) in 1 session(s)" in dry.getvalue()
    assert "      1  POST /api/v2/users.json: 503 unavailable" in dry.getvalue()
    # the dry run made no replay; the real one did
    assert Replay.objects.get().requested_by == "replay_failed"
    assert "Replay #" in real.getvalue()
    assert session.actions.get(kind="ensure_contact").status == CrmAction.Status.PENDING


def test_replay_failed_command_names_a_bad_option(zendesk_connection: CrmConnection) -> None:
    with pytest.raises(CommandError, match="--since: not a date and time"):
        call_command("replay_failed", "--connection", str(zendesk_connection.pk), "--since", "yesterday")
    with pytest.raises(CommandError, match="--connection: no CRM connection with id 999"):
        call_command("replay_failed", "--connection", "999", "--since", "2026-11-20T09:00")


def test_home_shows_the_last_import_and_the_status_sync(
    admin_client: Client, zendesk_connection: CrmConnection
) -> None:
    from agentstatus.models import Agent, StatusPush
    from ticketsearch.models import ImportRun

    ImportRun.objects.create(
        connection=zendesk_connection, trigger=ImportRun.Trigger.ADMIN, status="succeeded", tickets_imported=7
    )
    Agent.objects.create(email="ana@example.com", sync_stopped=True)

    html = admin_client.get("/admin/").content.decode()

    assert "Ticket import (QA search)" in html
    assert "Succeeded (admin)" in html
    assert "7 new, 0 updated, 0 fetched" in html
    assert "Agents signed in to several CRM instances (sync stopped)" in html
    assert '/admin/agentstatus/agent/?sync=stopped">1</a>' in html
    assert "Last status webhook received" in html
    assert StatusPush._meta.verbose_name_plural == "status pushes"


def test_import_now_is_offered_on_a_connection_before_its_first_import(
    admin_client: Client, zendesk_connection: CrmConnection
) -> None:
    response = admin_client.post(
        "/admin/integrations/crmconnection/",
        {"action": "import_tickets_now", "_selected_action": [zendesk_connection.pk]},
        follow=True,
    )

    assert "import queued" in response.content.decode()


def test_an_admin_import_is_recorded_as_one(zendesk_connection: CrmConnection) -> None:
    from ticketsearch.models import ImportRun
    from ticketsearch.tasks import import_connection_task

    import_connection_task.apply(args=(zendesk_connection.pk, ImportRun.Trigger.ADMIN))

    assert ImportRun.objects.get(connection=zendesk_connection).trigger == ImportRun.Trigger.ADMIN
