"""The per-connection circuit breaker (integrations.circuit): opened by a CRM answering only 5xx,
holding the connection's actions back without failing them, closed by one probe once the CRM is
back. In-process against the sandbox Zendesk over loopback HTTP, its state in the real Redis."""

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from integrations.circuit import CIRCUIT_NOTE, Circuit, CircuitReading, circuit_state, should_open
from integrations.models import CrmConnection
from integrations.sandbox import SandboxServer
from integrations.selectors import connection_circuit_state
from integrations.services import circuit_breaker
from records.models import CrmAction, Session
from records.services.execution import session_run_actions
from tests.support import EXAMPLE_CALL, ingest_and_process, sandbox_config, sandbox_stats, wait_until

THRESHOLD = 3
COOL_DOWN = 1.0


@pytest.mark.parametrize(
    ("reading", "state"),
    [
        (CircuitReading(tripped=False, open_ms=0, probing=False, failures=0), Circuit.CLOSED),
        (CircuitReading(tripped=False, open_ms=0, probing=False, failures=2), Circuit.CLOSED),
        (CircuitReading(tripped=True, open_ms=1500, probing=False, failures=0), Circuit.OPEN),
        (CircuitReading(tripped=True, open_ms=0, probing=False, failures=0), Circuit.HALF_OPEN),
        (CircuitReading(tripped=True, open_ms=0, probing=True, failures=0), Circuit.HALF_OPEN),
    ],
)
def test_circuit_state(reading: CircuitReading, state: Circuit) -> None:
    assert circuit_state(reading) == state


@pytest.mark.parametrize(
    ("failures", "run_seconds", "opens"),
    [(9, 60.0, False), (10, 60.0, True), (10, 9.9, False), (10, 10.0, True), (50, 2.0, False), (0, 0.0, False)],
)
def test_a_run_of_failures_opens_the_circuit_only_when_long_and_unbroken(
    failures: int, run_seconds: float, opens: bool
) -> None:
    assert should_open(failures, run_seconds, threshold=10, min_run_seconds=10.0) is opens


@pytest.fixture
def breaker(settings: object) -> Iterator[None]:
    settings.CRM_CIRCUIT_FAILURES = THRESHOLD  # type: ignore[attr-defined]
    settings.CRM_CIRCUIT_COOL_DOWN_SECONDS = COOL_DOWN  # type: ignore[attr-defined]
    settings.CRM_CIRCUIT_MIN_RUN_SECONDS = 0  # type: ignore[attr-defined]
    circuit_breaker.cache_clear()
    yield
    circuit_breaker.cache_clear()


def run_due(session: Session) -> None:
    """One worker pass over the session's actions, the backoff waits skipped (not the circuit's)."""
    CrmAction.objects.filter(session=session, status=CrmAction.Status.PENDING).exclude(
        last_error__endswith=CIRCUIT_NOTE
    ).update(next_attempt_at=None)
    session_run_actions(session_id=session.pk)


@pytest.mark.django_db
@pytest.mark.usefixtures("breaker")
def test_the_circuit_opens_under_a_failing_crm_pauses_work_without_failing_it_and_a_probe_closes_it(
    zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer
) -> None:
    session = ingest_and_process(EXAMPLE_CALL["events"])
    ensure = session.actions.get(kind="ensure_contact")
    sandbox_config(zendesk_sandbox, fail_rate=1.0)

    # given: THRESHOLD consecutive 5xx failures of the connection's work
    for _ in range(THRESHOLD):
        run_due(session)
    assert connection_circuit_state(zendesk_connection).state == Circuit.OPEN  # type: ignore[union-attr]

    # when: the action is due again while the circuit is open, long past its retry budget
    CrmAction.objects.filter(pk=ensure.pk).update(
        next_attempt_at=None, failing_since=timezone.now() - timedelta(days=2)
    )
    sent = sandbox_stats(zendesk_sandbox)["total"]
    session_run_actions(session_id=session.pk)

    # then: the CRM is not asked, the action is not failed and spends neither attempt nor budget
    ensure.refresh_from_db()
    assert sandbox_stats(zendesk_sandbox)["total"] == sent
    assert ensure.status == CrmAction.Status.PENDING
    assert ensure.attempts == THRESHOLD
    assert ensure.last_error.endswith(CIRCUIT_NOTE)
    assert ensure.next_attempt_at is not None
    assert ensure.next_attempt_at <= timezone.now() + timedelta(seconds=COOL_DOWN + 2)
    assert ensure.failing_since is not None
    assert ensure.failing_since > timezone.now() - timedelta(days=2)

    # when: the cool-down is over and the CRM still fails, the one probe reopens the circuit
    CrmAction.objects.filter(pk=ensure.pk).update(failing_since=timezone.now())
    wait_until(
        lambda: connection_circuit_state(zendesk_connection).state == Circuit.HALF_OPEN,  # type: ignore[union-attr]
        timeout=30,
        message="the circuit to let a probe through",
    )
    CrmAction.objects.filter(pk=ensure.pk).update(next_attempt_at=None)
    session_run_actions(session_id=session.pk)
    # One probe: its read, sent again in place by the HTTP layer (CRM_READ_RETRIES), and no other request.
    assert sandbox_stats(zendesk_sandbox)["total"] == sent + 1 + django_settings.CRM_READ_RETRIES
    assert connection_circuit_state(zendesk_connection).state == Circuit.OPEN  # type: ignore[union-attr]

    # when: the CRM is back, the next probe closes the circuit and the session's work goes through
    sandbox_config(zendesk_sandbox, fail_rate=0.0)
    wait_until(
        lambda: connection_circuit_state(zendesk_connection).state == Circuit.HALF_OPEN,  # type: ignore[union-attr]
        timeout=30,
        message="the circuit to let a probe through again",
    )
    for _ in range(10):
        CrmAction.objects.filter(session=session, status=CrmAction.Status.PENDING).update(next_attempt_at=None)
        if session_run_actions(session_id=session.pk).retry_in is None:
            break
    assert connection_circuit_state(zendesk_connection).state == Circuit.CLOSED  # type: ignore[union-attr]
    assert set(session.actions.values_list("status", flat=True)) == {CrmAction.Status.SUCCEEDED}


@pytest.mark.django_db
@pytest.mark.usefixtures("breaker")
def test_the_health_panel_and_metrics_show_the_open_circuit(
    admin_client: object, zendesk_connection: CrmConnection, zendesk_sandbox: SandboxServer, settings: object
) -> None:
    # A cool-down that outlasts the test: the circuit stays open while the pages are read.
    settings.CRM_CIRCUIT_COOL_DOWN_SECONDS = 600  # type: ignore[attr-defined]
    circuit_breaker.cache_clear()
    session = ingest_and_process(EXAMPLE_CALL["events"])
    sandbox_config(zendesk_sandbox, fail_rate=1.0)
    for _ in range(THRESHOLD):
        run_due(session)

    home = admin_client.get("/admin/").content.decode()  # type: ignore[attr-defined]

    assert "Circuit breaker" in home
    assert "open (work paused for" in home
    metrics = admin_client.get("/metrics").content.decode()  # type: ignore[attr-defined]
    assert f'crmbridge_crm_circuit_state{{connection="{zendesk_connection.pk}"}} 2.0' in metrics
