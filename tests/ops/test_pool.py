"""The workers' pool: a child killed from outside while the worker waits for its broker is
replaced, and the worker goes on (ops.pool); a child that cannot start still fails the start."""

import os
import signal
import subprocess
from pathlib import Path

import pytest

from ops.pool import pool_started_ok
from tests.ops.test_brokers import wait_for_a_session_applied
from tests.support import RedisServer, start_worker, stop_process, wait_for_ready, wait_until


@pytest.mark.parametrize(
    ("exitcodes", "started"),
    [
        ([], True),
        ([None, None], True),
        ([-signal.SIGKILL, None], True),
        ([-signal.SIGTERM, -signal.SIGKILL], True),
        ([1, None], False),
        ([0], False),
        ([-signal.SIGKILL, 1], False),
    ],
)
def test_a_pool_started_unless_a_child_exited_by_itself(exitcodes: list[int | None], started: bool) -> None:
    assert pool_started_ok(exitcodes) is started


def _children(worker: "subprocess.Popen[bytes]") -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


@pytest.mark.django_db(transaction=True)
def test_a_pool_child_killed_before_the_broker_is_up_is_replaced_and_the_worker_consumes(tmp_path: Path) -> None:
    """Celery's own prefork pool (`--pool=processes`) exits here: "Could not start worker processes".

    `--pool=prefork`, the default the Procfile's workers start with, is CELERY_WORKER_POOL (ops.pool).
    """
    # The broker is down when the worker starts: its pool is up, its consumer keeps retrying.
    broker = RedisServer(tmp_path)
    queue = f"crmbridge-pool-{os.getpid()}"
    log = tmp_path / "worker.log"
    worker = start_worker(log, queue=queue, broker_url=broker.url, pool="prefork")
    try:
        wait_until(lambda: len(_children(worker)) == 1, timeout=60, message="the pool child")
        wait_until(lambda: "Cannot connect to" in log.read_text(), timeout=60, message="the consumer to wait")
        killed = _children(worker)[0]
        os.kill(killed, signal.SIGKILL)
        broker.start()

        wait_for_ready(worker, log)
        assert "Could not start worker processes" not in log.read_text()
        wait_until(
            lambda: worker.poll() is not None or [pid for pid in _children(worker) if pid != killed],
            timeout=30,
            message="a new pool child",
        )
        assert worker.poll() is None, log.read_text()[-3000:]
        # And the new child does the work: a session's events, sent now, are applied.
        wait_for_a_session_applied(broker_url=broker.url, queue=queue, external_id="after-pool-kill")
    finally:
        stop_process(worker)
        broker.kill()
