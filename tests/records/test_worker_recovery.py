"""A worker SIGKILLed in the middle of a session: another takes the session over within seconds.

Two ways a worker dies: its pool child is killed (the prefork parent rejects the message, it is
redelivered at once and meets the dead child's lease), or the whole worker host is (its message
stays unacknowledged in the broker, and the sweep finds the session once the lease lapses). Either
way the session completes, with one ticket and no comment twice. The test asserts completion,
not a time: the deadline is generous for a loaded machine.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
import requests

from config.celery import app as celery_app
from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from records.models import CrmAction, Session
from records.tasks import sweep_sessions_task
from tests.records.scenario import Call
from tests.support import TEST_BROKER_URL, ingest, sandbox_config, start_worker, stop_process, wait_for_ready

pytestmark = pytest.mark.django_db(transaction=True)

# As config.settings' beat schedule sends it.
SWEEP_EVERY_SECONDS = 5.0


def _mid_action(session_id: str) -> bool:
    session = Session.objects.filter(external_id=session_id).first()
    return bool(
        session is not None
        and session.actions_lease_owner is not None
        and session.actions.filter(status=CrmAction.Status.SUCCEEDED).exists()
        and session.actions.filter(status=CrmAction.Status.PENDING).exists()
    )


def _settled(session_id: str, queue: str, last_sweep: list[float]) -> bool:
    # What beat does in production: the sweep, every few seconds, on the maintenance queue.
    if time.monotonic() - last_sweep[0] >= SWEEP_EVERY_SECONDS:
        sweep_sessions_task.apply_async(queue=queue)
        last_sweep[0] = time.monotonic()
    session = Session.objects.get(external_id=session_id)
    return session.actions.exists() and not session.actions.filter(status=CrmAction.Status.PENDING).exists()


def _wait(predicate: object, *, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.1)


def _pool_child(worker: subprocess.Popen[bytes]) -> int:
    found = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True, check=False)
    children = [int(pid) for pid in found.stdout.split()]
    assert children, "the prefork worker has no pool child"
    return children[0]


@pytest.mark.parametrize("killed", ["pool child", "whole worker"])
def test_a_session_whose_worker_was_killed_mid_action_completes_once(
    killed: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    zendesk_connection: CrmConnection,
    zendesk_sandbox: SandboxServer,
    zendesk_api: requests.Session,
) -> None:
    queue = f"crmbridge-recovery-{os.getpid()}"
    monkeypatch.setitem(celery_app.conf, "task_default_queue", queue)
    # Each CRM call takes a while, so the kill lands in the middle of the session's actions.
    sandbox_config(zendesk_sandbox, latency_ms=700)
    log = tmp_path / "worker.log"
    workers = [start_worker(log, queue=queue, pool="prefork" if killed == "pool child" else "solo")]
    try:
        wait_for_ready(workers[0], log)
        ingest(Call("c-kill").answered().ended().events)
        _wait(lambda: _mid_action("c-kill"), timeout=60, message="the worker to be in the middle of the session")

        if killed == "pool child":
            os.kill(_pool_child(workers[0]), signal.SIGKILL)
        else:
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(timeout=15)
            workers.append(start_worker(log, queue=queue))
            wait_for_ready(workers[1], log, readies=2)

        last_sweep = [0.0]
        _wait(lambda: _settled("c-kill", queue, last_sweep), timeout=120, message="the session's actions to settle")
    finally:
        for worker in workers:
            stop_process(worker)
        redis.Redis.from_url(TEST_BROKER_URL).delete(queue)

    session = Session.objects.get(external_id="c-kill")
    assert sorted(set(session.actions.values_list("status", flat=True))) == [CrmAction.Status.SUCCEEDED]
    found = zendesk_api.get(f"{zendesk_sandbox.base_url}/api/v2/tickets.json", params={"external_id": "c-kill"})
    [ticket] = found.json()["tickets"]
    assert str(ticket["id"]) == session.crm_record_id
    comments = zendesk_api.get(f"{zendesk_sandbox.base_url}/api/v2/tickets/{ticket['id']}/comments.json").json()
    bodies = [comment["body"] for comment in comments["comments"]]
    assert len(bodies) == len(set(bodies))
