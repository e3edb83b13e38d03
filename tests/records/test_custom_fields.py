"""F1: the admin's "Create custom fields" makes the record fields in the CRM once and keeps their ids."""

import time
from typing import Any

import pytest
import requests
from celery.exceptions import Retry
from django.conf import settings as django_settings

from integrations.circuit import CircuitBreaker
from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from integrations.services import circuit_breaker
from records.models import CustomField
from records.services.custom_fields import custom_fields_create
from records.tasks import create_custom_fields_task
from records.vocabulary import RECORD_FIELDS
from tests.support import retry_kwargs, sandbox_config, sandbox_stats, wait_until


def zendesk_fields(zendesk_api: requests.Session, sandbox: SandboxServer) -> list[dict[str, Any]]:
    body = zendesk_api.get(f"{sandbox.base_url}/api/v2/ticket_fields.json", timeout=5).json()
    fields: list[dict[str, Any]] = body["ticket_fields"]
    return fields


def field_creations(sandbox: SandboxServer) -> int:
    return int(sandbox_stats(sandbox)["requests"].get("POST /api/v2/ticket_fields.json", 0))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_F1_create_custom_fields_makes_them_in_zendesk_once(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    # given
    titles = {spec.title for spec in RECORD_FIELDS}

    # when: the admin's action, run by a real worker
    create_custom_fields_task.delay(zendesk_connection.pk)
    wait_until(lambda: CustomField.objects.count() == len(RECORD_FIELDS), message="the custom fields' ids")

    # then: Zendesk has each field once, and the product knows each field's Zendesk id
    fields = zendesk_fields(zendesk_api, zendesk_sandbox)
    ours = {field["title"]: field for field in fields if field["title"] in titles}
    assert set(ours) == titles
    assert [field["title"] for field in fields].count("Call duration (s)") == 1
    assert ours["Call duration (s)"]["type"] == "integer"
    assert ours["Send email from In-Web"]["type"] == "checkbox"
    stored = dict(CustomField.objects.filter(connection=zendesk_connection).values_list("key", "crm_field_id"))
    assert stored == {spec.key: str(ours[spec.title]["id"]) for spec in RECORD_FIELDS}
    assert field_creations(zendesk_sandbox) == len(RECORD_FIELDS)

    # when: run again
    create_custom_fields_task.delay(zendesk_connection.pk)
    wait_until(
        lambda: (
            "GET /api/v2/ticket_fields.json" in sandbox_stats(zendesk_sandbox)["requests"]
            and sandbox_stats(zendesk_sandbox)["requests"]["GET /api/v2/ticket_fields.json"] >= 2
        ),
        message="the second run's read of the fields",
    )

    # then: nothing new in Zendesk, the same ids
    assert field_creations(zendesk_sandbox) == len(RECORD_FIELDS)
    assert len(zendesk_fields(zendesk_api, zendesk_sandbox)) == len(fields)
    assert dict(CustomField.objects.values_list("key", "crm_field_id")) == stored


@pytest.mark.django_db
def test_custom_fields_create_reuses_fields_the_crm_already_has(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, zendesk_api: requests.Session
) -> None:
    made = zendesk_api.post(
        f"{zendesk_sandbox.base_url}/api/v2/ticket_fields.json",
        json={"ticket_field": {"type": "text", "title": "Queue name"}},
        timeout=5,
    ).json()["ticket_field"]

    fields = custom_fields_create(connection=zendesk_connection)

    assert len(fields) == len(RECORD_FIELDS)
    assert CustomField.objects.get(key="queue_name").crm_field_id == str(made["id"])
    assert field_creations(zendesk_sandbox) == 1 + len(RECORD_FIELDS) - 1


@pytest.mark.django_db
def test_create_custom_fields_task_shows_a_refusal_on_the_connection(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    # Credentials Zendesk cannot read: it answers 401.
    zendesk_connection.config = {"email": ""}
    zendesk_connection.save()

    create_custom_fields_task.apply(args=(zendesk_connection.pk,))

    zendesk_connection.refresh_from_db()
    assert zendesk_connection.last_error.startswith("Create custom fields: ")
    assert not CustomField.objects.exists()

    # Once the CRM accepts, the F1 error goes away.
    zendesk_connection.config = {"email": "admin@example.com"}
    zendesk_connection.save()
    create_custom_fields_task.apply(args=(zendesk_connection.pk,))
    zendesk_connection.refresh_from_db()
    assert zendesk_connection.last_error == ""
    assert CustomField.objects.count() == len(RECORD_FIELDS)


@pytest.mark.django_db
def test_create_custom_fields_task_retries_a_crm_that_is_down_then_says_so(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    # A connection whose retry budget is a fraction of a second (the default is a day).
    zendesk_connection.config = {**zendesk_connection.config, "retry_budget_seconds": 0.3}
    zendesk_connection.save()
    sandbox_config(zendesk_sandbox, fail_rate=1.0)

    # Eager apply runs each retry at once, without the countdown, until the budget is spent.
    create_custom_fields_task.apply(args=(zendesk_connection.pk,))

    zendesk_connection.refresh_from_db()
    assert zendesk_connection.last_error.startswith("Create custom fields: gave up after ")
    tries = int(zendesk_connection.last_error.split("gave up after ")[1].split(" ")[0])
    assert tries >= 2
    # Each try's first request, a read (the field list), is sent 1 + CRM_READ_RETRIES times in place.
    assert sandbox_stats(zendesk_sandbox)["injected_failures"] == tries * (1 + django_settings.CRM_READ_RETRIES)
    assert not CustomField.objects.exists()


@pytest.mark.django_db
def test_create_custom_fields_task_ignores_a_deleted_connection() -> None:
    create_custom_fields_task.apply(args=(987654,))

    assert not CustomField.objects.exists()


def run_as_a_worker(connection_id: int, *args: object, retries: int = 0) -> Retry:
    """Run the task as a worker would (a retry is raised, not run at once), and return the retry."""
    task: Any = create_custom_fields_task
    task.push_request(id="test-f1", retries=retries, is_eager=True, called_directly=False)
    try:
        with pytest.raises(Retry) as retry:
            task.run(connection_id, *args)
    finally:
        task.pop_request()
    return retry.value


@pytest.mark.django_db
def test_F1_an_open_circuit_pauses_field_creation_without_a_request_or_an_attempt(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, circuit_at_one_failure: CircuitBreaker
) -> None:
    circuit_at_one_failure.record_failure(zendesk_connection.base_url)
    before = sandbox_stats(zendesk_sandbox)["total"]

    retry = run_as_a_worker(zendesk_connection.pk, 1000.0, 2, retries=5)

    assert sandbox_stats(zendesk_sandbox)["total"] == before
    assert isinstance(retry.when, float)
    assert 29.0 <= retry.when <= 31.0
    # The pause spends no attempt, and its time is kept out of the retry budget.
    assert retry_kwargs(retry)["attempts"] == 2
    assert retry_kwargs(retry)["failing_since"] == pytest.approx(1030.0, abs=1)


@pytest.mark.django_db
def test_F1_a_crm_failure_counts_one_attempt_and_opens_the_circuit(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, circuit_at_one_failure: CircuitBreaker
) -> None:
    sandbox_config(zendesk_sandbox, fail_rate=1.0)

    retry = run_as_a_worker(zendesk_connection.pk, None, 2, retries=5)

    opened = circuit_at_one_failure.wait_seconds(zendesk_connection.base_url)

    assert retry_kwargs(retry)["attempts"] == 3
    assert opened is not None


@pytest.mark.django_db
def test_F1_a_success_closes_a_half_open_circuit(
    zendesk_connection: CrmConnection,
    zendesk_sandbox: SandboxServer,
    circuit_at_one_failure: CircuitBreaker,
    settings: Any,
) -> None:
    settings.CRM_CIRCUIT_COOL_DOWN_SECONDS = 0.05
    circuit_breaker.cache_clear()
    breaker = circuit_breaker()
    breaker.record_failure(zendesk_connection.base_url)
    time.sleep(0.1)  # the pause is over: the next work is the half-open probe

    custom_fields_create(connection=zendesk_connection)

    reading = breaker.read(zendesk_connection.base_url)
    assert (reading.tripped, reading.failures) == (False, 0)
