"""B1 batching across sessions, in-process, against the sandbox Zendesk over loopback HTTP.

The flush is driven step by step (`batch_flush`), as the Celery task records.flush_batch takes it:
a "crash" is a step that is never followed by the next one in the same process.
"""

import copy
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.utils import timezone

from integrations.models import CrmConnection
from integrations.providers.base import BatchUpdate, Comment, RecordChanges
from integrations.sandbox import SandboxServer
from integrations.services import connection_change_settings, connection_provider
from records.models import CrmAction, CrmBatch, ScreenPop, Session
from records.services.batching import BATCHED, batch_flush, batches_needing_work, connection_flush_now
from records.services.custom_fields import custom_fields_create
from records.services.execution import session_run_actions
from tests.support import EXAMPLE_CALL, ingest_and_process, sandbox_config, sandbox_stats

pytestmark = pytest.mark.django_db

UPDATE_MANY = "PUT /api/v2/tickets/update_many.json"
JOB_STATUS = "GET /api/v2/job_statuses/{id}.json"
TICKET_UPDATE = "PUT /api/v2/tickets/{id}.json"
CALL_FINISHED = "call_finished"


def call(n: int) -> Session:
    """The example IVR call as session c-n, from a caller of its own (so a ticket of its own)."""
    events: list[dict[str, Any]] = copy.deepcopy(EXAMPLE_CALL["events"])
    for event in events:
        event["session_id"] = f"c-{n}"
        event["event_id"] = f"{event['event_id']}-{n}"
        if "phone_number" in event["data"]:
            event["data"]["phone_number"] = f"+1415555{n:04d}"
    return ingest_and_process(events, session_id=f"c-{n}")


def batching_on(connection: CrmConnection, **values: Any) -> None:
    connection_change_settings(
        connection=connection, values={"batching_enabled": True, "batch_interval_seconds": 1, **values}
    )


def requests_of(sandbox: SandboxServer, route: str) -> int:
    return int(sandbox_stats(sandbox)["requests"].get(route, 0))


def ticket_comments(api: requests.Session, sandbox: SandboxServer, session: Session) -> list[str]:
    session.refresh_from_db()
    body = api.get(f"{sandbox.base_url}/api/v2/tickets/{session.crm_record_id}/comments.json", timeout=10).json()
    return [comment["body"] for comment in body["comments"]]


def finished_comments(api: requests.Session, sandbox: SandboxServer, session: Session) -> int:
    return sum(1 for body in ticket_comments(api, sandbox, session) if body.startswith(CALL_FINISHED))


def open_batch(connection: CrmConnection) -> CrmBatch:
    return CrmBatch.objects.get(connection=connection, state=CrmBatch.State.OPEN)


def settle(sessions: list[Session], connection: CrmConnection, rounds: int = 20) -> None:
    """Run the sessions' actions and flush their batches until nothing is pending (backoff waits skipped)."""
    for _ in range(rounds):
        pending = CrmAction.objects.filter(session__in=sessions, status=CrmAction.Status.PENDING)
        if not pending.exists():
            return
        pending.update(next_attempt_at=None)
        for session in sessions:
            session_run_actions(session_id=session.pk)
        for _ in range(3):
            connection_flush_now(connection=connection)
    raise AssertionError("actions did not settle")


@pytest.fixture
def batched(zendesk_connection: CrmConnection) -> CrmConnection:
    custom_fields_create(connection=zendesk_connection)
    batching_on(zendesk_connection)
    return zendesk_connection


def test_batching_sends_the_comments_and_updates_of_several_sessions_in_one_update_many(
    batched: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    # given: three calls whose tickets exist, each with its "ended" comment and fields due
    sessions = [call(n) for n in (1, 2, 3)]
    for session in sessions:
        session_run_actions(session_id=session.pk)

    # then: nothing written yet; the ended comments (and their updates) wait in the open batch
    assert requests_of(zendesk_sandbox, TICKET_UPDATE) == 0
    batch = open_batch(batched)
    assert batch.actions.count() == 6  # three comments, each with the update of the same event
    for session in sessions:
        waiting = CrmAction.objects.get(session=session, kind="add_comment", event__type="session.ended")
        assert waiting.status == CrmAction.Status.PENDING
        assert BATCHED in waiting.progress
        # the recording comment waits behind it
        assert session.actions.get(kind="add_comment", event__type="recording.ready").attempts == 0

    # when: the flush sends it, then reads the job
    assert batch_flush(batch_id=batch.pk) is not None  # not due yet: 1 s
    batch_flush(batch_id=batch.pk, force=True)
    batch.refresh_from_db()
    if batch.state == CrmBatch.State.SENT:
        batch_flush(batch_id=batch.pk, force=True)

    # then: one request for three tickets, each action concluded by its own ticket's result
    batch.refresh_from_db()
    assert batch.state == CrmBatch.State.DONE
    assert batch.job_id
    assert requests_of(zendesk_sandbox, UPDATE_MANY) == 1
    assert requests_of(zendesk_sandbox, JOB_STATUS) == 1
    assert requests_of(zendesk_sandbox, TICKET_UPDATE) == 0
    for session in sessions:
        done = session.actions.filter(event__type="session.ended")
        assert {action.status for action in done} == {CrmAction.Status.SUCCEEDED}
        assert all("sent in a batch" in action.result["outcome"] for action in done)
        assert finished_comments(zendesk_api, zendesk_sandbox, session) == 1

    # and the recording comments go in the next flush, also as one request
    settle(sessions, batched)
    assert requests_of(zendesk_sandbox, UPDATE_MANY) == 2
    assert requests_of(zendesk_sandbox, TICKET_UPDATE) == 0
    for session in sessions:
        assert len(ticket_comments(zendesk_api, zendesk_sandbox, session)) == 3
        ticket = zendesk_api.get(f"{zendesk_sandbox.base_url}/api/v2/tickets/{session.crm_record_id}.json").json()
        assert any(field["value"] not in (None, "") for field in ticket["ticket"]["custom_fields"])


def test_batching_off_by_default_writes_each_event_at_once(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    session = call(1)

    session_run_actions(session_id=session.pk)

    assert not CrmBatch.objects.exists()
    assert requests_of(zendesk_sandbox, UPDATE_MANY) == 0
    assert not session.actions.filter(status=CrmAction.Status.PENDING).exists()


def test_batching_only_the_chosen_services(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    # Only updates batched: an event's comment and update are one write, so they go at once together;
    # the recording comment alone goes at once too.
    custom_fields_create(connection=zendesk_connection)
    batching_on(zendesk_connection, batched_services=["update_record"])
    session = call(1)

    session_run_actions(session_id=session.pk)

    assert not CrmBatch.objects.exists()
    assert not session.actions.filter(status=CrmAction.Status.PENDING).exists()
    assert requests_of(zendesk_sandbox, TICKET_UPDATE) == 2


def test_batching_a_failed_item_fails_alone_and_the_others_are_done(
    batched: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    # given: two calls' comments waiting; one ticket is closed meanwhile (Zendesk refuses its change)
    sessions = [call(1), call(2)]
    for session in sessions:
        session_run_actions(session_id=session.pk)
        session.refresh_from_db()
    url = f"{zendesk_sandbox.base_url}/api/v2/tickets/{sessions[0].crm_record_id}.json"
    zendesk_api.put(url, json={"ticket": {"status": "closed"}}, timeout=10).raise_for_status()

    # when
    settle(sessions, batched)

    # then: the closed ticket's comment is refused in the batch, tried once on its own, and fails;
    # the other ticket's is done, by the same request
    refused = sessions[0].actions.get(kind="add_comment", event__type="session.ended")
    assert refused.status == CrmAction.Status.FAILED
    assert "closed" in refused.last_error
    done = sessions[1].actions.get(kind="add_comment", event__type="session.ended")
    assert done.status == CrmAction.Status.SUCCEEDED
    assert "sent in a batch" in done.result["outcome"]
    assert finished_comments(zendesk_api, zendesk_sandbox, sessions[1]) == 1


def test_batching_items_the_job_could_not_do_are_retried_each_on_its_own(
    batched: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    sessions = [call(1), call(2)]
    for session in sessions:
        session_run_actions(session_id=session.pk)
    requests.post(f"{zendesk_sandbox.base_url}/__sandbox/job_faults", json={"item_fail_rate": 1.0}, timeout=5)

    connection_flush_now(connection=batched)
    connection_flush_now(connection=batched)

    # then: each item waits for its own retry (its failure recorded), and the batch is done
    for session in sessions:
        lead = session.actions.get(kind="add_comment", event__type="session.ended")
        assert lead.status == CrmAction.Status.PENDING
        assert lead.batch_id is None
        assert lead.next_attempt_at
        assert "TicketUpdateFailed" in lead.last_error
    assert not CrmBatch.objects.exclude(state=CrmBatch.State.DONE).exists()

    # when the CRM can again: the retries (unbatched) make each comment exactly once
    requests.post(f"{zendesk_sandbox.base_url}/__sandbox/job_faults", json={"item_fail_rate": 0.0}, timeout=5)
    settle(sessions, batched)
    for session in sessions:
        assert finished_comments(zendesk_api, zendesk_sandbox, session) == 1
        assert not session.actions.exclude(status=CrmAction.Status.SUCCEEDED).exists()


def test_batching_a_lost_answer_to_the_send_does_not_double_a_comment(
    batched: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    # given: the update_many is applied, but its answer is lost (a 500 after applying it)
    sessions = [call(1), call(2)]
    for session in sessions:
        session_run_actions(session_id=session.pk)
    sandbox_config(zendesk_sandbox, lost_response_rate=1.0)
    batch = open_batch(batched)

    # when
    assert batch_flush(batch_id=batch.pk, force=True) is None
    sandbox_config(zendesk_sandbox, lost_response_rate=0.0)

    # then: no job id, so each item goes to the failure policy; its retry looks at the ticket first
    batch.refresh_from_db()
    assert batch.state == CrmBatch.State.DONE
    assert not batch.job_id
    settle(sessions, batched)
    for session in sessions:
        assert finished_comments(zendesk_api, zendesk_sandbox, session) == 1
        lead = session.actions.get(kind="add_comment", event__type="session.ended")
        assert lead.status == CrmAction.Status.SUCCEEDED
        assert lead.result["outcome"].startswith("an earlier attempt had already added it")
    assert requests_of(zendesk_sandbox, UPDATE_MANY) == 2  # the lost one, and the recordings' flush


def test_batching_a_crash_after_the_send_resumes_reading_the_job_without_sending_again(
    batched: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    # given: a flush sent its batch and saved the job id, then its worker died before reading the job
    sessions = [call(1), call(2)]
    for session in sessions:
        session_run_actions(session_id=session.pk)
    batch = open_batch(batched)
    retry_in = batch_flush(batch_id=batch.pk, force=True)
    batch.refresh_from_db()
    assert (batch.state, retry_in) == (CrmBatch.State.SENT, 0.5)
    assert batch.job_id
    sent = requests_of(zendesk_sandbox, UPDATE_MANY)

    # when: the sweep finds it overdue and a new worker takes it
    CrmBatch.objects.filter(pk=batch.pk).update(next_poll_at=timezone.now() - timedelta(minutes=1))
    assert batch.pk in batches_needing_work()
    assert batch_flush(batch_id=batch.pk) is None

    # then: the job was read, never sent again, and each comment is there once
    assert requests_of(zendesk_sandbox, UPDATE_MANY) == sent == 1
    assert requests_of(zendesk_sandbox, JOB_STATUS) == 1
    for session in sessions:
        assert finished_comments(zendesk_api, zendesk_sandbox, session) == 1
        assert not session.actions.filter(event__type="session.ended").exclude(status="succeeded").exists()


def test_batching_a_crash_before_the_job_id_was_saved_looks_before_sending_again(
    batched: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    # given: the batch was taken for sending and the request made, but its worker died before the job id was saved
    sessions = [call(1), call(2)]
    for session in sessions:
        session_run_actions(session_id=session.pk)
    batch = open_batch(batched)
    leads = list(batch.actions.filter(progress__has_key=BATCHED))
    provider = connection_provider(batched)
    provider.submit_batch(
        [
            BatchUpdate(
                lead.progress[BATCHED]["record_id"],
                RecordChanges(comment=Comment(body=lead.progress[BATCHED]["comment"]["body"])),
            )
            for lead in leads
        ]
    )
    CrmBatch.objects.filter(pk=batch.pk).update(
        state=CrmBatch.State.SENDING, sent_at=timezone.now() - timedelta(minutes=5)
    )

    # when: the sweep finds the batch left "sending"
    assert batch.pk in batches_needing_work()
    assert batch_flush(batch_id=batch.pk) is None

    # then: its items are looked at before anything is sent again: each comment once
    settle(sessions, batched)
    for session in sessions:
        assert finished_comments(zendesk_api, zendesk_sandbox, session) == 1
    assert requests_of(zendesk_sandbox, UPDATE_MANY) == 2  # that one, and the recordings' flush


def test_batching_one_write_per_ticket_a_flush_keeps_their_order(
    batched: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    # given: a second session appended to the first one's ticket (same caller), both with comments due
    first = call(1)
    session_run_actions(session_id=first.pk)
    events: list[dict[str, Any]] = copy.deepcopy(EXAMPLE_CALL["events"])
    for event in events:
        event["session_id"], event["event_id"] = "c-9", f"{event['event_id']}-9"
        if "phone_number" in event["data"]:
            event["data"]["phone_number"] = "+14155550001"
    second = ingest_and_process(events, session_id="c-9")
    settle([first, second], batched)

    # then: each flush carried one write per ticket, so the ticket has them in the order they were due
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.crm_record_id == second.crm_record_id
    bodies = ticket_comments(zendesk_api, zendesk_sandbox, first)
    assert sum(1 for body in bodies if body.startswith(CALL_FINISHED)) == 2
    assert not CrmAction.objects.exclude(status=CrmAction.Status.SUCCEEDED).exists()
    ordered = CrmAction.objects.filter(kind="add_comment").order_by("completed_at")
    per_session = [list(ordered.filter(session=s).values_list("id", flat=True)) for s in (first, second)]
    assert all(ids == sorted(ids) for ids in per_session)


def test_batching_the_sweep_leaves_a_session_waiting_in_a_batch_to_its_flush(
    batched: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    from records.services.execution import sessions_needing_work

    session = call(1)
    session_run_actions(session_id=session.pk)
    # Its later actions look stale, but the session waits for its batch, not for a worker.
    CrmAction.objects.filter(session=session).update(updated_at=timezone.now() - timedelta(minutes=5))

    _, due = sessions_needing_work(stale_after=timedelta(seconds=15))
    assert session.pk not in due
    assert session_run_actions(session_id=session.pk).executed == 0

    settle([session], batched)
    assert not session.actions.exclude(status=CrmAction.Status.SUCCEEDED).exists()


def repeat_call(n: int, phone_of: int) -> Session:
    """The example IVR call as session c-n, from the caller of call(phone_of): it appends to that ticket."""
    events: list[dict[str, Any]] = copy.deepcopy(EXAMPLE_CALL["events"])
    for event in events:
        event["session_id"], event["event_id"] = f"c-{n}", f"{event['event_id']}-{n}"
        if "phone_number" in event["data"]:
            event["data"]["phone_number"] = f"+1415555{phone_of:04d}"
    return ingest_and_process(events, session_id=f"c-{n}")


def appended_comments(api: requests.Session, sandbox: SandboxServer, record_id: str, session: str) -> int:
    body = api.get(f"{sandbox.base_url}/api/v2/tickets/{record_id}/comments.json", timeout=10).json()
    return sum(1 for c in body["comments"] if c["body"].startswith(f"Session {session} added to this record."))


def test_batching_a_repeat_callers_append_goes_in_the_batch_and_the_new_ticket_does_not(
    batched: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    # given: a new caller's ticket, made at once (record creation is never batched)
    first = call(1)
    session_run_actions(session_id=first.pk)
    first.refresh_from_db()
    assert first.crm_record_id
    assert first.actions.get(kind="create_record").status == CrmAction.Status.SUCCEEDED
    assert requests_of(zendesk_sandbox, "POST /api/v2/tickets.json") == 1

    # when: the same caller calls again, and its record action finds the open ticket
    second = repeat_call(9, phone_of=1)
    session_run_actions(session_id=second.pk)

    # then: the append (comment, tags, assignee) waits in the open batch, nothing written yet;
    # the agent is shown the ticket at once, as it exists
    append = second.actions.get(kind="create_record")
    assert append.status == CrmAction.Status.PENDING
    assert append.batch_id == open_batch(batched).pk
    assert append.progress[BATCHED]["record_id"] == first.crm_record_id
    assert append.progress[BATCHED]["add_tags"]
    assert requests_of(zendesk_sandbox, TICKET_UPDATE) == 0
    assert requests_of(zendesk_sandbox, "POST /api/v2/tickets.json") == 1
    second.refresh_from_db()
    assert second.crm_record_id == ""  # linked once the CRM has done the append
    assert ScreenPop.objects.filter(session=second, record_id=first.crm_record_id).exists()
    assert second.actions.get(kind="display_record").status == CrmAction.Status.SUCCEEDED
    # its later actions wait behind it
    assert second.actions.get(kind="add_comment", event__type="session.ended").attempts == 0

    # when: the flushes run
    settle([first, second], batched)

    # then: the append was one item of an update_many, once; the session linked to the ticket
    second.refresh_from_db()
    append.refresh_from_db()
    assert second.crm_record_id == first.crm_record_id
    assert append.status == CrmAction.Status.SUCCEEDED
    assert append.result["outcome"].endswith("sent in a batch")
    assert append.result["record_id"] == first.crm_record_id
    assert requests_of(zendesk_sandbox, TICKET_UPDATE) == 0
    assert appended_comments(zendesk_api, zendesk_sandbox, first.crm_record_id, "c-9") == 1
    ticket = zendesk_api.get(f"{zendesk_sandbox.base_url}/api/v2/tickets/{first.crm_record_id}.json").json()
    assert set(append.progress.get(BATCHED, {}).get("add_tags", [])) <= set(ticket["ticket"]["tags"])
    assert "voice_inbound_ivr" in ticket["ticket"]["tags"]
    assert finished_comments(zendesk_api, zendesk_sandbox, first) == 2
    assert not CrmAction.objects.exclude(status=CrmAction.Status.SUCCEEDED).exists()


def test_batching_a_lost_answer_to_an_append_does_not_append_twice(
    batched: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    # given: the repeat caller's append waits in the batch, alone
    first = call(1)
    settle([first], batched)
    first.refresh_from_db()
    second = repeat_call(9, phone_of=1)
    session_run_actions(session_id=second.pk)
    append = second.actions.get(kind="create_record")
    assert append.batch_id is not None

    # when: the update_many is applied, but its answer is lost
    sandbox_config(zendesk_sandbox, lost_response_rate=1.0)
    connection_flush_now(connection=batched)
    sandbox_config(zendesk_sandbox, lost_response_rate=0.0)

    # then: its retry runs unbatched, finds the session's comment on the ticket, and does not add it again
    append.refresh_from_db()
    assert append.batch_id is None
    assert append.may_have_written
    settle([first, second], batched)
    append.refresh_from_db()
    second.refresh_from_db()
    assert append.status == CrmAction.Status.SUCCEEDED
    assert second.crm_record_id == first.crm_record_id
    assert appended_comments(zendesk_api, zendesk_sandbox, first.crm_record_id, "c-9") == 1
    assert finished_comments(zendesk_api, zendesk_sandbox, first) == 2


def test_batching_an_append_the_batch_could_not_do_is_retried_on_its_own(
    batched: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    first = call(1)
    settle([first], batched)
    first.refresh_from_db()
    second = repeat_call(9, phone_of=1)
    session_run_actions(session_id=second.pk)
    requests.post(f"{zendesk_sandbox.base_url}/__sandbox/job_faults", json={"item_fail_rate": 1.0}, timeout=5)

    connection_flush_now(connection=batched)
    connection_flush_now(connection=batched)

    # then: the item failed in the job; the action waits for its own (unbatched) retry, the session unlinked
    append = second.actions.get(kind="create_record")
    assert append.status == CrmAction.Status.PENDING
    assert append.batch_id is None
    assert "TicketUpdateFailed" in append.last_error
    second.refresh_from_db()
    assert second.crm_record_id == ""

    requests.post(f"{zendesk_sandbox.base_url}/__sandbox/job_faults", json={"item_fail_rate": 0.0}, timeout=5)
    settle([first, second], batched)
    append.refresh_from_db()
    assert append.status == CrmAction.Status.SUCCEEDED
    assert "sent in a batch" not in append.result["outcome"]
    assert appended_comments(zendesk_api, zendesk_sandbox, first.crm_record_id, "c-9") == 1
    assert requests_of(zendesk_sandbox, TICKET_UPDATE) == 1  # the append's own retry


def test_batching_reads_the_crm_field_list_once_for_the_flushes_of_a_minute(
    batched: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    field_list = "GET /api/v2/ticket_fields.json"
    before = requests_of(zendesk_sandbox, field_list)

    # when: two calls' fields go in flushes of their own
    first = call(1)
    settle([first], batched)
    assert requests_of(zendesk_sandbox, field_list) == before + 1
    second = call(2)
    settle([second], batched)

    # then: the second flush took the list the first one read
    assert requests_of(zendesk_sandbox, field_list) == before + 1
    assert {action.status for action in second.actions.all()} == {CrmAction.Status.SUCCEEDED}

    # when: F1 changes the CRM's fields (it reads the list itself), the next flush asks again
    custom_fields_create(connection=batched)
    settle([call(3)], batched)
    assert requests_of(zendesk_sandbox, field_list) == before + 3


# -- Kustomer: bulk conversation updates (no bulk notes) ---------------------------------------------

BULK = "PUT /v1/conversations/bulk"
BULK_READ = "GET /v1/bulk/{id}"
CONVERSATION_PATCH = "PATCH /v1/conversations/{id}"


@pytest.fixture
def kustomer_batched(kustomer_connection: CrmConnection) -> CrmConnection:
    custom_fields_create(connection=kustomer_connection)
    batching_on(kustomer_connection)
    return kustomer_connection


def test_batching_on_kustomer_sends_the_updates_of_several_sessions_in_one_bulk_request(
    kustomer_batched: CrmConnection, kustomer_sandbox: SandboxServer
) -> None:
    # Only update record is offered: the notes go at once, the updates wait for the flush.
    assert connection_provider(kustomer_batched).batch_settings().services == {"update_record"}
    sessions = [call(n) for n in (1, 2, 3)]

    settle(sessions, kustomer_batched)

    assert requests_of(kustomer_sandbox, BULK) == 1
    assert requests_of(kustomer_sandbox, CONVERSATION_PATCH) == 0
    for session in sessions:
        update = session.actions.get(kind="update_record", event__type="session.ended")
        assert update.status == CrmAction.Status.SUCCEEDED
        assert "sent in a batch" in update.result["outcome"]
        assert session.actions.get(kind="add_comment", event__type="session.ended").status == CrmAction.Status.SUCCEEDED


def test_batching_on_kustomer_a_failed_item_is_retried_alone(
    kustomer_batched: CrmConnection, kustomer_sandbox: SandboxServer
) -> None:
    sessions = [call(1), call(2)]
    for session in sessions:
        session_run_actions(session_id=session.pk)
    requests.post(f"{kustomer_sandbox.base_url}/__sandbox/bulk_faults", json={"item_fail_rate": 1.0}, timeout=5)

    connection_flush_now(connection=kustomer_batched)
    connection_flush_now(connection=kustomer_batched)

    for session in sessions:
        update = session.actions.get(kind="update_record", event__type="session.ended")
        assert update.status == CrmAction.Status.PENDING
        assert update.batch_id is None
        assert "bulk_item_fail_rate" in update.last_error
    requests.post(f"{kustomer_sandbox.base_url}/__sandbox/bulk_faults", json={"item_fail_rate": 0.0}, timeout=5)
    settle(sessions, kustomer_batched)
    # each retried alone (unbatched): one PATCH per conversation
    assert requests_of(kustomer_sandbox, CONVERSATION_PATCH) == 2
    for session in sessions:
        assert not session.actions.exclude(status=CrmAction.Status.SUCCEEDED).exists()


def test_batching_on_kustomer_a_lost_read_is_recovered_from_the_bulk_operation_without_a_second_write(
    kustomer_batched: CrmConnection, kustomer_sandbox: SandboxServer
) -> None:
    sessions = [call(1), call(2)]
    for session in sessions:
        session_run_actions(session_id=session.pk)
    batch = open_batch(kustomer_batched)
    batch_flush(batch_id=batch.pk, force=True)  # sent; the read's answer never comes (a crash)
    batch.refresh_from_db()
    assert batch.job_id

    settle(sessions, kustomer_batched)

    assert requests_of(kustomer_sandbox, BULK) == 1
    assert requests_of(kustomer_sandbox, CONVERSATION_PATCH) == 0
    assert requests_of(kustomer_sandbox, BULK_READ) >= 1
