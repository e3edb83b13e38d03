"""The admin's read-only ticket list with the search filters, import runs, evaluations; the Celery tasks."""

from collections.abc import Iterator
from datetime import datetime

import pytest
from celery.exceptions import Retry, SoftTimeLimitExceeded
from django.contrib.auth.models import User
from django.test import Client

from config.celery import app as celery_app
from integrations.circuit import CircuitBreaker
from integrations.models import CrmConnection
from integrations.providers.importing import CommentPage
from integrations.providers.zendesk import ZendeskProvider
from integrations.sandbox import SandboxServer
from tests.support import retry_kwargs, sandbox_config, sandbox_stats
from tests.ticketsearch.support import seed_salesforce, seed_zendesk
from ticketsearch import tasks
from ticketsearch.models import Evaluation, ImportRun, ImportState, Ticket
from ticketsearch.services.evaluations import evaluation_create
from ticketsearch.services.importing import connections_to_import, tickets_import
from ticketsearch.tasks import IMPORT_QUEUE, import_connection_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer) -> Client:
    seed_zendesk(zendesk_sandbox)
    tickets_import(connection=zendesk_connection, trigger=ImportRun.Trigger.COMMAND)
    client = Client()
    client.force_login(User.objects.create_superuser("admin", password="pw"))
    return client


@pytest.mark.parametrize(
    ("query", "expected"),
    [({"q": "router"}, ["1"]), ({"q": "phone:0101 tag:technical"}, ["6"]), ({"channel__exact": "voice"}, ["1"]),
     ({"status__exact": "closed"}, ["6"]), ({"q": "requester:dana@example.net"}, ["6", "1"])],
)  # fmt: skip
def test_T4_admin_ticket_list_has_the_search_filters(
    admin_client: Client, query: dict[str, str], expected: list[str]
) -> None:
    response = admin_client.get("/admin/ticketsearch/ticket/", query)

    assert response.status_code == 200
    assert [t.crm_ticket_id for t in response.context["cl"].result_list] == expected


def test_T4_admin_ticket_list_filters_reviewed_and_not_reviewed(admin_client: Client) -> None:
    ticket = Ticket.objects.get(crm_ticket_id="6")
    evaluation_create(ticket=ticket, reviewer=User.objects.get(username="admin"), score=90, answers={})

    def listed(reviewed: str) -> list[str]:
        response = admin_client.get("/admin/ticketsearch/ticket/", {"reviewed": reviewed})
        return [t.crm_ticket_id for t in response.context["cl"].result_list]

    assert listed("yes") == ["6"]
    assert listed("no") == ["1"]


def test_T4_admin_ticket_list_is_read_only_and_shows_the_detail(admin_client: Client) -> None:
    ticket = Ticket.objects.get(crm_ticket_id="1")

    page = admin_client.get(f"/admin/ticketsearch/ticket/{ticket.pk}/change/").content.decode()

    assert "Caller says the parcel was damaged in transit" in page
    assert "recordings/r1.mp3" in page
    assert admin_client.get("/admin/ticketsearch/ticket/add/").status_code == 403


def test_import_run_admin_shows_the_skip_reasons(admin_client: Client) -> None:
    run = ImportRun.objects.get()

    page = admin_client.get(f"/admin/ticketsearch/importrun/{run.pk}/change/").content.decode()

    assert "ticket_not_solved" in page
    assert "user_missing_email" in page


def test_T6_an_evaluation_is_recorded_through_the_admin(admin_client: Client) -> None:
    ticket = Ticket.objects.get(crm_ticket_id="6")

    response = admin_client.post(
        "/admin/ticketsearch/evaluation/add/",
        {"ticket_id": ticket.pk, "score": 70, "answers": '{"Empathy": "good"}', "comment": "ok"},
    )
    missing = admin_client.post(
        "/admin/ticketsearch/evaluation/add/", {"ticket_id": 999999, "score": 70, "answers": "{}"}
    )

    assert response.status_code == 302
    evaluation = Evaluation.objects.get()
    assert (evaluation.crm_ticket_id, evaluation.score, evaluation.reviewer.username) == ("6", 70, "admin")
    assert missing.status_code == 200
    assert "No imported ticket has this id" in missing.content.decode()


def test_schedule_imports_every_importable_connection_not_switched_off(
    zendesk_connection: CrmConnection, salesforce_connection: CrmConnection
) -> None:
    assert connections_to_import() == [zendesk_connection.pk, salesforce_connection.pk]

    ImportState.objects.create(connection=salesforce_connection, enabled=False)

    assert connections_to_import() == [zendesk_connection.pk]


def test_import_task_imports_and_is_idempotent(
    salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer
) -> None:
    seed_salesforce(salesforce_sandbox)

    import_connection_task(salesforce_connection.pk)
    import_connection_task(salesforce_connection.pk)

    assert Ticket.objects.count() == 2
    assert ImportRun.objects.filter(status=ImportRun.Status.SUCCEEDED).count() == 2


def test_import_task_retries_after_the_rate_limit(
    salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer
) -> None:
    sandbox_config(salesforce_sandbox, throttle_rate=1.0)
    # As a worker runs it (not "called directly", which re-raises instead of retrying), minus the broker.
    import_connection_task.push_request(id="test-retry", retries=0, is_eager=True, called_directly=False)
    try:
        with pytest.raises(Retry) as retry:
            import_connection_task.run(salesforce_connection.pk)
    finally:
        import_connection_task.pop_request()

    # Salesforce gives no Retry-After: LIMIT_EXCEEDED_RETRY_AFTER_SECONDS, plus up to a second of jitter.
    assert isinstance(retry.value.when, float)
    assert 60.0 <= retry.value.when <= 61.0
    # A 429 is the CRM asking to wait, not a failed try: the retry carries no attempt.
    assert retry_kwargs(retry.value)["attempts"] == 0


def test_import_task_counts_a_crm_failure_and_feeds_the_circuit(
    circuit_at_one_failure: CircuitBreaker, salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer
) -> None:
    sandbox_config(salesforce_sandbox, fail_rate=1.0)
    import_connection_task.push_request(id="test-5xx", retries=4, is_eager=True, called_directly=False)
    try:
        with pytest.raises(Retry) as retry:
            import_connection_task.run(salesforce_connection.pk, "schedule", None, 2)
    finally:
        import_connection_task.pop_request()
    opened = circuit_at_one_failure.wait_seconds(salesforce_connection.base_url)

    # The third failed try, whatever Celery's own retry count (4: pauses and 429s are retries too).
    assert retry_kwargs(retry.value)["attempts"] == 3
    # And the CRM's failure is the connection's: its circuit opened, pausing all its work.
    assert opened is not None


def test_import_task_waits_out_an_open_circuit_without_starting_a_run(
    circuit_at_one_failure: CircuitBreaker, salesforce_connection: CrmConnection, salesforce_sandbox: SandboxServer
) -> None:
    # given: the connection's circuit opened by a run of failures (as the workers feed it)
    circuit_at_one_failure.record_failure(salesforce_connection.base_url)
    before, runs = sandbox_stats(salesforce_sandbox)["total"], ImportRun.objects.count()
    import_connection_task.push_request(id="test-circuit", retries=0, is_eager=True, called_directly=False)
    try:
        with pytest.raises(Retry) as retry:
            import_connection_task.run(salesforce_connection.pk, "schedule", 1000.0, 3)
    finally:
        import_connection_task.pop_request()

    # then: back after the pause, its budget clock moved on by the pause; nothing sent, no run
    assert isinstance(retry.value.when, float)
    assert 29.0 <= retry.value.when <= 31.0
    assert retry_kwargs(retry.value)["failing_since"] == pytest.approx(1030.0, abs=1)
    assert retry_kwargs(retry.value)["attempts"] == 3
    assert sandbox_stats(salesforce_sandbox)["total"] == before
    assert ImportRun.objects.count() == runs


def test_import_task_records_bad_credentials_on_the_connection(salesforce_connection: CrmConnection) -> None:
    salesforce_connection.set_secrets({})
    salesforce_connection.save()

    import_connection_task(salesforce_connection.pk)

    salesforce_connection.refresh_from_db()
    assert "Ticket import" in salesforce_connection.last_error


def test_import_task_for_a_deleted_connection_does_nothing(db: None) -> None:
    import_connection_task(123456)


def test_admin_links_only_http_urls_from_the_crm(admin_client: Client) -> None:
    # What a CRM (or whoever writes its ticket fields) may send as a link: only http(s) becomes one.
    ticket = Ticket.objects.get(crm_ticket_id="1")
    ticket.crm_url = "javascript:alert(document.cookie)"
    ticket.recording_urls = [
        "JavaScript:alert(1)",
        "data:text/html,<script>x</script>",
        "https://acme.zendesk.com/r.mp3",
    ]
    ticket.save(update_fields=["crm_url", "recording_urls"])

    page = admin_client.get(f"/admin/ticketsearch/ticket/{ticket.pk}/change/").content.decode()

    assert 'href="javascript:' not in page.lower()
    assert 'href="data:' not in page
    assert "javascript:alert(document.cookie)" in page  # shown as text
    assert '<a href="https://acme.zendesk.com/r.mp3"' in page


def _queued_imports() -> list[list[object]]:
    """The args of the import tasks waiting on the imports queue of the suite's broker (taken off it)."""
    found: list[list[object]] = []
    with celery_app.connection_for_read() as connection:
        queue = connection.SimpleQueue(IMPORT_QUEUE)
        try:
            while True:
                try:
                    message = queue.get(timeout=1)
                except queue.Empty:
                    return found
                assert message.headers["task"] == "ticketsearch.import_connection"
                found.append(list(message.payload[0]))
                message.ack()
        finally:
            queue.close()


@pytest.fixture
def imports_queue() -> None:
    _queued_imports()


@pytest.mark.usefixtures("imports_queue")
def test_an_import_task_at_its_time_limit_is_marked_and_continued_by_a_new_task(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_zendesk(zendesk_sandbox)
    # No time left once a page is saved: the run stops after its first page.
    monkeypatch.setattr(tasks, "IMPORT_SOFT_TIME_LIMIT", tasks.IMPORT_PAGE_MARGIN)

    import_connection_task(zendesk_connection.pk)

    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.INTERRUPTED
    assert _queued_imports() == [[zendesk_connection.pk, ImportRun.Trigger.RESUME]]

    monkeypatch.undo()
    import_connection_task(zendesk_connection.pk, ImportRun.Trigger.RESUME)

    resumed = ImportRun.objects.latest("started_at")
    assert (resumed.trigger, resumed.status) == (ImportRun.Trigger.RESUME, ImportRun.Status.SUCCEEDED)
    assert sorted(Ticket.objects.values_list("crm_ticket_id", flat=True)) == ["1", "6"]
    assert _queued_imports() == []


@pytest.mark.usefixtures("imports_queue")
def test_an_import_stopped_inside_a_page_by_the_soft_time_limit_is_marked_and_continued(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_zendesk(zendesk_sandbox)

    def hangs(self: ZendeskProvider, *, cursor: str | None, since: datetime) -> Iterator[CommentPage]:
        raise SoftTimeLimitExceeded()
        yield  # a generator, as the provider's is

    monkeypatch.setattr(ZendeskProvider, "iter_comments", hangs)

    import_connection_task(zendesk_connection.pk)

    run = ImportRun.objects.get()
    assert run.status == ImportRun.Status.INTERRUPTED
    assert run.error.startswith("SoftTimeLimitExceeded")
    assert _queued_imports() == [[zendesk_connection.pk, ImportRun.Trigger.RESUME]]
