"""Helpers shared by the tests (fixtures live in conftest.py)."""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from celery.exceptions import Retry

from integrations.sandbox import SandboxServer

if TYPE_CHECKING:
    from records.models import Session

ROOT = Path(__file__).resolve().parent.parent
# The suite's own Redis database: a `make run` worker on the same machine never sees its tasks.
TEST_BROKER_URL = os.environ.get("TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
EXAMPLE_CALL: dict[str, Any] = json.loads((ROOT / "docs" / "examples" / "ivr_call.json").read_text())


def sandbox_config(sandbox: SandboxServer, **config: object) -> None:
    requests.post(f"{sandbox.base_url}/__sandbox/config", json=config, timeout=5).raise_for_status()


def connection_retry_budget(connection: Any, seconds: float | None) -> None:
    """Give a CRM connection its own retry budget; None: back to CRM_RETRY_BUDGET_SECONDS (a day).

    The worker reads it from the connection row, so a test can make an outage fail actions in
    seconds (and then let a replay ride out a flaky CRM with the full budget).
    """
    from integrations.services import connection_set_retry_budget

    connection.refresh_from_db()
    connection_set_retry_budget(connection, seconds=seconds)
    connection.save(update_fields=["config", "updated_at"])


def sandbox_stats(sandbox: SandboxServer) -> dict[str, Any]:
    stats: dict[str, Any] = requests.get(f"{sandbox.base_url}/__sandbox/stats", timeout=5).json()
    return stats


def wait_until(predicate: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.1, message: str) -> Any:
    """Poll until predicate() is truthy (the work happens in the worker process); fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def ingest_and_process(events: list[dict[str, Any]], session_id: str = "c-1") -> "Session":
    """Validate and store events as the API does, then apply them (no worker involved)."""
    from records.api.serializers import EventSerializer
    from records.models import Session
    from records.services.ingest import events_ingest
    from records.services.processing import session_process

    serializers = [EventSerializer(data=event) for event in events]
    assert all(serializer.is_valid() for serializer in serializers)
    events_ingest(events=[serializer.validated_data for serializer in serializers])
    session = Session.objects.get(external_id=session_id)
    session_process(session_id=session.pk)
    return session


def run_actions_until_settled(session: "Session", rounds: int = 20) -> None:
    """Run the session's actions in-process, skipping the backoff waits a worker would sleep through."""
    from records.models import CrmAction
    from records.services.execution import session_run_actions

    for _ in range(rounds):
        CrmAction.objects.filter(session=session, status=CrmAction.Status.PENDING).update(next_attempt_at=None)
        if session_run_actions(session_id=session.pk).retry_in is None:
            return
    raise AssertionError("actions did not settle")


# -- Worker processes a test starts, kills and restarts itself -----------------------------------


def database_url() -> str:
    from django.conf import settings

    database = settings.DATABASES["default"]
    return (
        f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    )


def worker_env(*, queue: str, broker_url: str = TEST_BROKER_URL, **extra: str) -> dict[str, str]:
    """The environment of a worker on `queue` (live and maintenance work) and the test database."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url,
        "REDIS_URL": TEST_BROKER_URL,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "CELERY_MAINTENANCE_QUEUE": queue,
        "CRM_RETRY_BACKOFF_SECONDS": "0.05",
        "CRM_RETRY_BACKOFF_MAX_SECONDS": "0.5",
        "CRM_HTTP_TIMEOUT_SECONDS": "5",
        "CRM_LIMIT_EXCEEDED_RETRY_SECONDS": "1",
        "DATABASE_CONN_MAX_AGE": "0",
        "LOG_FORMAT": "plain",
        **extra,
    }


def start_worker(
    log: Path, *, queue: str, broker_url: str = TEST_BROKER_URL, pool: str = "solo", **extra_env: str
) -> "subprocess.Popen[bytes]":
    """A `celery worker` writing to `log`; wait_for_ready() tells when it consumes."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                f"--pool={pool}",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                queue,
            ],
            cwd=ROOT,
            env=worker_env(queue=queue, broker_url=broker_url, **extra_env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for_ready(process: "subprocess.Popen[bytes]", log: Path, *, readies: int = 1, timeout: float = 60) -> None:
    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the worker exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        return log.read_text().count(" ready.") >= readies

    wait_until(ready, timeout=timeout, interval=0.2, message="the worker to be ready")


def stop_process(process: "subprocess.Popen[bytes]") -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def ingest(events: list[dict[str, Any]]) -> None:
    """Validate and store events as the API does; their processing is enqueued on commit."""
    from records.api.serializers import EventSerializer
    from records.services.ingest import events_ingest

    serializers = [EventSerializer(data=event) for event in events]
    assert all(serializer.is_valid() for serializer in serializers)
    events_ingest(events=[serializer.validated_data for serializer in serializers])


@contextmanager
def app_on_broker(broker_url: str, queue: str) -> Iterator[None]:
    """The test process sends its tasks (the on-commit enqueues too) to another broker and queue."""
    from config.celery import app

    def reset_producers() -> None:
        # The app caches its connection and producer pools (kombu keeps one per broker URL, for the
        # whole process): dropped here, so the next send takes the pools of the URL now set. The
        # pools themselves stay open for whoever sends to their URL again.
        celery: Any = app
        celery._pool = None
        celery.amqp._producer_pool = None

    before = app.conf.broker_url, app.conf.task_default_queue
    reset_producers()
    app.conf.update(broker_url=broker_url, task_default_queue=queue)
    try:
        yield
    finally:
        reset_producers()
        app.conf.update(broker_url=before[0], task_default_queue=before[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A redis-server of the test's own, without persistence, that it can kill and restart empty."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "RedisServer":
        import redis

        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with (self.directory / f"redis-{self.port}.log").open("ab") as out:
            self.process = subprocess.Popen(command, cwd=self.directory, stdout=out, stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_until(answers, timeout=30, message="redis-server to answer")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=15)


def retry_kwargs(retry: Retry) -> dict[str, Any]:
    """The keyword arguments a task's retry is sent with (celery-stubs leave `Retry.sig` out)."""
    sig = retry.sig  # type: ignore[attr-defined]
    assert sig is not None, "the retry carries no signature"
    return dict(sig.kwargs)
