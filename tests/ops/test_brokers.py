"""The broker: a worker survives a Redis restart, and a session runs through a worker on RabbitMQ."""

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from kombu import Connection

from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from records.models import CrmAction, Event, Session
from records.tasks import process_sessions_task, run_session_actions_task
from tests.records.scenario import Call
from tests.support import (
    RedisServer,
    app_on_broker,
    ingest,
    start_worker,
    stop_process,
    wait_for_ready,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def send(task: Any, args: tuple[Any, ...], connection: Connection, **options: Any) -> None:
    """Send a task over this broker connection rather than the suite's."""
    task.apply_async(args, connection=connection, **options)


def wait_for_a_session_applied(*, broker_url: str, queue: str, external_id: str) -> None:
    """Send a new session's processing over this broker to `queue`, and wait until its event is applied."""
    session = Session.objects.create(external_id=external_id)
    Event.objects.create(
        event_id=f"{external_id}-1",
        session=session,
        type="session.created",
        occurred_at="2026-11-20T09:00:00Z",
        data={"channel": "voice", "session_type": "voice_inbound_ivr"},
    )
    with Connection(broker_url) as connection:
        send(process_sessions_task, ([session.pk],), connection, queue=queue)
    wait_until(
        lambda: not Event.objects.filter(session=session, applied_at__isnull=True).exists(),
        timeout=60,
        message=f"a worker to apply the events of session {external_id}",
    )


def _rabbitmq_open() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=2):
            return True
    except OSError:
        return False


def test_a_worker_survives_a_redis_broker_restart_and_takes_work_after_it(tmp_path: Path) -> None:
    broker = RedisServer(tmp_path).start()
    queue = f"crmbridge-restart-{os.getpid()}"
    log = tmp_path / "worker.log"
    worker = start_worker(log, queue=queue, broker_url=broker.url)
    try:
        wait_for_ready(worker, log)
        # Messages the worker holds unacknowledged (acks_late, due later) when the broker goes:
        # the state in which closing the lost connection raised AttributeError and ended it.
        with Connection(broker.url) as connection:
            for _ in range(3):
                send(run_session_actions_task, (0,), connection, queue=queue, countdown=60)
        wait_until(lambda: log.read_text().count("] received") >= 3, timeout=30, message="the worker to hold them")

        broker.kill()
        wait_until(lambda: "Connection to broker lost" in log.read_text(), timeout=30, message="the worker to notice")
        time.sleep(2)  # the broker stays down for a moment, while the worker keeps trying
        broker.start()
        wait_until(lambda: log.read_text().count("Connected to") >= 2, timeout=60, message="the worker to reconnect")

        assert worker.poll() is None, log.read_text()[-3000:]
        assert "Unrecoverable error" not in log.read_text()
        # And it consumes again: a session's events, sent after the restart, are applied.
        wait_for_a_session_applied(broker_url=broker.url, queue=queue, external_id="after-restart")
        assert worker.poll() is None
    finally:
        stop_process(worker)
        broker.kill()


def test_a_session_runs_through_a_worker_on_rabbitmq(
    tmp_path: Path,
    zendesk_connection: CrmConnection,
    zendesk_sandbox: SandboxServer,
    zendesk_api: requests.Session,
) -> None:
    if not _rabbitmq_open():
        # The reason shows in pytest's summary (-rs); RabbitMQ runs on every machine here, CI included.
        pytest.skip("RabbitMQ is not listening on 127.0.0.1:5672 (port closed): the RabbitMQ broker test cannot run")
    queue = f"crmbridge-rabbitmq-{os.getpid()}"
    log = tmp_path / "worker.log"
    worker = start_worker(log, queue=queue, broker_url=RABBITMQ_URL)
    try:
        wait_for_ready(worker, log)
        with app_on_broker(RABBITMQ_URL, queue):
            ingest(Call("c-rabbit").answered().ended().events)

        def settled() -> bool:
            session = Session.objects.filter(external_id="c-rabbit").first()
            return bool(
                session is not None
                and session.actions.exists()
                and not session.actions.filter(status=CrmAction.Status.PENDING).exists()
            )

        wait_until(settled, timeout=90, message="the session's actions to run through RabbitMQ")
    finally:
        stop_process(worker)
        with Connection(RABBITMQ_URL) as connection:
            channel: Any = connection.default_channel
            channel.queue_delete(queue)

    session = Session.objects.get(external_id="c-rabbit")
    assert sorted(set(session.actions.values_list("status", flat=True))) == [CrmAction.Status.SUCCEEDED]
    found = zendesk_api.get(f"{zendesk_sandbox.base_url}/api/v2/tickets.json", params={"external_id": "c-rabbit"})
    [ticket] = found.json()["tickets"]
    assert str(ticket["id"]) == session.crm_record_id
