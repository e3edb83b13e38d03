"""Processing and the outbox executor, in-process, against the sandbox Zendesk over loopback HTTP."""

from datetime import timedelta

import pytest
import requests
import responses
from django.utils import timezone

from integrations.models import CrmConnection
from integrations.providers.base import Contact, CrmProvider
from integrations.providers.zendesk import ZendeskProvider
from integrations.sandbox import SandboxServer
from integrations.services import connection_create, connection_settings, rate_gate, retry_countdown
from records.models import CrmAction, Event, Session
from records.selectors import custom_field_crm_ids, session_next_action
from records.services.custom_fields import custom_fields_create
from records.services.execution import (
    CreateRecordProgress,
    Placement,
    RecordDraft,
    RecordLocation,
    action_attempt,
    action_execute,
    action_retry,
    session_run_actions,
    sessions_needing_work,
)
from records.services.processing import session_process
from tests.support import EXAMPLE_CALL, TEST_BROKER_URL, ingest_and_process, sandbox_config, sandbox_stats

pytestmark = pytest.mark.django_db


def ingest_example() -> Session:
    return ingest_and_process(EXAMPLE_CALL["events"])


def tickets(zendesk_api: requests.Session, sandbox: SandboxServer) -> list[dict]:
    return zendesk_api.get(f"{sandbox.base_url}/api/v2/tickets.json", params={"external_id": "c-1"}).json()["tickets"]


def comments(zendesk_api: requests.Session, sandbox: SandboxServer, ticket_id: int) -> list[str]:
    body = zendesk_api.get(f"{sandbox.base_url}/api/v2/tickets/{ticket_id}/comments.json").json()
    return [comment["body"] for comment in body["comments"]]


def run_until_settled(session: Session, rounds: int = 20) -> None:
    """Run the session's actions, skipping the backoff waits a worker would sleep through."""
    for _ in range(rounds):
        CrmAction.objects.filter(session=session, status=CrmAction.Status.PENDING).update(next_attempt_at=None)
        result = session_run_actions(session_id=session.pk)
        if result.retry_in is None:
            return
    raise AssertionError("actions did not settle")


def test_session_process_plans_the_ivr_slice_once(zendesk_connection: CrmConnection) -> None:
    session = ingest_example()

    actions = list(session.actions.order_by("id"))

    assert [(a.kind, a.rule, a.event.event_id if a.event else None) for a in actions] == [
        ("ensure_contact", "S16", "a2"),
        ("create_record", "S2", "a2"),
        ("add_comment", "S8", "a4"),
        ("update_record", "F2", "a4"),
        ("add_comment", "S8", "a5"),
    ]
    assert [a.idempotency_key for a in actions] == [
        f"{session.pk}:ensure_contact",
        f"{session.pk}:create_record",
        f"{session.pk}:comment:a4",
        f"{session.pk}:update:a4",
        f"{session.pk}:comment:a5",
    ]
    assert not Event.objects.filter(applied_at__isnull=True).exists()
    assert Event.objects.get(event_id="a1").outcome == "session recorded; its record is created at assignment"
    session.refresh_from_db()
    assert session.crm_connection == zendesk_connection
    assert (session.session_type, session.phone_number, session.agent_email) == (
        "voice_inbound_ivr",
        "+14155550100",
        "ana@example.com",
    )
    assert session_process(session_id=session.pk) == 0


def test_session_run_actions_makes_the_ticket(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    session = ingest_example()

    result = session_run_actions(session_id=session.pk)

    # The contact, the record, Zendesk's screen pop for Ana who answered (O4), two comments, the fields.
    assert result == type(result)(executed=6, retry_in=None)
    [ticket] = tickets(zendesk_api, zendesk_sandbox)
    session.refresh_from_db()
    assert session.crm_record_id == str(ticket["id"])
    assert session.crm_contact_id == str(ticket["requester_id"])
    assert ticket["subject"] == "IVR Call from +14155550100"
    assert ticket["tags"] == ["voice_inbound_ivr"]
    assert len(comments(zendesk_api, zendesk_sandbox, ticket["id"])) == 3


TICKET_UPDATE = "PUT /api/v2/tickets/{id}.json"


def ticket_updates(sandbox: SandboxServer) -> int:
    return int(sandbox_stats(sandbox)["requests"].get(TICKET_UPDATE, 0))


def test_an_events_comment_and_its_fields_go_in_one_ticket_update(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    custom_fields_create(connection=zendesk_connection)
    session = ingest_example()
    for kind in ("ensure_contact", "create_record"):
        action_execute(action=session.actions.get(kind=kind))
    before = ticket_updates(zendesk_sandbox)

    run_until_settled(session)

    # session.ended: its call_finished comment and the call's fields in one PUT; recording.ready: one more.
    assert ticket_updates(zendesk_sandbox) - before == 2
    ended_comment, ended_fields = session.actions.filter(event__event_id="a4").order_by("id")
    assert (ended_comment.kind, ended_fields.kind) == ("add_comment", "update_record")
    assert ended_comment.result["outcome"] == "added, in one update with the record's changes"
    assert ended_fields.result["outcome"].endswith("field(s) set; in one update with the comment before it")
    assert ended_fields.status == CrmAction.Status.SUCCEEDED
    [ticket] = tickets(zendesk_api, zendesk_sandbox)
    finished = [
        body for body in comments(zendesk_api, zendesk_sandbox, ticket["id"]) if body.startswith("call_finished")
    ]
    assert len(finished) == 1
    ids = custom_field_crm_ids(connection_id=zendesk_connection.pk, keys=["call_duration"])
    assert {"id": int(ids["call_duration"]), "value": 336} in ticket["custom_fields"]


def test_a_shared_update_whose_answer_was_lost_adds_its_comment_once(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    custom_fields_create(connection=zendesk_connection)
    session = ingest_example()
    for kind in ("ensure_contact", "create_record"):
        action_execute(action=session.actions.get(kind=kind))
    ended_comment, ended_fields = session.actions.filter(event__event_id="a4").order_by("id")
    sandbox_config(zendesk_sandbox, lost_response_rate=1.0)

    action_execute(action=ended_comment)

    ended_fields.refresh_from_db()
    assert (ended_comment.status, ended_fields.status) == (CrmAction.Status.PENDING, CrmAction.Status.PENDING)
    sandbox_config(zendesk_sandbox, lost_response_rate=0.0)
    run_until_settled(session)

    [ticket] = tickets(zendesk_api, zendesk_sandbox)
    finished = [
        body for body in comments(zendesk_api, zendesk_sandbox, ticket["id"]) if body.startswith("call_finished")
    ]
    assert len(finished) == 1
    ended_comment.refresh_from_db()
    assert (
        ended_comment.result["outcome"]
        == "an earlier attempt had already added it, in one update with the record's changes"
    )


CONTACT_TICKETS = "GET /api/v2/users/{id}/tickets/requested.json"


def contact_ticket_reads(sandbox: SandboxServer) -> int:
    return int(sandbox_stats(sandbox)["requests"].get(CONTACT_TICKETS, 0))


def the_call(session_id: str) -> list[dict]:
    """The example call under another session id (the same caller)."""
    return [
        {**event, "event_id": f"{session_id}-{event['event_id']}", "session_id": session_id}
        for event in EXAMPLE_CALL["events"]
    ]


def test_a_contact_this_session_just_created_has_no_tickets_to_read(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    first = ingest_and_process(the_call("c-1"), "c-1")
    run_until_settled(first)

    # A new caller: the contact is created, so its tickets are not read.
    assert contact_ticket_reads(zendesk_sandbox) == 0
    assert first.actions.get(kind="ensure_contact").result["created_contact"] is True

    second = ingest_and_process(the_call("c-2"), "c-2")
    run_until_settled(second)

    # The same caller again: the contact is found, its tickets read, the open one appended to (R1).
    assert contact_ticket_reads(zendesk_sandbox) == 1
    second.refresh_from_db()
    assert second.crm_record_id == Session.objects.get(external_id="c-1").crm_record_id
    assert len(tickets(zendesk_api, zendesk_sandbox)) == 1


def test_a_created_contact_another_session_linked_meanwhile_has_its_tickets_read(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    first = ingest_and_process(the_call("c-1"), "c-1")
    second = ingest_and_process(the_call("c-2"), "c-2")
    # c-1 creates the caller's contact; c-2, a concurrent call of the same caller, finds it and makes its ticket.
    action_execute(action=first.actions.get(kind="ensure_contact"))
    run_until_settled(second)
    assert contact_ticket_reads(zendesk_sandbox) == 1

    run_until_settled(first)

    # c-1 made the contact, yet c-2 is on it too: c-1 reads its tickets and appends to c-2's.
    assert contact_ticket_reads(zendesk_sandbox) == 2
    [ticket] = zendesk_api.get(f"{zendesk_sandbox.base_url}/api/v2/tickets.json").json()["tickets"]
    first.refresh_from_db()
    assert first.crm_record_id == str(ticket["id"])


USER_SEARCH = "GET /api/v2/users/search.json"


def contact_searches(sandbox: SandboxServer) -> int:
    """User searches by phone (agents are looked up by email, and cached)."""
    return int(sandbox_stats(sandbox)["requests"].get(USER_SEARCH, 0))


def test_a_repeat_caller_known_by_phone_reuses_their_contact_without_a_search(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    first = ingest_and_process(the_call("c-1"), "c-1")
    run_until_settled(first)
    first.refresh_from_db()
    searches = contact_searches(zendesk_sandbox)

    second = ingest_and_process(the_call("c-2"), "c-2")
    run_until_settled(second)

    assert contact_searches(zendesk_sandbox) == searches
    second.refresh_from_db()
    assert second.crm_contact_id == first.crm_contact_id
    ensure = second.actions.get(kind="ensure_contact")
    assert ensure.result["contact_link"] == "known"
    assert ensure.reason.endswith("→ the caller's contact from their session c-1 (no search)")
    # R1 as before: the open ticket of the first call is appended to.
    assert second.crm_record_id == first.crm_record_id
    assert len(zendesk_api.get(f"{zendesk_sandbox.base_url}/api/v2/tickets.json").json()["tickets"]) == 1


def test_a_guess_among_several_contacts_is_not_reused_for_the_next_call(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    first = ingest_and_process(the_call("c-1"), "c-1")
    run_until_settled(first)
    # The first call linked the newest of several: the next one searches again rather than repeat a guess.
    first.actions.filter(kind="ensure_contact").update(
        result={"contact_id": first.crm_contact_id, "contact_link": "newest"}
    )
    searches = contact_searches(zendesk_sandbox)

    second = ingest_and_process(the_call("c-2"), "c-2")
    run_until_settled(second)

    assert contact_searches(zendesk_sandbox) == searches + 1
    assert second.actions.get(kind="ensure_contact").result["contact_link"] == "found"


def test_a_known_contact_the_crm_no_longer_has_is_searched_for_and_made_again(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    first = ingest_and_process(the_call("c-1"), "c-1")
    run_until_settled(first)
    first.refresh_from_db()
    # Gone from the CRM, as a merge into another user or a permanent deletion leaves it.
    del zendesk_sandbox.sandbox.users[int(first.crm_contact_id)]  # type: ignore[attr-defined]

    second = ingest_and_process(the_call("c-2"), "c-2")
    run_until_settled(second)

    second.refresh_from_db()
    ensure = second.actions.get(kind="ensure_contact")
    assert ensure.status == CrmAction.Status.SUCCEEDED
    assert ensure.result["contact_link"] == "created"
    assert "(no search)" not in ensure.reason
    assert second.crm_contact_id not in ("", first.crm_contact_id)
    create = second.actions.get(kind="create_record")
    assert create.status == CrmAction.Status.SUCCEEDED
    ticket = zendesk_api.get(f"{zendesk_sandbox.base_url}/api/v2/tickets/{second.crm_record_id}.json").json()
    assert str(ticket["ticket"]["requester_id"]) == second.crm_contact_id
    assert second.crm_record_id != first.crm_record_id
    # The refused reuse cost the record no attempt of its own.
    assert create.attempts == 1
    users = zendesk_api.get(
        f"{zendesk_sandbox.base_url}/api/v2/users/search.json", params={"query": "phone:*14155550100"}
    ).json()["users"]
    assert [str(user["id"]) for user in users] == [second.crm_contact_id]


def test_a_pause_for_a_rate_limit_resumes_without_reading_the_crm_again(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    session = ingest_example()
    for kind in ("ensure_contact", "create_record"):
        action_execute(action=session.actions.get(kind=kind))
    ended_comment = session.actions.filter(event__event_id="a4").order_by("id").first()
    assert ended_comment is not None
    # The CRM's window is spent: every worker holds its requests (a 429 gate, or its headers' pause).
    rate_gate().close_for(zendesk_sandbox.base_url + "/", 30)
    action_execute(action=ended_comment)
    assert (ended_comment.status, ended_comment.may_have_written) == (CrmAction.Status.PENDING, False)
    rate_gate().open(zendesk_sandbox.base_url + "/")
    before = sandbox_stats(zendesk_sandbox)["requests"]

    action_execute(action=ended_comment)

    after = sandbox_stats(zendesk_sandbox)["requests"]
    # Nothing was sent during the pause, so nothing is looked up: the comment is written at once.
    assert {route: after[route] - before.get(route, 0) for route in after if after[route] != before.get(route, 0)} == {
        TICKET_UPDATE: 1
    }
    assert ended_comment.status == CrmAction.Status.SUCCEEDED
    [ticket] = tickets(zendesk_api, zendesk_sandbox)
    finished = [
        body for body in comments(zendesk_api, zendesk_sandbox, ticket["id"]) if body.startswith("call_finished")
    ]
    assert len(finished) == 1


def test_an_attempt_whose_write_went_unanswered_looks_before_writing_again(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    session = ingest_example()
    for kind in ("ensure_contact", "create_record"):
        action_execute(action=session.actions.get(kind=kind))
    ended_comment = session.actions.filter(event__event_id="a4").order_by("id").first()
    assert ended_comment is not None
    sandbox_config(zendesk_sandbox, fail_rate=1.0)

    action_execute(action=ended_comment)

    # A 5xx to a write: it may have been applied, so the next attempt reads the comments first.
    assert (ended_comment.status, ended_comment.may_have_written) == (CrmAction.Status.PENDING, True)


def test_a_created_contact_another_session_linked_but_has_no_record_on_yet_has_nothing_to_read(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    first = ingest_and_process(the_call("c-1"), "c-1")
    second = ingest_and_process(the_call("c-2"), "c-2")
    # c-1 creates the caller's contact; c-2, a concurrent call, links it (its own record still to make).
    action_execute(action=first.actions.get(kind="ensure_contact"))
    action_execute(action=second.actions.get(kind="ensure_contact"))

    action_execute(action=first.actions.get(kind="create_record"))

    # No record of ours is on the contact yet, so there is none to read; c-2 reads and appends later.
    assert contact_ticket_reads(zendesk_sandbox) == 0
    run_until_settled(second)
    assert contact_ticket_reads(zendesk_sandbox) == 1
    second.refresh_from_db()
    assert second.crm_record_id == Session.objects.get(external_id="c-1").crm_record_id


def test_retried_create_after_a_lost_response_links_the_ticket_instead_of_making_another(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    # given: the contact is found, then the CRM creates the ticket but the answer is lost
    session = ingest_example()
    action_execute(action=session.actions.get(kind="ensure_contact"))
    sandbox_config(zendesk_sandbox, lost_response_rate=1.0)
    create = session.actions.get(kind="create_record")

    action_execute(action=create)

    assert create.status == CrmAction.Status.PENDING
    assert create.attempts == 1
    assert "500" in create.last_error
    assert create.next_attempt_at is not None

    # when: the retry runs
    sandbox_config(zendesk_sandbox, lost_response_rate=0.0)
    run_until_settled(session)

    # then: one ticket, linked, with every comment once
    [ticket] = tickets(zendesk_api, zendesk_sandbox)
    create.refresh_from_db()
    assert create.status == CrmAction.Status.SUCCEEDED
    assert create.result == {"record_id": str(ticket["id"]), "outcome": "found the record an earlier attempt created"}
    assert len(comments(zendesk_api, zendesk_sandbox, ticket["id"])) == 3


def test_retried_comment_after_a_lost_response_is_not_posted_twice(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    session = ingest_example()
    for kind in ("ensure_contact", "create_record"):
        action_execute(action=session.actions.get(kind=kind))
    sandbox_config(zendesk_sandbox, lost_response_rate=1.0)
    comment = session.actions.filter(kind="add_comment").first()
    assert comment is not None
    action_execute(action=comment)
    sandbox_config(zendesk_sandbox, lost_response_rate=0.0)

    run_until_settled(session)

    [ticket] = tickets(zendesk_api, zendesk_sandbox)
    bodies = comments(zendesk_api, zendesk_sandbox, ticket["id"])
    assert len(bodies) == 3
    assert len(set(bodies)) == 3
    comment.refresh_from_db()
    assert comment.result["outcome"] == "an earlier attempt had already added it"


@pytest.mark.parametrize(
    ("before", "fault", "kind", "route", "status", "sent"),
    [
        # A read answered 500 once, then 200: sent again in place, the one attempt succeeds.
        ((), "fail_next", "ensure_contact", "GET /api/v2/users/search.json", CrmAction.Status.SUCCEEDED, 2),
        # A write answered 500: sent once; the action waits for its next attempt (which looks first).
        (
            ("ensure_contact",),
            "fail_next_writes",
            "create_record",
            "POST /api/v2/tickets.json",
            CrmAction.Status.PENDING,
            1,
        ),
    ],
    ids=["a-read-answered-500-once-succeeds-in-one-attempt", "a-write-answered-500-is-not-repeated-in-place"],
)
def test_only_reads_are_sent_again_in_place(
    zendesk_connection: CrmConnection,
    zendesk_sandbox: SandboxServer,
    before: tuple[str, ...],
    fault: str,
    kind: str,
    route: str,
    status: str,
    sent: int,
) -> None:
    session = ingest_example()
    for earlier in before:
        action_execute(action=session.actions.get(kind=earlier))
    action = session.actions.get(kind=kind)
    # given: the CRM's next answer (to any request, or to a write) is a 500
    sandbox_config(zendesk_sandbox, **{fault: 1})

    action_execute(action=action)

    action.refresh_from_db()
    assert (action.status, action.attempts) == (status, 1)
    stats = sandbox_stats(zendesk_sandbox)
    assert stats["injected_failures"] == 1
    assert stats["requests"][route] == sent


def test_429_waits_for_retry_after_without_spending_an_attempt(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    session = ingest_example()
    sandbox_config(zendesk_sandbox, rate_limit_per_minute=1)
    requests.get(f"{zendesk_sandbox.base_url}/api/v2/users.json", auth=("a/token", "b"), timeout=5)
    action = session.actions.get(kind="ensure_contact")

    result = session_run_actions(session_id=session.pk)

    action.refresh_from_db()
    assert result.executed == 1
    assert action.status == CrmAction.Status.PENDING
    assert action.attempts == 0
    assert "429" in action.last_error
    assert result.retry_in is not None
    assert 1 <= result.retry_in <= 62
    assert action.next_attempt_at is not None
    assert action.next_attempt_at > timezone.now()


def test_transient_failures_are_retried_within_the_budget_then_fail_and_block_the_rest(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    session = ingest_example()
    sandbox_config(zendesk_sandbox, fail_rate=1.0)
    ensure = session.actions.get(kind="ensure_contact")

    # given: a CRM answering only 5xx, five attempts in a row (the backoff waits skipped)
    for _ in range(5):
        CrmAction.objects.filter(pk=ensure.pk).update(next_attempt_at=None)
        session_run_actions(session_id=session.pk)

    # then: well within the day's budget, the action still waits for the CRM, its attempts counted
    ensure.refresh_from_db()
    assert ensure.status == CrmAction.Status.PENDING
    assert ensure.attempts == 5
    assert ensure.failing_since is not None
    assert ensure.next_attempt_at is not None

    # when: the CRM has been failing it for longer than CRM_RETRY_BUDGET_SECONDS (a day)
    CrmAction.objects.filter(pk=ensure.pk).update(
        next_attempt_at=None, failing_since=timezone.now() - timedelta(days=1, seconds=1)
    )
    session_run_actions(session_id=session.pk)

    # then: it fails for good, saying for how long, and holds back the rest of the session
    ensure.refresh_from_db()
    assert ensure.status == CrmAction.Status.FAILED
    assert ensure.attempts == 6
    assert ensure.last_error.startswith("gave up after 6 attempts: ")
    assert ensure.last_error.endswith("(the CRM kept failing for 1 day)")
    assert session_next_action(session.pk) is None
    assert session.actions.filter(status=CrmAction.Status.PENDING).count() == 4

    # An admin's Retry, once the CRM is back, finishes the chain, with a fresh budget.
    sandbox_config(zendesk_sandbox, fail_rate=0.0)
    action_retry(action=ensure)
    ensure.refresh_from_db()
    assert ensure.failing_since is None
    run_until_settled(session)
    assert set(session.actions.values_list("status", flat=True)) == {CrmAction.Status.SUCCEEDED}


def test_a_connection_may_set_its_own_retry_budget(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    zendesk_connection.config = {**zendesk_connection.config, "retry_budget_seconds": 60}
    zendesk_connection.save()
    session = ingest_example()
    sandbox_config(zendesk_sandbox, fail_rate=1.0)
    ensure = session.actions.get(kind="ensure_contact")

    session_run_actions(session_id=session.pk)
    CrmAction.objects.filter(pk=ensure.pk).update(
        next_attempt_at=None, failing_since=timezone.now() - timedelta(seconds=61)
    )
    session_run_actions(session_id=session.pk)

    ensure.refresh_from_db()
    assert ensure.status == CrmAction.Status.FAILED
    assert ensure.last_error.endswith("(the CRM kept failing for 1 min)")


def test_a_refusal_the_crm_will_never_accept_fails_at_once(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    session = ingest_example()
    ensure = session.actions.get(kind="ensure_contact")
    # An email Zendesk refuses (422): no retry will make it acceptable.
    ensure.payload = {**ensure.payload, "email": "not-an-email", "phone": "", "external_id": ""}
    ensure.save(update_fields=["payload"])

    session_run_actions(session_id=session.pk)

    ensure.refresh_from_db()
    assert ensure.status == CrmAction.Status.FAILED
    assert ensure.attempts == 1
    assert "422" in ensure.last_error
    assert ensure.failing_since is None


def test_a_payload_the_executor_cannot_read_fails_as_our_bug_without_asking_the_crm(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    session = ingest_example()
    ensure = session.actions.get(kind="ensure_contact")
    ensure.payload = {**ensure.payload, "phone": 14155550100}
    ensure.save(update_fields=["payload"])
    before = sandbox_stats(zendesk_sandbox)["requests"]

    session_run_actions(session_id=session.pk)

    ensure.refresh_from_db()
    assert ensure.status == CrmAction.Status.FAILED
    assert ensure.last_error == (
        "bug in CRM Bridge: this action's stored payload cannot be read "
        "(ensure_contact.phone: expected str, got 14155550100)"
    )
    assert sandbox_stats(zendesk_sandbox)["requests"] == before


def test_our_own_redis_trouble_is_retried_and_never_counts_as_a_crm_attempt(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, settings: object
) -> None:
    session = ingest_example()
    ensure = session.actions.get(kind="ensure_contact")
    before = sandbox_stats(zendesk_sandbox)["total"]
    # The rate gate every CRM call passes is in Redis: nothing listens on port 1.
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # type: ignore[attr-defined]
    rate_gate.cache_clear()
    try:
        for _ in range(3):
            CrmAction.objects.filter(pk=ensure.pk).update(next_attempt_at=None)
            session_run_actions(session_id=session.pk)
    finally:
        rate_gate.cache_clear()

    ensure.refresh_from_db()
    assert ensure.status == CrmAction.Status.PENDING
    assert ensure.attempts == 0
    assert ensure.failing_since is None
    assert ensure.last_error.startswith("our own service failed, not the CRM (ConnectionError")
    assert sandbox_stats(zendesk_sandbox)["total"] == before

    # Redis back: the action goes through as if nothing had happened.
    settings.REDIS_URL = TEST_BROKER_URL  # type: ignore[attr-defined]
    run_until_settled(session)
    assert set(session.actions.values_list("status", flat=True)) == {CrmAction.Status.SUCCEEDED}


def test_a_wait_longer_than_the_broker_holds_is_left_to_the_sweep(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    session = ingest_example()
    ensure = session.actions.get(kind="ensure_contact")
    CrmAction.objects.filter(pk=ensure.pk).update(
        next_attempt_at=timezone.now() + timedelta(hours=1), updated_at=timezone.now() - timedelta(hours=1)
    )

    result = session_run_actions(session_id=session.pk)

    assert result.retry_in is not None
    assert result.retry_in > 3000
    assert retry_countdown(result.retry_in) is None
    # Due, the sweep finds it (its message would have been redelivered by the broker meanwhile).
    CrmAction.objects.filter(pk=ensure.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    _, due = sessions_needing_work(stale_after=timedelta(minutes=2))
    assert session.pk in due


def test_without_an_active_connection_the_action_fails_visibly(db: None) -> None:
    session = ingest_example()

    session_run_actions(session_id=session.pk)

    ensure = session.actions.get(kind="ensure_contact")
    assert ensure.status == CrmAction.Status.FAILED
    assert ensure.last_error == "No active CRM connection: add one in the admin, then retry this action."


def test_unknown_agent_leaves_the_ticket_unassigned_and_says_so(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    session = ingest_example()
    create = session.actions.get(kind="create_record")
    create.payload["assignee_email"] = "ghost@example.com"
    create.save(update_fields=["payload"])

    session_run_actions(session_id=session.pk)

    [ticket] = tickets(zendesk_api, zendesk_sandbox)
    assert ticket["assignee_id"] is None
    create.refresh_from_db()
    assert create.result["outcome"].endswith(
        "(contact's records: none); Agent ghost@example.com was not found in the CRM: the record was not assigned."
    )


def test_sessions_needing_work_finds_lost_messages_but_not_blocked_sessions(zendesk_connection: CrmConnection) -> None:
    # given: one session whose processing message was lost, one whose action run was lost,
    # one held back by a failed record action, and one with fresh work a worker will take
    long_ago = timezone.now() - timedelta(minutes=10)
    lost_processing = ingest_and_process(EXAMPLE_CALL["events"][:1], session_id="c-1")
    Event.objects.filter(session=lost_processing).update(applied_at=None, received_at=long_ago)
    lost_run = Session.objects.create(external_id="lost-run")
    blocked = Session.objects.create(external_id="blocked")
    fresh = Session.objects.create(external_id="fresh")
    for session, status, kind in [
        (lost_run, CrmAction.Status.PENDING, "ensure_contact"),
        (blocked, CrmAction.Status.FAILED, "create_record"),
        (blocked, CrmAction.Status.PENDING, "add_comment"),
        (fresh, CrmAction.Status.PENDING, "ensure_contact"),
    ]:
        CrmAction.objects.create(session=session, kind=kind, status=status, idempotency_key=f"{session.pk}:{kind}")
    CrmAction.objects.exclude(session=fresh).update(updated_at=long_ago)

    unapplied, due = sessions_needing_work(stale_after=timedelta(minutes=2))

    assert unapplied == [lost_processing.pk]
    assert due == [lost_run.pk]


@responses.activate
def test_a_crm_answer_of_the_wrong_shape_fails_the_action_visibly(db: None) -> None:
    # A proxy in front of the CRM answers JSON, but not Zendesk's: the user search has no "users".
    connection_create(
        name="Behind a proxy",
        kind="zendesk",
        base_url="https://acme.zendesk.com",
        settings={"email": "bot@acme.com", "api_token": "t"},
    )
    responses.get("https://acme.zendesk.com/api/v2/users/search.json", json={"status": "ok"})
    session = ingest_example()

    session_run_actions(session_id=session.pk)

    ensure = session.actions.get(kind="ensure_contact")
    assert ensure.status == CrmAction.Status.FAILED
    assert ensure.last_error == "unexpected answer from the CRM (KeyError: 'users')"


class LosesTheSearchRace(ZendeskProvider):
    """A real provider whose first search runs just before another session creates the contact."""

    searches = 0

    def find_contacts(
        self, *, phone: str | None = None, email: str | None = None, external_id: str | None = None
    ) -> list[Contact]:
        LosesTheSearchRace.searches += 1
        if LosesTheSearchRace.searches == 1:
            self.create_contact(name="Created by the other session", phone=phone, email=email, external_id=external_id)
            return []
        return super().find_contacts(phone=phone, email=email, external_id=external_id)


def test_contact_created_by_a_concurrent_session_is_linked_not_duplicated(
    zendesk_connection: CrmConnection, zendesk_api: requests.Session, zendesk_sandbox: SandboxServer
) -> None:
    session = ingest_example()
    provider = LosesTheSearchRace(connection_settings(zendesk_connection))
    action = session.actions.get(kind="ensure_contact")

    result = action_attempt(provider=provider, session=session, action=action, retried=False)

    users = zendesk_api.get(
        f"{zendesk_sandbox.base_url}/api/v2/users/search.json", params={"query": "phone:*14155550100"}
    )
    [user] = users.json()["users"]
    assert result == {
        "contact_id": str(user["id"]),
        "outcome": "linked the contact a concurrent session created (422)",
        "decision": "linked the contact a concurrent session created (422)",
        "contact_link": "found",
    }
    assert user["name"] == "Created by the other session"


def test_a_retried_create_resumes_with_what_it_read_instead_of_reading_again(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    session = ingest_example()
    ensure = session.actions.get(kind="ensure_contact")
    create = session.actions.get(kind="create_record")
    assert create.payload["assignee_email"]
    action_execute(action=ensure)

    # given: the create's reads answered, its write applied but its answer lost (a 500)
    sandbox_config(zendesk_sandbox, lost_response_rate=1.0)
    action_execute(action=create)
    create.refresh_from_db()
    assert create.status == CrmAction.Status.PENDING
    assert set(create.progress) == {"draft", "location"}
    first = dict(sandbox_stats(zendesk_sandbox)["requests"])

    # when: the retry runs with the CRM answering again
    sandbox_config(zendesk_sandbox, lost_response_rate=0.0)
    action_execute(action=create)

    # then: it looks up only what the lost write may have made, not the agent or the contact's records again
    create.refresh_from_db()
    assert create.status == CrmAction.Status.SUCCEEDED
    assert create.progress == {}
    retry = {
        kind: count - first.get(kind, 0)
        for kind, count in sandbox_stats(zendesk_sandbox)["requests"].items()
        if count - first.get(kind, 0)
    }
    assert retry.get("GET /api/v2/users/search.json", 0) == 0, retry
    assert retry.get("GET /api/v2/users/{id}/tickets/requested.json", 0) == 0, retry
    assert retry.get("GET /api/v2/tickets.json", 0) == 1, retry  # the record the lost answer made, by external id
    assert create.result["outcome"].startswith("found the record an earlier attempt created")
    assert len(tickets(zendesk_api, zendesk_sandbox)) == 1


def test_create_record_progress_round_trips_through_json() -> None:
    progress = CreateRecordProgress(
        draft=RecordDraft(notes=("a note",), assignee_id="7", tags=("voice",), fields={"360": "x"}),
        location=RecordLocation(Placement.APPEND, "appended to the open record", "42", reopen=True),
    )

    assert CreateRecordProgress.from_json(progress.to_json()) == progress
    assert CreateRecordProgress.from_json({}) == CreateRecordProgress()


def test_a_sessions_contact_and_record_go_ahead_of_its_follow_ups_in_the_rate_gate(
    zendesk_connection: CrmConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from integrations.ratelimit import WorkClass
    from records.services import execution

    classes: list[tuple[str, WorkClass]] = []
    built = execution.connection_provider

    def provider(connection: CrmConnection, *, work_class: WorkClass = WorkClass.LIVE) -> CrmProvider:
        classes.append((current, work_class))
        return built(connection, work_class=work_class)

    monkeypatch.setattr(execution, "connection_provider", provider)
    session = ingest_example()
    for action in CrmAction.objects.filter(session=session).order_by("id"):
        current = action.kind
        action_execute(action=action)

    # the contact search/create and the ticket create: record work; the comments and updates after: live
    assert ("ensure_contact", WorkClass.RECORD) in classes
    assert ("create_record", WorkClass.RECORD) in classes
    assert {work for kind, work in classes if kind not in ("ensure_contact", "create_record")} == {WorkClass.LIVE}
