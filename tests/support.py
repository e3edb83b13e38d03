"""Helpers shared by the tests (fixtures live in conftest.py)."""

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

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
