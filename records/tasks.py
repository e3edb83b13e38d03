"""Thin Celery entry points: ids in, a service call out. Task names are locked by a test."""

import logging
from datetime import timedelta

from celery import Task, shared_task
from django.db import DatabaseError

logger = logging.getLogger(__name__)

# A session whose work has waited this long without a worker taking it is enqueued again (the
# sweep runs every 5 s: config.settings). A message merely slow to be taken is then run twice,
# which costs a lease check: processing and actions are idempotent.
SWEEP_STALE_AFTER = timedelta(seconds=15)


# Sessions per processing message: one message per session made the broker round trips cost a
# quarter of a 100-event batch; a few messages per batch still spread a large one over workers.
SESSIONS_PER_MESSAGE = 25


@shared_task(
    name="records.process_sessions",
    acks_late=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def process_sessions_task(session_ids: list[int]) -> None:
    """Apply each session's new events. Idempotent: applied events are marked in the same transaction."""
    from records.services.processing import session_process, session_processing_failed

    for session_id in session_ids:
        try:
            session_process(session_id=session_id)
        except DatabaseError:
            raise
        except Exception as exc:
            # One broken session must not hold back the others of its message; the sweeper retries
            # it a few times (PROCESSING_MAX_ATTEMPTS), and its admin page shows the error.
            logger.exception("records.process-session.failed %s", session_id, extra={"session_id": session_id})
            session_processing_failed(session_id=session_id, error=f"{exc.__class__.__name__}: {exc}")


def enqueue_processing(session_ids: list[int]) -> None:
    for start in range(0, len(session_ids), SESSIONS_PER_MESSAGE):
        process_sessions_task.delay(session_ids[start : start + SESSIONS_PER_MESSAGE])


@shared_task(name="records.run_session_actions", acks_late=True, max_retries=0)
def run_session_actions_task(session_id: int) -> None:
    """Run the session's due CRM actions, then come back when the next retry is due.

    Retries are per action (attempts, backoff and Retry-After are stored on the action row, within
    the retry budget of integrations.failures), so the task itself never retries: it re-enqueues
    itself. A wait longer than the broker can hold a message (its visibility timeout) is not given
    to the broker: the action stays pending with its next_attempt_at, and the sweep takes it then.
    """
    from integrations.services import retry_countdown
    from records.services.execution import session_run_actions

    result = session_run_actions(session_id=session_id)
    countdown = retry_countdown(result.retry_in) if result.retry_in is not None else None
    if countdown is not None:
        run_session_actions_task.apply_async((session_id,), countdown=countdown)
    elif result.retry_in is not None:
        logger.info("records.actions.left-to-sweep %s in %.0fs", session_id, result.retry_in)


@shared_task(name="records.sweep_sessions", max_retries=0)
def sweep_sessions_task() -> None:
    """Re-enqueue sessions whose message was lost (broker down at commit, worker killed)."""
    from records.services.batching import batches_needing_work
    from records.services.execution import sessions_needing_work

    unapplied, due = sessions_needing_work(stale_after=SWEEP_STALE_AFTER)
    enqueue_processing(unapplied)
    for session_id in due:
        run_session_actions_task.delay(session_id)
    batches = batches_needing_work()
    for batch_id in batches:
        flush_batch_task.delay(batch_id)
    if unapplied or due or batches:
        logger.info(
            "records.sweep %s to process, %s with due actions, %s batches", len(unapplied), len(due), len(batches)
        )


@shared_task(name="records.flush_batch", acks_late=True, max_retries=0)
def flush_batch_task(batch_id: int) -> None:
    """B1: send the connection's batch once due, or read its job once; come back for the next step.

    Idempotent: each step is taken under the batch's row lock and the job id is saved before it is
    read, so a redelivered message reads the job again instead of sending it again.
    """
    from integrations.services import retry_countdown
    from records.services.batching import batch_flush

    retry_in = batch_flush(batch_id=batch_id)
    countdown = retry_countdown(retry_in) if retry_in is not None else None
    if countdown is not None:
        flush_batch_task.apply_async((batch_id,), countdown=countdown)


@shared_task(
    bind=True,
    name="records.create_custom_fields",
    acks_late=True,
    # Retried as the one failure policy says (integrations.failures), within the retry budget.
    max_retries=None,
)
def create_custom_fields_task(
    self: Task, connection_id: int, failing_since: float | None = None, attempts: int = 0
) -> None:
    """F1 in the background. Idempotent (fields are found by title first), so a redelivery is harmless.

    Transient CRM failures are retried within the connection's retry budget, counted from
    `failing_since` (a POSIX time); `attempts` counts the failed tries so far (a pause of the
    connection's open circuit is none). Anything else, or a failure once the budget is spent, is
    shown as the connection's last error in the admin.
    """
    from integrations.circuit import CircuitOpen
    from integrations.failures import HANDLED_ERRORS, Failure
    from integrations.models import CrmConnection
    from integrations.services import task_circuit_pause, task_failure_verdict
    from records.services.custom_fields import custom_fields_create, custom_fields_record_error

    connection = CrmConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        logger.info("records.create-custom-fields.gone %s", connection_id)
        return
    try:
        custom_fields_create(connection=connection)
    except CircuitOpen as exc:
        pause = task_circuit_pause(exc, failing_since=failing_since)
        kwargs = {"connection_id": connection_id, "failing_since": pause.failing_since, "attempts": attempts}
        raise self.retry(exc=exc, countdown=pause.countdown, args=(), kwargs=kwargs) from exc
    except HANDLED_ERRORS as exc:
        verdict = task_failure_verdict(exc, connection=connection, attempts=attempts, failing_since=failing_since)
        if verdict.decision.retry:
            # No sweeper looks for waiting field creation: a longer wait is cut to what the broker holds.
            kwargs = {
                "connection_id": connection_id,
                "failing_since": verdict.failing_since,
                "attempts": verdict.attempts,
            }
            raise self.retry(exc=exc, countdown=verdict.countdown, args=(), kwargs=kwargs) from exc
        if verdict.decision.failure == Failure.OUR_BUG and not verdict.decision.budget_spent:
            logger.exception("records.create-custom-fields.unexpected %s", connection_id)
        custom_fields_record_error(connection=connection, error=verdict.text)
