"""`/healthz` and `/metrics` against the real database, Redis, broker and a Celery worker (issue 15, item 6)."""

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import call_command
from django.test import Client

from config.celery import app as celery_app
from integrations.models import CrmConnection
from ops.health import routed_queues
from ops.metrics import OUTCOMES_KEY, outcome_of
from records.models import CrmAction, Session
from tests.support import TEST_BROKER_URL
from ticketsearch.tasks import IMPORT_QUEUE

pytestmark = pytest.mark.django_db


def _closed_port_url(scheme: str) -> str:
    # Port 9 (discard) is not served on this machine: a broker that is down.
    return f"{scheme}://127.0.0.1:9/0"


def _wait_until_the_worker_answers() -> None:
    deadline = time.monotonic() + 60
    while not celery_app.control.ping(timeout=1):
        assert time.monotonic() < deadline, "the suite's worker answered no ping for 60 s"


def test_healthz_checks_database_redis_broker_and_workers(celery_worker: Any, settings: Any) -> None:
    # The suite's worker runs one task at a time (solo pool) and answers a ping only between tasks:
    # let it finish what earlier tests left it before asking, and give its answer time to come.
    _wait_until_the_worker_answers()
    settings.HEALTHZ_WORKER_PING_SECONDS = 5
    # The suite's worker consumes one queue (the suite's default): the imports are routed to it too, for this test.
    routes, suite_queue = celery_app.conf.task_routes, celery_app.conf.task_default_queue
    celery_app.conf.task_routes = {name: {"queue": suite_queue} for name in routes}
    try:
        response = Client().get("/healthz", {"format": "json"})
    finally:
        celery_app.conf.task_routes = routes

    assert response.status_code == 200, response.content
    assert set(response.json()) == {
        "Database(alias='default')",
        "Broker(redis)",
        "Redis(rate limiter)",
        "Celery workers",
        f"Celery queue {suite_queue} (live session work, imports, maintenance)",
    }
    assert set(response.json().values()) == {"OK"}


def test_healthz_says_for_each_routed_queue_whether_a_worker_consumes_it(celery_worker: Any, settings: Any) -> None:
    # given: the suite's worker consumes the live and maintenance queue, not the imports one
    _wait_until_the_worker_answers()
    settings.HEALTHZ_WORKER_PING_SECONDS = 5

    response = Client().get("/healthz", {"format": "json"})

    # then: the imports queue's line says no worker takes its work, and the check is down
    assert response.status_code == 503
    body = response.json()
    assert body[f"Celery queue {celery_app.conf.task_default_queue} (live session work, maintenance)"] == "OK"
    assert "no worker consumes it (imports waits)" in body[f"Celery queue {IMPORT_QUEUE} (imports)"]
    assert f"{IMPORT_QUEUE} (imports)" in body["Celery workers"]
    assert Client().get("/healthz/web").status_code == 200


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ({}, {"live": "live session work"}),
        (
            {"import": {"queue": "imports"}, "sweep": {"queue": "maintenance"}, "purge": {"queue": "maintenance"}},
            {"live": "live session work", "imports": "imports", "maintenance": "maintenance"},
        ),
        (
            {"import": {"queue": "live"}, "sweep": {"queue": "live"}},
            {"live": "live session work, imports, maintenance"},
        ),
        ({"other": {"queue": "special"}, "sweep": {}}, {"live": "live session work", "special": "routed tasks"}),
    ],
)
def test_routed_queues_lists_each_queue_once_with_what_it_is_for(
    routes: dict[str, dict[str, str]], expected: dict[str, str]
) -> None:
    roles = {"import": "imports", "sweep": "maintenance", "purge": "maintenance"}

    assert routed_queues(default_queue="live", routes=routes, roles=roles) == expected


def test_healthz_answers_503_naming_what_is_down(settings: Any) -> None:
    settings.CELERY_BROKER_URL = _closed_port_url("redis")
    settings.REDIS_URL = _closed_port_url("redis")

    response = Client().get("/healthz/web", {"format": "json"})

    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    body = response.json()
    assert body["Database(alias='default')"] == "OK"
    assert "Celery broker unreachable" in body["Broker(redis)"]
    assert "Redis unreachable" in body["Redis(rate limiter)"]


def test_healthz_without_workers_is_503(settings: Any) -> None:
    # No worker consumes this queue, so the ping finds none for it.
    celery_app.conf.task_default_queue, queue = "crmbridge-nobody-listens", celery_app.conf.task_default_queue
    try:
        response = Client().get("/healthz", {"format": "json"})
    finally:
        celery_app.conf.task_default_queue = queue
    assert response.status_code == 503
    assert response.json()["Celery workers"] != "OK"


@pytest.mark.parametrize(
    ("status", "fields", "outcome"),
    [
        ("succeeded", {"status", "result", "updated_at"}, "succeeded"),
        ("failed", {"status", "last_error"}, "failed"),
        ("pending", {"attempts", "last_error", "next_attempt_at"}, "retry_scheduled"),
        ("pending", {"attempts", "updated_at"}, None),
        ("succeeded", None, None),
        ("superseded", {"state", "updated_at"}, "superseded"),
    ],
)
def test_outcome_of_a_save(status: str, fields: set[str] | None, outcome: str | None) -> None:
    assert outcome_of(status, frozenset(fields) if fields is not None else None) == outcome


def _metrics(authorization: str = "") -> str:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 200
    return response.content.decode()


def test_metrics_count_requests_outcomes_queues_and_the_crm_budget(
    zendesk_connection: CrmConnection, platform_client: Any
) -> None:
    broker = redis.Redis.from_url(TEST_BROKER_URL)
    broker.delete(OUTCOMES_KEY)
    # A queue no worker of the suite consumes, so the three messages stay put.
    queue = "crmbridge-metrics-test"
    celery_app.conf.task_default_queue, default_queue = queue, celery_app.conf.task_default_queue
    broker.delete(queue)
    broker.lpush(queue, b"{}", b"{}", b"{}")
    zendesk_connection.config = {**zendesk_connection.config, "rate_limit_per_minute": 4}
    zendesk_connection.save()
    # Two requests in the shared rate window, as a worker would have made them.
    from integrations.services import rate_gate

    for _ in range(2):
        assert rate_gate().acquire(zendesk_connection.base_url.rstrip("/") + "/", 4) == 0
    session = Session.objects.create(external_id="m-1", crm_connection=zendesk_connection)
    action = CrmAction.objects.create(session=session, kind="add_comment", idempotency_key="m-1:c")
    action.status = CrmAction.Status.SUCCEEDED
    action.save(update_fields=["status", "updated_at"])
    platform_client.get("/api/v1/ping")

    try:
        text = _metrics()
    finally:
        celery_app.conf.task_default_queue = default_queue
        broker.delete(queue)

    assert 'crmbridge_http_requests_total{method="GET",route="api/v1/ping",status="200"}' in text
    assert 'crmbridge_outbox_outcomes_total{kind="add_comment",outbox="crm_actions",outcome="succeeded"} 1.0' in text
    assert f'crmbridge_queue_depth{{queue="{queue}"}} 3.0' in text
    assert f'crmbridge_crm_rate_window_used_ratio{{connection="{zendesk_connection.pk}"}} 0.5' in text
    assert 'crmbridge_outbox_pending{outbox="crm_actions"} 0.0' in text
    assert "# TYPE crmbridge_crm_circuit_state gauge" in text
    assert f'crmbridge_crm_circuit_state{{connection="{zendesk_connection.pk}"}} 0.0' in text
    assert "# TYPE crmbridge_crm_budget_used_ratio gauge" in text
    assert 'crmbridge_metrics_source_up{source="broker"} 1.0' in text


def test_metrics_keep_answering_when_the_broker_is_down(settings: Any) -> None:
    settings.CELERY_BROKER_URL = _closed_port_url("redis")
    broker_url = celery_app.conf.broker_url
    celery_app.conf.update(broker_url=settings.CELERY_BROKER_URL)
    try:
        text = _metrics()
    finally:
        celery_app.conf.update(broker_url=broker_url)
    assert 'crmbridge_metrics_source_up{source="broker"} 0.0' in text
    assert 'crmbridge_metrics_source_up{source="database"} 1.0' in text


def test_metrics_token_when_configured(settings: Any) -> None:
    settings.METRICS_BEARER_TOKEN = "scrape-me"
    assert Client().get("/metrics").status_code == 401
    assert "crmbridge_outbox_pending" in _metrics("Bearer scrape-me")


def test_admin_static_files_are_served_without_debug(settings: Any, tmp_path: Path) -> None:
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", "--noinput", verbosity=0)

    response = Client().get("/static/admin/css/base.css", HTTP_ACCEPT_ENCODING="gzip")

    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert Client().get("/static/admin/css/nonexistent.css").status_code == 404


def test_json_logs_keep_the_extra_fields(capsys: pytest.CaptureFixture[str], settings: Any) -> None:
    import logging.config

    logging.config.dictConfig(
        {**settings.LOGGING, "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}}}
    )
    logging.getLogger("records.execution").warning("crm.action.retry", extra={"session_id": 42, "attempt": 3})

    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "crm.action.retry"
    assert (line["session_id"], line["attempt"], line["level"], line["logger"]) == (
        42,
        3,
        "WARNING",
        "records.execution",
    )
    assert "time" in line


def test_https_redirect_spares_the_probes(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True

    assert Client().get("/admin/login/").status_code == 301
    assert Client().get("/metrics").status_code == 200
    assert Client().get("/healthz/web").status_code in (200, 503)
