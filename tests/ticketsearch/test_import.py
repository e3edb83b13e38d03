"""Import from the sandbox CRMs over loopback HTTP (T1, T2): each rule's accept and skip case, reruns."""

import gc
import time
from collections.abc import Iterator
from io import StringIO

import pytest
import requests
from django.core.management import CommandError, call_command

from integrations.exceptions import CrmRateLimited
from integrations.models import CrmConnection
from integrations.providers.zendesk import ZendeskProvider
from integrations.sandbox import SandboxServer
from integrations.sandbox import salesforce as salesforce_sandbox_module
from tests.support import sandbox_config, sandbox_stats
from tests.ticketsearch.support import (
    DANA,
    DANA_PHONE,
    ZOE,
    iso_days_ago,
    seed,
    seed_salesforce,
    seed_zendesk,
    sf_days_ago,
    zendesk_users,
)
from ticketsearch.models import Agent, AgentOrigin, CrmComment, ImportRun, ImportState, Ticket
from ticketsearch.services import importing
from ticketsearch.services.importing import ABANDONED_ERROR, tickets_import

pytestmark = pytest.mark.django_db

EXPORT = "GET /api/v2/incremental/tickets/cursor.json"


def run_import(connection: CrmConnection) -> ImportRun:
    return tickets_import(connection=connection, trigger=ImportRun.Trigger.COMMAND)


@pytest.fixture
def zendesk_seeded(zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer) -> CrmConnection:
    seed_zendesk(zendesk_sandbox)
    return zendesk_connection


def test_T1_agents_are_imported_and_unimportable_users_skipped_with_their_reason(zendesk_seeded: CrmConnection) -> None:
    run = run_import(zendesk_seeded)

    emails = set(Agent.objects.values_list("email", flat=True))
    # The demo fixture's three agents, and Zoe; end users are never listed as agents.
    assert emails == {"ana@example.com", "ben@example.com", "carla@example.com", "zoe@example.com"}
    assert run.users_created == 4
    assert run.skipped["user_missing_email"] == 1
    assert run.skipped["user_missing_first_or_last_name"] == 1
    assert run.skipped["user_email_as_name"] == 1
    zoe = Agent.objects.get(email="zoe@example.com")
    assert (zoe.first_name, zoe.last_name, zoe.crm_user_id, zoe.origin) == ("Zoe", "Quality", str(ZOE), "crm")


def test_T2_only_solved_tickets_of_imported_agents_within_90_days_are_imported(zendesk_seeded: CrmConnection) -> None:
    run = run_import(zendesk_seeded)

    assert sorted(Ticket.objects.values_list("crm_ticket_id", flat=True)) == ["1", "6"]
    assert (run.tickets_fetched, run.tickets_imported) == (6, 2)
    assert run.skipped["ticket_not_solved"] == 1
    # T1: the user without email was not created, so their ticket is not imported.
    assert run.skipped["ticket_agent_not_imported"] == 1
    assert run.skipped["ticket_without_agent"] == 1
    assert run.skipped["ticket_older_than_90_days"] == 1


def test_T2_only_interactions_carrying_user_information_are_imported(zendesk_seeded: CrmConnection) -> None:
    run = run_import(zendesk_seeded)

    ticket = Ticket.objects.get(crm_ticket_id="1")
    assert [c["body"] for c in ticket.comments] == [
        "My router arrived broken, I want a refund",
        "Refund issued to the card on file",
        "Inbound call",
    ]
    assert run.comments_skipped == 1
    assert "merged by a trigger" not in ticket.comments_text
    # The voice interaction brings its recording and transcript.
    assert ticket.recording_urls == ["https://acme.zendesk.com/recordings/r1.mp3"]
    assert ticket.transcript == "Caller says the parcel was damaged in transit"
    assert (ticket.channel, ticket.status, ticket.tags) == ("voice", "solved", ["vip", "billing"])
    assert (ticket.requester_email, ticket.requester_phone) == ("dana@example.net", DANA_PHONE)
    assert ticket.agent is not None
    assert ticket.agent.email == "zoe@example.com"
    assert ticket.crm_url.endswith("/agent/tickets/1")


def test_T2_a_second_run_reads_only_what_changed_and_never_duplicates(
    zendesk_seeded: CrmConnection, zendesk_api: requests.Session, zendesk_sandbox: SandboxServer
) -> None:
    run_import(zendesk_seeded)
    exports = sandbox_stats(zendesk_sandbox)["requests"][EXPORT]

    second = run_import(zendesk_seeded)
    assert (second.tickets_fetched, second.tickets_imported, second.tickets_updated) == (0, 0, 0)

    # The open ticket is solved in the CRM: the next run reads that one ticket and imports it.
    zendesk_api.put(f"{zendesk_sandbox.base_url}/api/v2/tickets/2.json", json={"ticket": {"status": "solved"}})
    third = run_import(zendesk_seeded)

    assert (third.tickets_fetched, third.tickets_imported) == (1, 1)
    assert sorted(Ticket.objects.values_list("crm_ticket_id", flat=True)) == ["1", "2", "6"]
    assert sandbox_stats(zendesk_sandbox)["requests"][EXPORT] == exports + 2
    state = ImportState.objects.get(connection=zendesk_seeded)
    assert state.tickets_cursor
    assert state.last_run_at is not None


def test_T2_a_changed_ticket_is_updated_in_place_and_a_reopened_one_leaves_the_search(
    zendesk_seeded: CrmConnection, zendesk_api: requests.Session, zendesk_sandbox: SandboxServer
) -> None:
    run_import(zendesk_seeded)
    url = f"{zendesk_sandbox.base_url}/api/v2/tickets/1.json"

    zendesk_api.put(url, json={"ticket": {"subject": "Refund (router)"}}).raise_for_status()
    updated = run_import(zendesk_seeded)
    zendesk_api.put(url, json={"ticket": {"status": "open"}}).raise_for_status()
    reopened = run_import(zendesk_seeded)

    assert (updated.tickets_imported, updated.tickets_updated) == (0, 1)
    assert reopened.tickets_removed == 1
    assert list(Ticket.objects.values_list("crm_ticket_id", flat=True)) == ["6"]


def test_T2_one_page_with_a_new_ticket_and_a_changed_one_counts_each_once(
    zendesk_seeded: CrmConnection, zendesk_api: requests.Session, zendesk_sandbox: SandboxServer
) -> None:
    run_import(zendesk_seeded)
    base = f"{zendesk_sandbox.base_url}/api/v2/tickets"

    zendesk_api.put(f"{base}/1.json", json={"ticket": {"subject": "Refund (router)"}}).raise_for_status()
    zendesk_api.put(f"{base}/2.json", json={"ticket": {"status": "solved"}}).raise_for_status()
    second = run_import(zendesk_seeded)

    # Both in the one page the export answers: the new one inserted, the changed one updated.
    assert (second.tickets_fetched, second.tickets_imported, second.tickets_updated) == (2, 1, 1)
    assert Ticket.objects.get(crm_ticket_id="1").subject == "Refund (router)"
    assert sorted(Ticket.objects.values_list("crm_ticket_id", flat=True)) == ["1", "2", "6"]


def test_the_cycle_collector_runs_again_after_an_import_that_paused_it(zendesk_seeded: CrmConnection) -> None:
    assert gc.isenabled()

    run_import(zendesk_seeded)

    assert gc.isenabled()


def test_T1_a_user_made_by_another_channel_is_linked_once_then_not_reimported(
    zendesk_seeded: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    Agent.objects.create(
        email="Zoe@Example.com", first_name="Z", last_name="Recorder", origin=AgentOrigin.OTHER_CHANNEL
    )

    first = run_import(zendesk_seeded)
    zoe = Agent.objects.get(email__iexact="zoe@example.com")
    assert (zoe.first_name, zoe.last_name, zoe.crm_user_id) == ("Zoe", "Quality", str(ZOE))
    assert zoe.linked_at is not None
    assert first.users_updated == 1

    seed(zendesk_sandbox, {"users": [{"id": ZOE, "name": "Zoe Renamed", "email": "zoe@example.com", "role": "agent"}]})
    second = run_import(zendesk_seeded)

    zoe.refresh_from_db()
    assert zoe.last_name == "Quality"
    assert second.skipped["user_created_by_other_channel"] == 1
    # Still the agent of her tickets: they are imported.
    assert Ticket.objects.filter(agent=zoe).count() == 2


def test_T1_email_is_unique_across_crms_and_inactive_users(
    zendesk_seeded: CrmConnection, salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer
) -> None:
    run_import(zendesk_seeded)
    Agent.objects.filter(email="ben@example.com").update(is_active=False)
    seed(salesforce_sandbox, {"users": [
        {"FirstName": "Zoe", "LastName": "Other", "Email": "ZOE@example.com"},
        {"FirstName": "Ben", "LastName": "Again", "Email": "ben@example.com"},
    ]})  # fmt: skip

    run = run_import(salesforce_connection)

    assert run.skipped["user_duplicate_email"] == 2
    assert Agent.objects.filter(connection=salesforce_connection).count() == 0


def test_T1_T2_salesforce_users_and_cases_import_with_the_same_rules(
    salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer
) -> None:
    ids = seed_salesforce(salesforce_sandbox)

    run = run_import(salesforce_connection)

    agents = set(Agent.objects.values_list("email", "is_active"))
    assert agents == {("sam@example.com", True), ("old@example.com", False)}
    assert run.skipped["user_not_an_agent"] == 1
    assert run.skipped["ticket_not_solved"] == 1
    assert run.skipped["ticket_without_agent"] == 1  # owned by a queue
    tickets = {t.subject: t for t in Ticket.objects.all()}
    assert set(tickets) == {"Invoice charged twice", "Warranty question"}
    invoice = tickets["Invoice charged twice"]
    assert (invoice.crm_kind, invoice.channel, invoice.status) == ("salesforce", "voice", "Closed")
    assert invoice.comments_text == "Refunded the duplicate charge"
    assert invoice.requester_phone == "+442071838750"
    assert invoice.crm_url == f"{salesforce_sandbox.base_url}/lightning/r/Case/{ids['case1']}/view"
    assert tickets["Warranty question"].transcript == "Visitor: is my screen covered by the warranty?"


def test_T2_salesforce_rerun_reads_from_the_cursor_and_never_duplicates(
    salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer
) -> None:
    seed_salesforce(salesforce_sandbox)
    run_import(salesforce_connection)

    second = run_import(salesforce_connection)

    # `SystemModstamp >= cursor`: only the records of the cursor's last second are read again, unchanged.
    assert second.tickets_fetched < 4
    assert (second.tickets_imported, second.tickets_updated) == (0, 0)
    assert Ticket.objects.count() == 2


def test_salesforce_import_logs_in_again_when_the_token_expires(
    salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer
) -> None:
    seed_salesforce(salesforce_sandbox)
    run_import(salesforce_connection)
    requests.post(f"{salesforce_sandbox.base_url}/__sandbox/expire_tokens", timeout=5).raise_for_status()

    run = run_import(salesforce_connection)

    assert run.status == ImportRun.Status.SUCCEEDED


def test_a_rate_limited_import_fails_visibly_and_keeps_what_it_saved(
    salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer
) -> None:
    seed_salesforce(salesforce_sandbox)
    sandbox_config(salesforce_sandbox, throttle_rate=1.0)

    with pytest.raises(CrmRateLimited):
        run_import(salesforce_connection)

    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.FAILED
    assert "REQUEST_LIMIT_EXCEEDED" in run.error


def test_import_tickets_command_shows_a_summary_with_skip_reasons(zendesk_seeded: CrmConnection) -> None:
    out, err = StringIO(), StringIO()

    call_command("import_tickets", "--connection", str(zendesk_seeded.pk), stdout=out, stderr=err)

    summary = out.getvalue()
    assert "6 read, 2 imported" in summary
    assert "ticket_not_solved: 1" in summary
    assert "user_missing_email: 1" in summary
    assert "tickets" in err.getvalue()  # the progress bar


def test_import_tickets_command_since_reads_everything_again(zendesk_seeded: CrmConnection) -> None:
    call_command("import_tickets", "--no-progress", stdout=StringIO())
    out = StringIO()

    call_command("import_tickets", "--since", "2000-01-01", "--no-progress", stdout=out)

    assert "6 read, 0 imported, 0 updated" in out.getvalue()


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "give a date"),
    (["--connection", "999999"], "no CRM connection with id 999999"),
])  # fmt: skip
def test_import_tickets_command_rejects_bad_arguments(
    zendesk_connection: CrmConnection, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("import_tickets", *args, stdout=StringIO())


def tpe_ticket(ticket_id: int, data: dict[str, object]) -> dict[str, object]:
    """A solved voice ticket whose call a partner integration logged through Talk Partner Edition."""
    return {
        "id": ticket_id,
        "subject": f"Partner call {ticket_id}",
        "status": "solved",
        "via": "voice",
        "assignee_id": ZOE,
        "requester_id": DANA,
        "created_at": iso_days_ago(2),
        "updated_at": iso_days_ago(1),
        "comments": [
            {"body": "Caller asked about a late parcel", "author_id": ZOE},
            {
                # The shape of zenpy's recorded POST /api/v2/calls/{id}/comments.json answer.
                "type": "TpeVoiceComment",
                "public": False,
                "author_id": ZOE,
                "body": "Inbound call\n\nSummary\nDirection: inbound",
                "data": {"app_id": 1003048, "app_name": "3CX calls", "call_id": 16444799095826, "via_id": 45,
                         "direction": "inbound", "title": "Inbound call", "external_id": None, **data},
            },
        ],
    }  # fmt: skip


def test_T2_talk_partner_edition_voice_comments_bring_their_recording_and_transcript(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    seed(
        zendesk_sandbox,
        {
            "users": zendesk_users(),
            "tickets": [
                tpe_ticket(
                    11,
                    {"recording_url": "https://pbx.example.com/rec/11.mp3", "transcript": "Caller: where is it?"},
                ),
                # A partner call without a recording: Zendesk sends "" for its recording_url.
                tpe_ticket(12, {"recording_url": "", "transcript": "Caller: never mind."}),
            ],
        },
    )

    run = run_import(zendesk_connection)

    assert run.tickets_imported == 2
    with_recording = Ticket.objects.get(crm_ticket_id="11")
    assert with_recording.recording_urls == ["https://pbx.example.com/rec/11.mp3"]
    assert with_recording.transcript == "Caller: where is it?"
    assert [c["body"] for c in with_recording.comments] == [
        "Caller asked about a late parcel",
        "Inbound call\n\nSummary\nDirection: inbound",
    ]
    without = Ticket.objects.get(crm_ticket_id="12")
    assert without.recording_urls == []
    assert without.transcript == "Caller: never mind."
    # Found by QA search through the transcript like any other call.
    assert Ticket.objects.filter(transcript__icontains="where is it").count() == 1


def test_T2_generated_voice_tickets_include_partner_calls_the_import_reads(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    seed(zendesk_sandbox, {"count": 300, "seed": 3})
    run_import(zendesk_connection)

    voice = Ticket.objects.filter(channel="voice")
    tpe_ticket_ids = [
        ticket.crm_ticket_id
        for ticket in voice
        if any(
            comment["type"] == "TpeVoiceComment"
            for comment in zendesk_api.get(
                f"{zendesk_sandbox.base_url}/api/v2/tickets/{ticket.crm_ticket_id}/comments.json", timeout=10
            ).json()["comments"]
        )
    ]
    assert tpe_ticket_ids, "the generator serves Talk Partner Edition comments"
    for ticket in voice.filter(crm_ticket_id__in=tpe_ticket_ids):
        assert ticket.transcript.startswith("Caller: my ")
        assert len(ticket.recording_urls) == 1


# -- Time limits (issue 15: an import at its time limit is marked and resumed) -------------------


def test_an_import_past_its_deadline_stops_between_pages_and_the_next_run_resumes_from_its_cursor(
    zendesk_seeded: CrmConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ZendeskProvider, "EXPORT_PAGE_SIZE", 2)
    clock = {"now": 0.0}
    monkeypatch.setattr(importing, "monotonic", lambda: clock["now"])

    def tickets_page_read(phase: str, items: int, total: int | None) -> None:
        if phase == "tickets":
            clock["now"] = 100.0

    first = tickets_import(
        connection=zendesk_seeded, trigger=ImportRun.Trigger.SCHEDULE, deadline=50.0, progress=tickets_page_read
    )

    assert first.status == ImportRun.Status.INTERRUPTED
    assert "time limit" in first.error
    assert first.tickets_fetched == 2
    assert list(Ticket.objects.values_list("crm_ticket_id", flat=True)) == ["1"]

    second = tickets_import(connection=zendesk_seeded, trigger=ImportRun.Trigger.RESUME)

    assert second.status == ImportRun.Status.SUCCEEDED
    # Only the four tickets after the first page are read again.
    assert second.tickets_fetched == 4
    assert sorted(Ticket.objects.values_list("crm_ticket_id", flat=True)) == ["1", "6"]


def test_salesforce_pages_are_read_one_ahead_and_a_run_past_its_deadline_resumes_from_its_cursor(
    salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_salesforce(salesforce_sandbox)
    monkeypatch.setattr(salesforce_sandbox_module, "QUERY_BATCH_SIZE", 1)
    clock = {"now": 0.0}
    monkeypatch.setattr(importing, "monotonic", lambda: clock["now"])
    pages_stored = []

    def tickets_page_stored(phase: str, items: int, total: int | None) -> None:
        if phase == "tickets":
            pages_stored.append(items)
            clock["now"] = 100.0

    first = tickets_import(
        connection=salesforce_connection,
        trigger=ImportRun.Trigger.SCHEDULE,
        deadline=50.0,
        progress=tickets_page_stored,
    )

    assert first.status == ImportRun.Status.INTERRUPTED
    assert first.tickets_fetched == 1
    assert pages_stored == [1]
    # The page read ahead of the deadline is not saved: the next run reads it again.
    second = tickets_import(connection=salesforce_connection, trigger=ImportRun.Trigger.RESUME)

    assert second.status == ImportRun.Status.SUCCEEDED
    assert first.tickets_fetched + second.tickets_fetched >= 4
    assert sorted(Ticket.objects.values_list("subject", flat=True)) == ["Invoice charged twice", "Warranty question"]
    assert gc.isenabled()


def test_read_ahead_yields_every_item_in_order_never_more_than_one_ahead() -> None:
    made: list[int] = []

    def items() -> Iterator[int]:
        for i in range(5):
            made.append(i)
            yield i

    seen = []
    with importing._ReadAhead(items()) as ahead:
        for item in ahead:
            time.sleep(0.05)  # the thread has time to run ahead, were it allowed to
            # This one and at most the next were made.
            assert len(made) <= item + 2
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_starts_the_next_item_when_told_and_not_before() -> None:
    made: list[int] = []

    def items() -> Iterator[int]:
        for i in range(3):
            made.append(i)
            yield i

    with importing._ReadAhead(items()) as ahead:
        pages = iter(ahead)
        assert next(pages) == 0
        time.sleep(0.2)
        assert made == [0]
        ahead.read_next()
        deadline = time.monotonic() + 5
        while len(made) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert made == [0, 1]
        # Asked for twice (here and by the iteration), made once.
        ahead.read_next()
        assert next(pages) == 1
        assert next(pages) == 2
        assert next(pages, None) is None
    assert made == [0, 1, 2]


def test_read_ahead_raises_what_the_iterator_raised_where_it_raised_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise CrmRateLimited("page 2", retry_after=60)

    with importing._ReadAhead(items()) as ahead:
        pages = iter(ahead)
        assert next(pages) == 1
        with pytest.raises(CrmRateLimited, match="page 2"):
            next(pages)


def test_read_ahead_closed_early_stops_its_thread() -> None:
    def items() -> Iterator[int]:
        yield from range(1_000)

    with importing._ReadAhead(items()) as ahead:
        for _ in ahead:
            break
    ahead._thread.join(timeout=5)
    assert not ahead._thread.is_alive()


def test_a_run_left_running_by_a_killed_worker_is_marked_interrupted_by_the_next(
    zendesk_seeded: CrmConnection,
) -> None:
    abandoned = ImportRun.objects.create(connection=zendesk_seeded, trigger=ImportRun.Trigger.SCHEDULE)

    run_import(zendesk_seeded)

    abandoned.refresh_from_db()
    assert abandoned.status == ImportRun.Status.INTERRUPTED
    assert abandoned.error == ABANDONED_ERROR
    assert abandoned.finished_at is not None


EVENTS = "GET /api/v2/incremental/ticket_events.json"


def test_T2_zendesk_comments_come_from_the_ticket_event_export_and_wait_for_their_ticket(
    zendesk_seeded: CrmConnection, zendesk_api: requests.Session, zendesk_sandbox: SandboxServer
) -> None:
    url = f"{zendesk_sandbox.base_url}/api/v2/tickets/2.json"
    comment = {"body": "Looking into the outage", "author_id": ZOE, "public": True}
    zendesk_api.put(url, json={"ticket": {"comment": comment}}).raise_for_status()

    first = run_import(zendesk_seeded)

    stats = sandbox_stats(zendesk_sandbox)["requests"]
    # One request for all comments of all tickets, none per ticket.
    assert stats[EVENTS] == 1
    assert not [key for key in stats if "/comments" in key]
    assert first.tickets_imported == 2
    # Ticket 2 is still open: its comment is kept for when it is solved.
    assert CrmComment.objects.filter(crm_ticket_id="2").count() == 1

    solved = {"status": "solved", "comment": {"body": "Outage over, closing", "author_id": ZOE, "public": True}}
    zendesk_api.put(url, json={"ticket": solved}).raise_for_status()
    second = run_import(zendesk_seeded)

    assert (second.tickets_fetched, second.tickets_imported) == (1, 1)
    ticket = Ticket.objects.get(crm_ticket_id="2")
    assert [c["body"] for c in ticket.comments] == ["Looking into the outage", "Outage over, closing"]
    assert "outage" in ticket.comments_text.lower()
    assert not [key for key in sandbox_stats(zendesk_sandbox)["requests"] if "/comments" in key]
    assert ImportState.objects.get(connection=zendesk_seeded).comments_cursor


def test_T2_a_comment_read_twice_at_a_page_boundary_is_stored_once(zendesk_seeded: CrmConnection) -> None:
    run_import(zendesk_seeded)
    stored = CrmComment.objects.count()
    state = ImportState.objects.get(connection=zendesk_seeded)
    # Rewind the comment stream: everything is read again.
    state.comments_cursor = ""
    state.tickets_cursor = ""
    state.save()

    run_import(zendesk_seeded)

    assert CrmComment.objects.count() == stored
    assert [c["body"] for c in Ticket.objects.get(crm_ticket_id="6").comments] == [
        "Chat: visitor cannot log in; password reset sent"
    ]


def test_T2_salesforce_email_messages_are_imported_with_case_comments(
    salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer
) -> None:
    seed_salesforce(salesforce_sandbox)
    people = seed(salesforce_sandbox, {"users": [], "contacts": [{"FirstName": "Eve", "LastName": "Mail"}]})
    (eve,) = people["contacts"]
    run_import(salesforce_connection)
    sam = Agent.objects.get(email="sam@example.com")
    seed(salesforce_sandbox, {"cases": [{
        "Subject": "Where is my parcel", "Status": "Closed", "Origin": "Email", "OwnerId": sam.crm_user_id,
        "ContactId": eve, "CreatedDate": sf_days_ago(3), "SystemModstamp": sf_days_ago(1), "ClosedDate": sf_days_ago(1),
        "CaseComments": [{"CommentBody": "Checked with the courier", "CreatedById": sam.crm_user_id,
                          "CreatedDate": sf_days_ago(2)}],
        "EmailMessages": [
            {"TextBody": "My parcel never arrived", "Incoming": True, "MessageDate": sf_days_ago(3),
             "FromAddress": "eve@example.net"},
            {"TextBody": "It is on its way again", "Incoming": False, "MessageDate": sf_days_ago(1),
             "CreatedById": sam.crm_user_id, "FromAddress": "support@example.com"},
        ],
    }]})  # fmt: skip

    run_import(salesforce_connection)

    ticket = Ticket.objects.get(subject="Where is my parcel")
    assert [(c["body"], c["author_id"]) for c in ticket.comments] == [
        ("My parcel never arrived", eve),
        ("Checked with the courier", sam.crm_user_id),
        ("It is on its way again", sam.crm_user_id),
    ]
    assert "never arrived" in ticket.comments_text
    assert ticket.channel == "email"
