"""The admin's read-only ticket list with the search filters, import runs, evaluations; the Celery tasks."""

import pytest
from celery.exceptions import Retry
from django.contrib.auth.models import User
from django.test import Client

from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from tests.support import sandbox_config
from tests.ticketsearch.support import seed_salesforce, seed_zendesk
from ticketsearch.models import Evaluation, ImportRun, ImportState, Ticket
from ticketsearch.services.importing import connections_to_import, tickets_import
from ticketsearch.tasks import import_connection_task

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

    assert retry.value.when == 60.0  # Salesforce gives no Retry-After: LIMIT_EXCEEDED_RETRY_AFTER_SECONDS


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
