"""The event API while its broker or database is briefly gone: a 202 or a 503 with Retry-After, never a 500."""

import os
from datetime import timedelta

import pytest
from django.db import connection
from rest_framework.test import APIClient

from records.models import Event, Session
from records.services.execution import sessions_needing_work
from tests.support import EXAMPLE_CALL, app_on_broker, free_port

URL = "/api/v1/events"


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_gone_a_stored_batch_is_acknowledged_and_left_to_the_sweep(platform_client: APIClient) -> None:
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"

    with app_on_broker(nobody_listens, f"crmbridge-gone-{os.getpid()}"):
        response = platform_client.post(URL, EXAMPLE_CALL, format="json")

    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == len(EXAMPLE_CALL["events"])
    session = Session.objects.get(external_id="c-1")
    assert Event.objects.filter(session=session, applied_at__isnull=True).count() == len(EXAMPLE_CALL["events"])
    # Nothing was queued; the sweep finds the batch once it has waited (here: at once).
    assert session.pk in sessions_needing_work(stale_after=timedelta(0))[0]
    # The platform's retry of the same batch is told they are duplicates, not stored twice.
    again = platform_client.post(URL, EXAMPLE_CALL, format="json")
    assert again.status_code == 202
    assert again.json() == {"accepted": 0, "duplicates": len(EXAMPLE_CALL["events"])}
    assert Event.objects.filter(session=session).count() == len(EXAMPLE_CALL["events"])


@pytest.mark.django_db(transaction=True)
def test_with_the_database_gone_the_api_answers_503_with_retry_after(platform_client: APIClient) -> None:
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())
    try:
        response = platform_client.post(URL, EXAMPLE_CALL, format="json")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port

    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "5"
    assert "Retry the same request" in response.json()["message"]
    assert not Event.objects.exists()
